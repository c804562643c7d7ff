"""The uniform-grid lookup used in the step is the same piecewise-linear interpolation as np.interp."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.model.tables import Lookup, UniformTable


def _lookup(table, soc):
    out = np.empty_like(soc)
    return Lookup(table, soc.shape)(table.x(soc), out=out)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12, unique=True),
       st.lists(st.floats(0.0, 0.5), min_size=14, max_size=14),
       st.lists(st.floats(-0.2, 1.2), min_size=1, max_size=30))
def test_lookup_matches_np_interp_inside_and_clamps_outside(knots, rises, queries):
    soc = np.array([0.0] + sorted(k / 40 for k in knots) + [1.0])
    soc = np.unique(soc)
    volts = 3.0 + np.cumsum(rises[:soc.size])
    table = UniformTable(soc, volts)
    query = np.array(queries)
    np.testing.assert_allclose(_lookup(table, query), np.interp(query, soc, volts), rtol=0, atol=1e-12)


def test_breakpoints_off_any_grid_fall_back_to_a_fine_grid():
    soc = np.array([0.0, 1 / 3, 1.0])
    volts = np.array([3.0, 3.9, 4.2])
    table = UniformTable(soc, volts)
    query = np.linspace(0, 1, 1001)
    slope_change = (3.9 - 3.0) * 3 - (4.2 - 3.9) * 1.5
    bound = slope_change / (4 * (table.points - 1))
    assert np.abs(_lookup(table, query) - np.interp(query, soc, volts)).max() <= bound + 1e-12


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 0.5), min_size=11, max_size=11),
       st.floats(-0.1, 1.1), st.floats(0.0, 0.3))
def test_between_two_points_in_one_segment_the_lookup_is_affine(rises, soc_low, width):
    # What batch mode relies on: where the segment found at both ends of a range agrees, the lookup anywhere
    # in between is that segment's intercept + slope * x, bit for bit; across a breakpoint it disagrees.
    soc = np.linspace(0.0, 1.0, 11)
    table = UniformTable(soc, 3.0 + np.cumsum(rises))
    x = table.x(np.linspace(soc_low, soc_low + width, 200))
    ends = Lookup(table, (2,))
    ends.find_segments(x[[0, -1]])
    looked_up = Lookup(table, x.shape)(x, out=np.empty_like(x))
    segments = np.clip(np.trunc(x), 0, table.points).astype(int)
    assert (ends.index[0] == ends.index[1]) == (segments.min() == segments.max())
    if ends.index[0] == ends.index[1]:
        np.testing.assert_array_equal(looked_up, ends.slope[0] * x + ends.intercept[0])
    np.testing.assert_array_equal(table(x), looked_up)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 0.5), min_size=11, max_size=11), st.floats(-0.1, 1.1),
       st.lists(st.floats(-0.04, 0.04), min_size=1, max_size=200))
def test_a_lookup_told_how_far_x_moved_finds_what_a_search_finds(rises, soc0, moves):
    """Skipping the segment search while every x provably stays in its segment changes no value: across
    breakpoints, onto a breakpoint, into the guard rows and out again."""
    table = UniformTable(np.linspace(0.0, 1.0, 11), 3.0 + np.cumsum(rises))
    x = table.x(np.full(5, soc0) + np.linspace(0.0, 0.02, 5))
    told, fresh = Lookup(table, x.shape), Lookup(table, x.shape)
    out, expected = np.empty_like(x), np.empty_like(x)
    told(x, out)
    for move in moves:
        step = np.full_like(x, move * table.x_per_soc)
        step[::2] *= 0.5  # cells move at different rates, as cells of different capacity do
        x += step
        told(x, out, moved=float(np.abs(step).max()))
        fresh(x, expected)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(told.slope, fresh.slope)
