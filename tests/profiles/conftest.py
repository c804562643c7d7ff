"""Helpers: run `hil profile export` through its CLI function and read the CSV back."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from hil.profiles.cli import register

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"


def run_cli(*argv: str) -> int:
    """Parse `profile ...` as the `hil` command would and run it; errors propagate as exceptions."""
    parser = argparse.ArgumentParser(prog="hil")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["profile", *argv])
    return args.func(args)


class Exported:
    """An exported CSV read back: its value column's name, the times and the values."""

    def __init__(self, path: Path):
        self.path = path
        self.column = path.read_text().splitlines()[0].split(",")[1]
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        self.times_s, self.values = table[:, 0], table[:, 1]
        self.dt_s = float(np.median(np.diff(self.times_s)))


@pytest.fixture
def export(tmp_path):
    """export(name, *options) -> Exported, via `hil profile export NAME ... -o FILE.csv`."""
    counter = iter(range(1000))

    def run(name: str, *options: str) -> Exported:
        path = tmp_path / f"{name}-{next(counter)}.csv"
        assert run_cli("export", name, *options, "-o", str(path)) == 0
        return Exported(path)
    return run
