"""`hil uds`: ask the rig's BMS over UDS outside any test: the build it says it runs, its stored DTCs; clear them.

    hil uds --rig rigs/mybench.toml [--clear] [--did 0xF190 ...] [--write 0x4B01=1004 ...] [--json]

It opens the bench as `hil check` does (the rig's lock for a hardware rig; the cell emulator's outputs on, the
BMS asked for STANDBY), reads the software-version DID and the stored DTCs, each with its status bits, its
occurrence count and its snapshot records (the pack as the BMS measured it when the error latched: where the
DUT map names them, as the reference BMS's do), and `--did` any further DIDs (as hex bytes, and as text where
they are printable). `--clear` then clears the DTCs (ClearDiagnosticInformation) and reads them again.
`--write DID=HEX` opens the extended session, unlocks security access with the DUT map's key (`[uds]
security_level`, `security_key`), writes the bytes (WriteDataByIdentifier), reads them back, and returns to the
default session. The bench is made safe at the end. `--json` adds it all as the last line.

Exit 0; 1 when the BMS refuses a request or does not answer (named), or the bench is not confirmed safe; 2 for a
rig the harness has no UDS for (a DUT map without `[uds]`).
"""
from __future__ import annotations

import argparse
import json
import math

from hil.errors import ConfigError, HilError

# ISO 14229-1's DTC status bits, low to high, as a tester prints them.
STATUS_BITS = ("testFailed", "testFailedThisOperationCycle", "pendingDTC", "confirmedDTC",
               "testNotCompletedSinceLastClear", "testFailedSinceLastClear", "testNotCompletedThisOperationCycle",
               "warningIndicatorRequested")


def register(sub) -> None:
    from hil.cli import add_rig_options
    parser = sub.add_parser("uds", help="read the BMS's build and stored DTCs over UDS, or clear them",
                            description="Open the rig's bench with the BMS in STANDBY and ask it over UDS (ISO 14229) "
                                        "for its build and its stored DTCs; --clear clears them.")
    add_rig_options(parser)
    parser.add_argument("--clear", action="store_true", help="clear the stored DTCs, then read them again")
    parser.add_argument("--did", action="append", default=[], metavar="0xF190", type=_did,
                        help="read this data identifier too (repeatable)")
    parser.add_argument("--write", action="append", default=[], metavar="0x4B01=1004", type=_write,
                        help="unlock security access and write this data identifier's bytes, given in hex "
                             "(repeatable)")
    parser.add_argument("--json", action="store_true", help="also print the readings as JSON, last line")
    parser.set_defaults(func=run)


def _write(text: str) -> tuple[int, bytes]:
    did, _, value = text.partition("=")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        data = b""
    if not data:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DID=HEX, the bytes to write in hex, e.g. 0x4B01=1004")
    return _did(did), data


def _did(text: str) -> int:
    try:
        did = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a data identifier, e.g. 0xF190") from None
    if not 0 <= did <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"{text}: expected a 16-bit data identifier (0 to 0xFFFF)")
    return did


def run(args: argparse.Namespace) -> int:
    from hil.check import bench_in_standby
    from hil.rig import load_rig, preflight
    rig = load_rig(args.rig, args.overrides)
    preflight(rig)
    readings, error = {"rig": f"{rig.name} ({rig.path})"}, None
    with bench_in_standby(rig, "hil uds") as (bench, outcome):
        uds = bench.uds
        if uds is None:
            raise ConfigError(f"{rig.path}: the harness has no UDS for this BMS: a DUT map needs a [uds] table "
                              "(see hil/devices/dut_map.py)")
        readings["snapshot_records"] = uds.snapshot_records
        try:
            readings["software_version"] = uds.software_version()
            readings["dtcs"] = _dtcs(uds, uds.read_dtcs(), details=True)
            readings["dids"] = {}
            for did in args.did:   # one at a time: those read before a refused one are still shown
                readings["dids"][f"0x{did:04X}"] = uds.read_did(did).hex(" ")
            if args.clear:
                uds.clear_dtcs()
                readings["dtcs_after_clear"] = _dtcs(uds, uds.read_dtcs())
            if args.write:
                readings["written"] = _write_dids(uds, args.write)
        except HilError as exc:   # refused, or no answer: say what was read before it
            error = str(exc)
    safe = outcome["safe"]
    readings["safe"] = safe.confirmed
    print("\n".join(_describe(readings)))
    if error is not None:
        print(f"PROBLEM: {error}")
    if not safe.confirmed:
        print(f"PROBLEM: bench not confirmed safe: {safe.describe()}")
    if args.json:
        print(json.dumps({**readings, "problem": error}))
    return 0 if error is None and safe.confirmed else 1


def _write_dids(uds, writes: list[tuple[int, bytes]]) -> dict[str, str]:
    """Each write in the extended session, unlocked; what the BMS reads back for each DID afterwards."""
    written = {}
    with uds.unlocked():   # and locked again before the bench is left
        for did, data in writes:
            uds.write_did(did, data)
            written[f"0x{did:04X}"] = uds.read_did(did).hex(" ")
    return written


def _dtcs(uds, stored: dict[int, int], details: bool = False) -> dict[str, dict]:
    """Each DTC's status and its bits by name; with `details`, its occurrence count and snapshot records where the
    map names them (record "0x01" -> name -> value; a value the BMS had not available: None)."""
    dtcs = {}
    for code, status in stored.items():
        dtc = dtcs[uds.describe(code)] = {"status": status, "bits": [name for bit, name in enumerate(STATUS_BITS)
                                                                    if status >> bit & 1]}
        if details and uds.occurrence_record is not None:
            dtc["occurrences"] = uds.occurrences(code)
        if details and uds.snapshot:
            dtc["snapshots"] = {f"0x{number:02X}": {name: None if math.isnan(value) else value
                                                    for name, value in values.items()}
                                for number, values in sorted(uds.read_snapshots(code).items())}
    return dtcs


def _describe(readings: dict) -> list[str]:
    lines = [f"rig {readings['rig']}"]
    if "software_version" in readings:
        lines.append(f"build: {readings['software_version']}")
    for key, title in (("dtcs", "stored DTCs"), ("dtcs_after_clear", "after the clear")):
        if key in readings:
            dtcs = readings[key]
            lines.append(f"{title}: {len(dtcs)}")
            for name, dtc in dtcs.items():
                lines.append(f"  {name}: status 0x{dtc['status']:02X} ({', '.join(dtc['bits'])})")
                if "occurrences" in dtc:
                    lines.append(f"    occurrences: {dtc['occurrences']}")
                which = {f"0x{number:02X}": f" ({role})" for role, number in readings["snapshot_records"].items()}
                for number, values in dtc.get("snapshots", {}).items():
                    shown = ", ".join(f"{key} {'n/a' if value is None else f'{value:.6g}'}"
                                      for key, value in values.items())
                    lines.append(f"    snapshot {number}{which.get(number, '')}: {shown}")
    for did, value in readings.get("dids", {}).items():
        text = bytes.fromhex(value).decode("ascii", "replace")
        lines.append(f"DID {did}: {value}" + (f" ({text!r})" if text.isprintable() else ""))
    for did, value in readings.get("written", {}).items():
        lines.append(f"DID {did} written, reads back: {value}")
    return lines
