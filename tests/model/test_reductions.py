"""hil.reductions: the hot paths' min/max/any/all/mean give exactly what the ndarray methods give."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hil.reductions import aall, aany, aclip, amax, amean, amin, clip, greatest, least

finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@given(arrays(np.float64, st.sampled_from([(1,), (16,), (96,), (4, 3)]), elements=finite_or_not))
def test_same_values_as_the_ndarray_methods(values):
    for ours, theirs in ((amin, values.min), (amax, values.max), (amean, values.mean)):
        with np.errstate(all="ignore"):  # huge values overflow the sum alike: both give inf
            expected = theirs()
            got = ours(values)
        assert np.isnan(got) if np.isnan(expected) else got == expected
    flags = values > 0
    assert aany(flags) is bool(flags.any()) and aall(flags) is bool(flags.all())


zeros_and_nans = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0])


@given(arrays(np.float64, st.sampled_from([(1,), (3,), (16,), (96,), (4, 3)]),
              elements=st.one_of(finite_or_not, zeros_and_nans)))
def test_least_and_greatest_are_amin_and_amax_bit_for_bit(values):
    """argmin's element is the reduction's answer but for which zero or which NaN: those must come out as the
    reduction's own, sign of a zero included (the trace prints it)."""
    for ours, theirs in ((least, amin), (greatest, amax)):
        got, expected = ours(values), theirs(values)
        assert type(got) is type(expected)
        assert np.asarray(got).tobytes() == np.asarray(expected).tobytes()


def test_least_and_greatest_of_a_strided_view():
    values = np.arange(12.0).reshape(6, 2)[:, 1]  # a column, as a parallel pack's block temperatures are
    assert least(values) == 1.0 and greatest(values) == 11.0


def test_an_empty_array_has_no_minimum_as_in_numpy():
    with pytest.raises(ValueError):
        amin(np.zeros(0))
    with pytest.raises(ValueError):
        least(np.zeros(0))


@given(arrays(np.float64, st.sampled_from([(1,), (16,), (96,)]), elements=finite_or_not),
       st.floats(-10, 10), st.floats(0, 10))
def test_aclip_is_np_clip(values, low, width):
    high = low + width
    expected = np.clip(values, low, high)
    np.testing.assert_array_equal(aclip(values, low, high), expected)  # NaN where NaN
    out = values.copy()
    assert aclip(out, low, high, out=out) is out
    np.testing.assert_array_equal(out, expected)


@given(finite_or_not, st.floats(-10, 10), st.floats(0, 10))
def test_clip_of_one_value_is_aclip(value, low, width):
    high = low + width
    expected = aclip(np.array([value]), low, high)[0]
    got = clip(value, low, high)
    assert type(got) is float and (np.isnan(got) if np.isnan(expected) else got == expected)
