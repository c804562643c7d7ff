"""`hil supply`: read or set the lab supply on the BMS's 12 V input, outside any test (bringing up a bench).

`hil supply --rig rigs/mybench.toml` prints what the rig's `[power_supply]` is, its voltage setting, what it
measures and whether its output is on; `--volt V`, `--on`, `--off` and `--restore` (the safe state's nominal
voltage, output on) change it first. `--port URL` talks to a supply the rig does not name, e.g. the pty that
`hil emulate` prints as `endpoint psu serial /dev/pts/N`. `--json` adds the readings as the last line.
"""
from __future__ import annotations

import argparse
import json

from hil.devices.power_supply import PowerSupply, connect, scpi_port
from hil.errors import ConfigError


def register(sub) -> None:
    from hil.cli import add_rig_options
    parser = sub.add_parser("supply", help="read or set the lab supply on the BMS's 12 V input (SCPI)")
    add_rig_options(parser)
    parser.add_argument("--port", help="the supply's serial port or URL, instead of the rig's [power_supply] port")
    parser.add_argument("--volt", type=float, metavar="V", help="set the output voltage (V) first")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--on", action="store_true", help="switch the output on")
    switch.add_argument("--off", action="store_true", help="switch the output off")
    switch.add_argument("--restore", action="store_true", help="nominal voltage and current limit, output on")
    parser.add_argument("--json", action="store_true", help="print the readings as JSON, last line")
    parser.set_defaults(func=run)


def _open(args) -> PowerSupply:
    from hil.rig import load_rig
    rig = load_rig(args.rig, args.overrides)
    table = rig.data.get("power_supply")
    where = f"{rig.path} [power_supply]"
    if args.port is None and (table is None or table["kind"] != "scpi"):
        kind = "no [power_supply]" if table is None else f"kind = {table['kind']!r}"
        raise ConfigError(f"{where}: {kind}; `hil supply` talks to a real supply (kind = \"scpi\" with its port), or "
                          "to the one --port names (an emulated one: the psu pty that `hil emulate` prints)")
    table = table or {}
    return connect(scpi_port(table, where, args.port), table)


def run(args: argparse.Namespace) -> int:
    supply = _open(args)
    try:
        if args.restore:
            supply.restore()
        if args.volt is not None:
            supply.set_voltage(args.volt)
        if args.on or args.off:
            supply.output(args.on)
        readings = {"identity": supply.identity, "port": supply.port.url, "set_v": supply.setting_v(),
                    "output_on": supply.output_on(), "measured_v": supply.measure_voltage_v(),
                    "measured_a": supply.measure_current_a()}
    finally:
        supply.close()
    print(f"{readings['identity']} on {readings['port']}: set {readings['set_v']:g} V, output "
          f"{'on' if readings['output_on'] else 'off'}, measures {readings['measured_v']:g} V "
          f"{readings['measured_a']:g} A")
    if args.json:
        print(json.dumps(readings))
    return 0
