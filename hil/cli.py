"""The `hil` command. Every subcommand returns an exit code; user errors print one line, no traceback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hil.errors import HilError
from hil.report.artifacts import prepare_report_dir
from hil.rig import DEFAULT_RIG, PROJECT_ROOT, load_rig, preflight
from hil.sim import emulate as emulate_options

SUITE = PROJECT_ROOT / "tests" / "bms"


def add_rig_options(parser: argparse.ArgumentParser, default_rig: Path = DEFAULT_RIG) -> None:
    parser.add_argument("--rig", default=str(default_rig),
                        help=f"rig file (default: {default_rig.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a rig key, e.g. --set dut.calibration.cell_ov_v=4.3 (repeatable)")


def cmd_run(args, extra: list[str]) -> int:
    preflight(load_rig(args.rig, args.overrides))  # fail here, clearly, before pytest starts
    import pytest
    report = prepare_report_dir(args.report)
    argv = [str(SUITE), "--rig", args.rig, "--hil-report", str(report), f"--junitxml={report / 'junit.xml'}",
            "-p", "no:cacheprovider", "-o", "junit_family=xunit1"]
    for assignment in args.overrides:
        argv += ["--set", assignment]
    if "--" in extra:  # `hil run -q -- -k ov`: the usual way to mark what goes on; to pytest, what follows
        extra.remove("--")  # it would be file names
    from hil.safety import Interrupts
    code = pytest.main(argv + extra)
    if code == pytest.ExitCode.INTERRUPTED and Interrupts.first is not None:
        return 128 + Interrupts.first  # 130 for Ctrl-C, 143 for SIGTERM; pytest's 2 is also a config error's
    return int(code)


def cmd_emulate(args) -> int:
    from hil.sim.emulate import serve
    rig = load_rig(args.rig, args.overrides)
    preflight(rig)  # a bad file or setting fails here, in one line, before any port opens
    return serve(rig, events_path=args.events)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hil", description="BMS hardware-in-the-loop testbench")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the BMS validation suite (tests/bms) against a rig",
                         description="Extra arguments go to pytest, e.g. `hil run -k overcurrent -x`, or "
                                     "`hil run -n 2` for two pytest-xdist workers.")
    add_rig_options(run)
    run.add_argument("--report", default="reports/latest", help="report folder (default: reports/latest)")
    run.set_defaults(func=cmd_run, passthrough=True)
    emulate = sub.add_parser("emulate", help="serve the rig's emulated boards until SIGINT/SIGTERM")
    # The sim rig's boards live in the harness's process; a rig served on its own needs a real transport.
    add_rig_options(emulate, PROJECT_ROOT / "rigs" / "slcan.toml")
    emulate_options.add_arguments(emulate)
    emulate.set_defaults(func=cmd_emulate)
    from hil import check, mutants, vcan_vm
    from hil.can import cli as can_cli
    from hil.devices import supply_cli, uds_cli
    from hil.model import cli as model_cli
    from hil.profiles import cli as profiles_cli
    from hil.report import compare, trend
    from hil.serial import vendor_cli
    for register in (check.register, can_cli.register, model_cli.register, profiles_cli.register, mutants.register,
                     compare.register, trend.register, supply_cli.register, uds_cli.register, vendor_cli.register):
        register(sub)
    vm = sub.add_parser("vcan-vm", help="run a command inside a throwaway QEMU VM with SocketCAN vcan0 up",
                        description="hil vcan-vm [--memory MB] [--timeout S] -- CMD...")
    vcan_vm.add_arguments(vm)
    vm.set_defaults(func=vcan_vm.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) if getattr(args, "passthrough", False) else args.func(args)
    except HilError as exc:
        print(f"hil {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hil {args.command}: interrupted", file=sys.stderr)
        return 130
