"""Drone flights, checked on their exported CSV."""
import numpy as np
import pytest


@pytest.mark.parametrize("capacity_ah, nominal_v", [(1.5, 14.8), (1.3, 14.8)])
def test_fpv_peaks_above_100_c_of_its_configured_pack(export, capacity_ah, nominal_v):
    trace = export("drone-fpv", "--dt", "0.01", "--set", f"capacity_ah={capacity_ah}",
                   "--set", f"nominal_v={nominal_v}")
    assert trace.column == "power_w"
    one_c_w = capacity_ah * nominal_v
    assert trace.values.max() / one_c_w > 100
    peak_a = trace.values.max() / nominal_v
    assert 150 * capacity_ah / 1.5 <= peak_a <= 190 * capacity_ah / 1.5  # the 150-190 A reference, scaled
    assert trace.times_s[-1] + trace.dt_s == pytest.approx(240.0)  # a 4 min flight
    assert trace.values[-1] == 0.0  # landed


def test_industrial_stays_within_5_c_peak_and_climbs_at_3_c(export):
    trace = export("drone-industrial", "--seed", "4")
    one_c_w = 5.0 * 58.08
    c_rate = trace.values / one_c_w
    assert c_rate.max() <= 5.0 + 1e-9
    assert c_rate.max() > 4.9  # the takeoff burst reaches the peak rating
    climb = c_rate[(trace.times_s > 6) & (trace.times_s < 24)]
    assert np.median(climb) == pytest.approx(3.0, rel=0.02)  # hover 2.5 C + 20 %


def test_too_short_a_flight_is_an_error(export):
    from hil.errors import ConfigError
    with pytest.raises(ConfigError, match="no room for a flight"):
        export("drone-fpv", "--duration", "5")
