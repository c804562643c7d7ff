"""`hil serial-bms PROTOCOL --port URL`: read an off-the-shelf BMS over its UART or RS485, outside any test.

Before a module goes on the bench (or to check the cell emulator against a BMS that only talks serial), this
prints what the BMS reports: pack voltage and current (> 0 discharges, as everywhere in the harness), SOC,
each cell's voltage, and what else its protocol carries (a Pylontech module's limits and alarms). `--json`
adds the readings as the last line. Read-only: no protocol here writes anything to the BMS.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from hil.serial.link import SerialLink
from hil.serial.protocols import daly, jk, pylontech

# Each protocol's usual baud rate: Daly's and Pylontech's RS485 ports run at 9600, JK's at 115200.
DEFAULT_BAUDRATES = {"daly": 9600, "jk": 115200, "pylontech": 9600}
PROTOCOLS = {"daly": daly.PROTOCOL, "jk": jk.PROTOCOL, "pylontech": pylontech.PROTOCOL}


def register(sub) -> None:
    parser = sub.add_parser("serial-bms", help="read a Daly, JK or Pylontech-protocol BMS over UART/RS485")
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--port", required=True,
                        help="serial port, pty or socket://HOST:PORT (e.g. /dev/ttyUSB0 on an RS485 adapter)")
    parser.add_argument("--baudrate", type=int, help="default: the protocol's usual rate "
                        + ", ".join(f"{name} {rate}" for name, rate in DEFAULT_BAUDRATES.items()))
    parser.add_argument("--address", type=address, help="the module's RS485 address (pylontech: default "
                        f"{pylontech.DEFAULT_ADDRESS}, the first module; daly: the host address, default "
                        f"0x{daly.HOST_ADDRESS_RS485:02X}); decimal or 0x hex")
    parser.add_argument("--timeout", type=float, default=1.0, metavar="S", help="per request (default 1 s)")
    parser.add_argument("--json", action="store_true", help="print the readings as JSON, last line")
    parser.set_defaults(func=run)


def address(text: str) -> int:
    """An RS485 address, decimal or 0x hex (argparse names the type's function in its error: "invalid address")."""
    value = int(text, 0)
    if not 0 <= value <= 0xFF:
        raise ValueError(text)
    return value


def _read_daly(link: SerialLink, address: int | None) -> dict:
    reader = daly.DalyReader(link, daly.HOST_ADDRESS_RS485 if address is None else address)
    status = reader.read_status()
    return {**asdict(reader.read_soc()), "cell_voltages_mv": reader.read_cell_voltages_mv(status.cell_count),
            "cycles": status.cycles}


def _read_jk(link: SerialLink, address: int | None) -> dict:
    return asdict(jk.JkReader(link).read_status())


def _read_pylontech(link: SerialLink, address: int | None) -> dict:
    reader = pylontech.PylontechReader(link, pylontech.DEFAULT_ADDRESS if address is None else address)
    module = reader.read_module()
    # No SOC from a module whose full capacity reads 0 (JSON has no NaN).
    readings = {**asdict(module), "soc": module.soc if module.full_ah else None,
                "limits": asdict(reader.read_management())}
    alarms = reader.read_alarms()
    readings["alarms"] = {**asdict(alarms), "status": alarms.status.hex(), "any": alarms.any}
    return readings


READERS = {"daly": _read_daly, "jk": _read_jk, "pylontech": _read_pylontech}


def summary(protocol: str, port: str, readings: dict) -> str:
    cells_mv = readings["cell_voltages_mv"]
    spread = f", spread {max(cells_mv) - min(cells_mv)} mV" if cells_mv else ""
    soc = "unknown" if readings["soc"] is None else f"{100 * readings['soc']:.1f} %"
    lines = [f"{protocol} on {port}: {readings['pack_voltage_v']:g} V, {readings['pack_current_a']:g} A "
             f"(> 0 discharges), SOC {soc}",
             f"  {len(cells_mv)} cells (mV): {' '.join(map(str, cells_mv))}{spread}"]
    if "limits" in readings:
        limits = readings["limits"]
        allowed = [what for what in ("charge", "discharge") if limits[f"{what}_enabled"]]
        lines.append(f"  limits: charge {limits['charge_current_limit_a']:g} A to "
                     f"{limits['charge_voltage_limit_v']:g} V, discharge {limits['discharge_current_limit_a']:g} A to "
                     f"{limits['discharge_voltage_limit_v']:g} V; enabled: {', '.join(allowed) or 'neither'}")
    if "alarms" in readings:
        alarms = readings["alarms"]
        raised = [f"cell {n} {alarm}" for n, alarm in enumerate(alarms["cell_alarms"], 1) if alarm != "normal"]
        raised += [f"sensor {n} {alarm}" for n, alarm in enumerate(alarms["temperature_alarms"], 1)
                   if alarm != "normal"]
        raised += [f"{what.replace('_', ' ')} {alarms[what]}" for what in
                   ("charge_current_alarm", "pack_voltage_alarm", "discharge_current_alarm")
                   if alarms[what] != "normal"]
        lines.append(f"  alarms: {'; '.join(raised) or 'none'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    baudrate = args.baudrate or DEFAULT_BAUDRATES[args.protocol]
    with SerialLink(args.port, PROTOCOLS[args.protocol], baudrate=baudrate, timeout_s=args.timeout) as link:
        readings = READERS[args.protocol](link, args.address)
    print(summary(args.protocol, args.port, readings))
    if args.json:
        print(json.dumps({"protocol": args.protocol, "port": args.port, **readings}))
    return 0
