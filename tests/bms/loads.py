"""What the suite's load profiles draw, from the spec: one place, so that each test sizes them alike."""
from hil.profiles import PROFILES

# After power-up the discharge limit ramps up (`limit_rise_a_per_s` on the reference BMS): what a test waits before it
# draws what the limit allows.
LIMIT_RAMP_S = 5.0


def rack_kwargs(spec) -> dict:
    """The AI-rack and grid-loss profiles' `rack_power_w`, where the spec's `[ride_through] rack_power_w` states the
    power this pack carries; otherwise nothing, and each profile keeps its default (700 W of AI training, 500 W
    after a grid loss: a share of a rack that a 16S1P 5 Ah bench pack carries)."""
    power_w = spec.data["ride_through"].get("rack_power_w")
    return {} if power_w is None else {"rack_power_w": power_w}


def rack_profile(name: str, bench, spec, duration_s: float, **options):
    """The AI-rack or grid-loss profile `name` (e.g. "ai-training") on this bench's step and seed, at the spec's
    rack power (`rack_kwargs`), with the profile's own `options`."""
    return PROFILES[name](duration_s=duration_s, dt_s=bench.loop.dt_s, seed=bench.rig.seed, **rack_kwargs(spec),
                          **options)


# The steady load under which the suite opens contactors (a shutdown, a contactor dropping out), as a fraction of the
# discharge current the spec makes the BMS allow (`[ride_through] min_discharge_limit_a`): well above any opening
# threshold, well inside the limits.
STEADY_LOAD_FRACTION = 0.5


def steady_load_a(spec) -> float:
    """The current the suite draws when it opens contactors under load (STEADY_LOAD_FRACTION)."""
    return STEADY_LOAD_FRACTION * spec.value("ride_through.min_discharge_limit_a")


def pack_capacity_ah(bench) -> float:
    """The pack's rated capacity: its cell's, times the cells in parallel in each block."""
    return bench.cell.capacity_ah * bench.pack.n_parallel
