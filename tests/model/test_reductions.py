"""hil.reductions: the hot paths' min/max/any/all/mean give exactly what the ndarray methods give."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hil.reductions import aall, aany, aclip, amax, amean, amin, clip

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


def test_an_empty_array_has_no_minimum_as_in_numpy():
    with pytest.raises(ValueError):
        amin(np.zeros(0))


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
