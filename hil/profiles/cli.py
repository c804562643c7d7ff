"""`hil profile`: list the named profiles, show one's parameters, export one to CSV or plot it.

    hil profile list
    hil profile show NAME
    hil profile export NAME [--dt S] [--duration S] [--seed N] [--set KEY=VALUE ...] -o FILE.csv
    hil profile plot NAME [same options] -o FILE.png

`register(subparsers)` adds the subcommand to the `hil` parser; each command's `func(args)` returns an exit
code and raises HilError (ConfigError for bad input) with a message for the user. `main(argv)` runs the
subcommand on its own (`python -m hil.profiles.cli profile list`) and turns those errors into exit code 2.
"""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from hil.errors import ConfigError, HilError
from hil.profiles.base import Profile
from hil.profiles.csv_trace import write_csv
from hil.profiles.registry import COMMON, PROFILES


def register(subparsers) -> argparse.ArgumentParser:
    """Add `profile` and its commands to an argparse subparsers object; return the `profile` parser."""
    parser = subparsers.add_parser("profile", help="list, show, export and plot load profiles",
                                   description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="profile_command", metavar="COMMAND", required=True)
    commands.add_parser("list", help="one line per profile: name and description").set_defaults(func=_list)
    show = commands.add_parser("show", help="a profile's description, sources and parameters")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(func=_show)
    for command, func, suffix, text in (("export", _export, "csv", "write time_s plus current_a or power_w"),
                                        ("plot", _plot, "png", "plot the demand and a zoom on its steepest load step "
                                                               "(needs the optional extra `plot`)")):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("name", metavar="NAME")
        sub.add_argument("--dt", dest="dt_s", type=float, metavar="S", help="time step in s (profile default)")
        sub.add_argument("--duration", dest="duration_s", type=float, metavar="S",
                         help="length in s (profile default)")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        sub.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                         help="a profile parameter; repeat for more (see `hil profile show NAME`)")
        sub.add_argument("-o", "--output", type=Path, required=True, metavar=f"FILE.{suffix}")
        sub.set_defaults(func=func)
    return parser


def _list(args: argparse.Namespace) -> int:
    width = max(map(len, PROFILES))
    for name in PROFILES:
        print(f"{name:<{width}}  {PROFILES[name].summary}")
    return 0


def _show(args: argparse.Namespace) -> int:
    generator = PROFILES[args.name]
    print(f"{args.name}\n\n{inspect.cleandoc(generator.__doc__ or '')}\n")
    print("parameters (set with --duration, --dt, --seed, or --set KEY=VALUE):")
    for param in generator.params.values():
        print(f"  {param.name} = {param.default!r}  ({param.type.__name__})")
    return 0


def _build(args: argparse.Namespace) -> Profile:
    params = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key in COMMON:
            raise ConfigError(f"--set {key}: use --duration, --dt or --seed for {', '.join(COMMON)}")
        params[key] = value
    return PROFILES[args.name](duration_s=args.duration_s, dt_s=args.dt_s, seed=args.seed, **params)


def _export(args: argparse.Namespace) -> int:
    profile = _build(args)
    try:
        write_csv(profile, args.output)
    except OSError as error:
        raise HilError(f"{args.output}: cannot write: {error.strerror or error}") from None
    print(f"{args.output}: {profile.demand.size} samples of {profile.column}, "
          f"{profile.duration_s:g} s at dt {profile.dt_s:g} s")
    return 0


def _plot(args: argparse.Namespace) -> int:
    if args.output.suffix.lower() != ".png":  # matplotlib would pick another format, or none, from the suffix
        raise ConfigError(f"-o {args.output}: the plot is written as PNG; expected a file name ending in .png")
    try:
        from hil.profiles.plot import plot_profile
    except ImportError as error:
        if not (error.name or "").startswith("matplotlib"):
            raise
        raise HilError("plotting needs matplotlib, an optional extra: pip install 'hil-bms[plot]'") from None
    profile = _build(args)
    try:
        plot_profile(profile, args.output)
    except OSError as error:
        raise HilError(f"{args.output}: cannot write: {error.strerror or error}") from None
    print(f"{args.output}: plot of {profile.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `profile ...` without the rest of the `hil` command; errors print and return 2."""
    parser = argparse.ArgumentParser(prog="hil")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HilError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
