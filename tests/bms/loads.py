"""What the suite's load profiles draw, from the spec: one place, so that each test sizes them alike."""


def rack_kwargs(spec) -> dict:
    """The AI-rack and grid-loss profiles' `rack_power_w`, where the spec's `[ride_through] rack_power_w` states the
    power this pack carries; otherwise nothing, and each profile keeps its default (700 W of AI training, 500 W
    after a grid loss: a share of a rack that a 16S1P 5 Ah bench pack carries)."""
    power_w = spec.data["ride_through"].get("rack_power_w")
    return {} if power_w is None else {"rack_power_w": power_w}


def pack_capacity_ah(bench) -> float:
    """The pack's rated capacity: its cell's, times the cells in parallel in each block."""
    return bench.cell.capacity_ah * bench.pack.n_parallel
