"""Measurements with limits: margins, tight margins, and their round trip through JUnit properties."""
import math

import pytest

from hil.report.measurements import Measurement, from_properties


def test_margin_is_the_distance_to_the_nearest_limit():
    m = Measurement("cell_ov_trip", 4.249, low=4.2, high=4.25, unit="V")
    assert m.margin == pytest.approx(0.001)
    assert m.passed and m.tight
    assert m.margin_fraction == pytest.approx(0.02)


def test_a_value_past_its_limit_has_a_negative_margin_and_fails():
    m = Measurement("reaction", 330.0, high=320.0, unit="ms")
    assert m.margin == pytest.approx(-10.0)
    assert not m.passed and not m.tight
    assert "margin -10 ms" in m.describe()


def test_nan_never_passes_and_no_limits_never_fails():
    assert not Measurement("x", math.nan, low=0.0).passed
    free = Measurement("x", 5.0)
    assert free.passed and free.margin is None and free.margin_fraction is None and not free.tight


def test_one_sided_limit_scales_tightness_by_the_limit():
    assert not Measurement("swing", 3.5, low=3.0, unit="A").tight   # 0.5 of 3.0 is 17 %
    assert Measurement("swing", 3.1, low=3.0, unit="A").tight       # 3 %


def test_properties_round_trip_with_numbers_kept():
    ms = [Measurement("a", 1.5, low=1.0, high=2.0, unit="V"), Measurement("b", 7.0, high=10.0)]
    props = [p for m in ms for p in m.properties()] + [("hil:artifact", "x"), ("timing:ticks", 5)]
    assert from_properties(props) == ms
    assert ("margin:a", 0.5) in props and ("unit:b", "") not in props
