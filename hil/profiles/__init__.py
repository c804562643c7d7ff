"""Load profiles: named, seeded, source-cited demand generators, and ways to compose them.

`PROFILES[name](duration_s=..., dt_s=..., seed=..., **params)` builds a Profile; `Profile.at(t_s)` gives
its demand (current in A or power in W, > 0 discharges) at any time. See `hil profile list`.
"""
from hil.profiles.ai import ai_job_start, ai_training, ai_training_smoothed
from hil.profiles.base import BENCH_PACK, PackRating, Profile
from hil.profiles.compose import add_noise, limit_ramp, repeat, scale, scale_to_pack, scale_to_peak, sequence
from hil.profiles.csv_trace import csv_trace, read_trace, write_csv
from hil.profiles.datacenter import bbu_ride_through
from hil.profiles.drone import drone_fpv, drone_industrial
from hil.profiles.registry import PROFILES, Generator, Param
from hil.profiles.standard import cccv, constant_current, constant_power, hppc, rest

__all__ = [
    "BENCH_PACK", "PROFILES", "Generator", "PackRating", "Param", "Profile",
    "add_noise", "ai_job_start", "ai_training", "ai_training_smoothed", "bbu_ride_through", "cccv",
    "constant_current", "constant_power", "csv_trace", "drone_fpv", "drone_industrial", "hppc", "limit_ramp",
    "read_trace", "repeat", "rest", "scale", "scale_to_pack", "scale_to_peak", "sequence", "write_csv",
]
