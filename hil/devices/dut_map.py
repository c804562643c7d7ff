"""A BMS with a DBC of its own, driven by data: which of its signals say what the harness asks of a BMS.

The harness's BMS proxy (`hil.devices.bms.Bms`) speaks the reference protocol (`dbc/bms.dbc`,
`dbc/vcu.dbc`). A real BMS speaks its maker's. A DUT map (`[dut] map = "..."` in the rig, a TOML file, e.g.
`fixtures/duts/foxbms2.toml`) names, for each thing the harness reads or asks, a signal of the rig's DBC
files as "Message.Signal", so the same tests, the loop and the safe state run against that BMS without code:

    [read]                      # required: the bench's safe state and power-up depend on them
    state = "f_BmsState.BmsState"
    contactors = ["f_StringState.IsStringConnected"]   # closed when all are non-zero, open when none is
    pack_current_a = "f_PackValuesP0.Current"          # > 0 discharges, as the harness counts
    # optional, each a "Message.Signal" or a table: soc (0..1), soc_min and soc_max (the emptiest and fullest
    # blocks', 0..1), soh, discharge_limit_a, charge_limit_a, pack_voltage_v, insulation_ohm (the insulation
    # monitor's reading, pack to chassis; scale = 1000 for a signal in kOhm),
    # high_resistance_block (the series block flagged as `cell_resistance`, from 0; negative: none)
    soc = { signal = "f_PackStateEstimation.MinimumSoc", scale = 0.01 }   # value = signal * scale + offset
    precharge_contactor = "BMS_Status.BMS_ContactorPre"   # optional, closed when non-zero: the sequence test
    # optional: what the BMS measured of each cell, one signal per cell, all in one message; cell k (from
    # 0) is the signal named `signals` with {index} = first + k (a Python format field: {index:03d} pads)
    cell_voltages_v = { signals = "f_CellVoltages.CellVoltage_{index:03d}", first = 0, scale = 0.001 }
    cell_temperatures_c = { signals = "f_CellTemperatures.CellTemperature_{index:03d}" }   # first = 0
    # optional: the cells bleeding, as bit fields (bit 0 of the first signal is the first cell, and so on),
    # here the reference BMS's (fixtures/duts/reference-bms.toml)
    balancing = ["BMS_BalancingMask.BMS_Balancing_Cells01to48", "BMS_BalancingMask.BMS_Balancing_Cells49to96"]
    # a flag packed in a bit field: { signal = "BMS_Status.BMS_FaultBits", bit = 0 } (bit 0 is the lowest);
    # a flag that is one value of a code: { signal = "BMS_Fault.FaultCode", value = "OVERVOLTAGE" } (or a number)

    [states]                    # required: the harness's states (hil.protocol.BmsState), from the BMS's values
    NORMAL = ["NORMAL", "DISCHARGE", "CHARGE"]          # value-table names of the DBC, or numbers
    FAULT = ["ERROR"]

    [faults]                    # optional: a fault name -> the signals that raise it (any non-zero)
    cell_ov = ["f_StringState.OvervoltageMslError"]
    [warnings]                  # optional, the same for warnings

    [request]                   # required: the one periodic frame that carries the host's requests
    message = "f_BmsStateRequest"
    cycle_s = 0.1               # when the DBC has no GenMsgCycleTime for it
    mode = "RequestBmsMode"
    clear_faults = "ResetPersistentFlags"   # optional: pulsed to 1 in one frame
    [request.modes]             # the harness's mode requests (hil.protocol.ModeRequest) -> the BMS's values
    STANDBY = "Standby"
    DISCHARGE = "Discharge"

    [firmware]                  # optional: where the BMS says which build it runs (the report records it)
    version = ["BMS_Version.BMS_SwMajor", "BMS_Version.BMS_SwMinor", "BMS_Version.BMS_SwPatch"]   # joined by "."
    # optional: a frame that asks for it, sent once with these values (the rest at the DBC's initial values)
    request = { message = "f_Debug", signals = { f_Debug_Mux = "VersionInfo", GetBmsSoftwareVersion = 1 } }

    [e2e]                       # optional: messages protected by an AUTOSAR E2E profile (hil.can.e2e), either way
    BMS_State = { profile = "P01", data_id = 0x0220 }   # CRC, counter: <Message>_CRC, <Message>_Counter
    BMS_Limits = { profile = "P05", data_id = 0x0232, crc = "Limits_Crc", counter = "Limits_Alive" }
    HOST_Request = { profile = "P02", data_id_list = [0x10, 0x11, ...] }   # 16 data IDs, one per counter value
    # P01 and P11 take data_id_mode = "both" (the default), "alt", "low" or "nibble" (P11: "both", "nibble")

    [uds]                       # optional: the BMS's diagnostic server (UDS over ISO-TP; hil.devices.uds)
    request = "Diag_Request"    # the tester's request message and the BMS's response message, physical addressing
    response = "Diag_Response"
    functional_request = "Diag_Functional"   # optional: the request to every ECU at once (0x7DF), single frames
    software_version_did = 0xF189   # the default: ISO 14229-1's ECU software version number
    [uds.dtcs]                  # optional: the DTC the BMS stores for each fault
    cell_ov = 0x1A0000
    # optional: what the BMS keeps with each DTC. Its snapshot records (ReadDTCInformation 0x04): each DID they
    # hold, a big-endian uint8..int32 (the type's largest value: not available), value = raw * scale + offset,
    # named as the harness names them (hil.protocol.SNAPSHOT_DIDS: max_cell_voltage_v, pack_current_a, ...) or
    # by a name of one's own for a DID the suite does not look at; which record is the first occurrence's and
    # which the latest's; and the extended data record (0x06) whose first byte counts the error's occurrences.
    snapshot_records = { first = 0x01, latest = 0x02 }
    occurrence_record = 0x01
    # optional: its security access (SecurityAccess 0x27): the requestSeed level (odd); the function that turns a
    # seed into its key, key = f(seed: bytes, level: int) -> bytes, as "package.module:function" or a Python file
    # beside this map, "keys.py:function" (a maker's algorithm stays in the lab's files); and a DID a tester may
    # write only unlocked (the suite writes back what it read)
    security_level = 0x01
    security_key = "hil.protocol:reference_security_key"
    protected_did = 0x4B01
    [uds.snapshot]
    max_cell_voltage_v = { did = 0x4A01, type = "uint16", scale = 0.001 }
    pack_current_a = { did = 0x4A03, type = "int16", scale = 0.1 }

The request frame is the BMS's host heartbeat too, with any further host frames the BMS times out
without, listed in `[request] heartbeats = ["VCU_Heartbeat"]` (or `[{ message = "...", cycle_s = 0.1 }]`)
and sent with their DBC's initial values (alive counters and CRCs as the rest-bus fills them in):
`bms.heartbeat(False)` stops them all. Fault names are the
harness's (hil.protocol.HARNESS_FLAGS, which the suite's tests look for) or a lab's own; one that is close to
a harness name but not it is refused as a typing error.

The harness seals each host frame `[e2e]` names with its profile and data ID, and checks each of the BMS's
(the communication tests fail on a bad CRC or a counter that jumps); a message with signals named
`<Message>_CRC` and `<Message>_Counter` that `[e2e]` does not name is checked by this project's own scheme.

Everything is checked when the map is loaded, against the rig's DBC files, so a bad map fails before any
test, naming the file, the key and what was expected: a signal that is not in its message, a state value
the signal's value table does not have, a mode value that does not fit the signal, an E2E profile whose
CRC and counter the message does not have where the profile puts them.

Limits: one message carries all of the contactor signals (the safe state waits for one frame that shows
them all open). Without `balancing`, the BMS reports no cell bleeding, and the bench's bleed model stays
off. Flags are non-zero values, single bits, or one value of a signal (a fault code: one code at a time).
One message carries all of a cell series (a multiplexed one, typically), their signals told apart by one
number; how many cells there are is the rig's (pack.n_series), so the load checks the first cell's signal
and the preflight the rest (`DutMap.check_cells`). Without `cell_voltages_v` or `cell_temperatures_c`, the
suite's tests that compare them with what the bench applies are skipped.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import string
from dataclasses import dataclass, field
from pathlib import Path

from hil.can import e2e
from hil.datafile import read_toml
from hil.errors import ConfigError, did_you_mean
from hil.protocol import HARNESS_FLAGS, SNAPSHOT_DIDS, BmsState, ModeRequest, ScaledDid

_SECTIONS = {"dut", "read", "states", "faults", "warnings", "request", "firmware", "e2e", "uds"}
_UDS_KEYS = ("request", "response", "functional_request", "software_version_did", "dtcs", "snapshot",
             "snapshot_records", "occurrence_record", "security_level", "security_key", "protected_did")
_SNAPSHOT_KEYS = ("did", "type", "scale", "offset")
_E2E_KEYS = ("profile", "data_id", "data_id_mode", "data_id_list", "crc", "counter")
_E2E_FORMAT = '{ profile = "P01", data_id = 0x123 }'
_DATA_ID_LIST_LENGTH = 16   # P02: one data ID per counter value
_READ_REQUIRED = ("state", "contactors", "pack_current_a")
_READ_NUMBERS = ("pack_current_a", "soc", "soc_min", "soc_max", "soh", "discharge_limit_a", "charge_limit_a",
                 "pack_voltage_v", "insulation_ohm", "high_resistance_block")
_READ_FLAGS = ("precharge_contactor",)   # closed when non-zero
_READ_LISTS = ("contactors", "balancing")
_READ_CELLS = ("cell_voltages_v", "cell_temperatures_c")
_CELL_KEYS = ("signals", "first", "scale", "offset")
_CELL_FORMAT = '{ signals = "Message.Signal{index}", first = 0, scale = 1.0, offset = 0.0 }'
_REQUEST_KEYS = {"message", "cycle_s", "mode", "clear_faults", "modes", "heartbeats"}
# A fault name of one's own this close to a harness name (difflib's ratio) is taken for a typing error.
_TYPO_RATIO = 0.8


@dataclass(frozen=True)
class Signal:
    """One signal of one message, and how its decoded value becomes the harness's: value * scale + offset,
    or one bit of it (a flag packed in a bit field)."""
    message: str
    name: str
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = None
    equals: float | None = None   # a flag raised by one value of the signal (a fault code)

    def value(self, latest: dict):
        raw = latest.get(self.name)
        if raw is None:
            return None
        if self.bit is not None:
            return int(raw) >> self.bit & 1
        if self.equals is not None:
            return int(raw == self.equals)
        if self.scale == 1.0 and self.offset == 0.0:
            return raw   # as decoded: an integer signal stays an int
        return raw * self.scale + self.offset

    def __str__(self) -> str:
        return f"{self.message}.{self.name}" + (f" bit {self.bit}" if self.bit is not None else "") + (
            f" = {self.equals:g}" if self.equals is not None else "")


@dataclass(frozen=True)
class CellSeries:
    """One signal per cell, all in one message: cell k (from 0) is signal `pattern.format(index=first + k)`,
    its value signal * scale + offset."""
    message: str
    pattern: str
    first: int = 0
    scale: float = 1.0
    offset: float = 0.0

    def names(self, n_cells: int) -> list[str]:
        """The signals of the first `n_cells` cells, first cell first."""
        return [self.pattern.format(index=self.first + cell) for cell in range(n_cells)]

    def first_missing(self, message, n_cells: int) -> int | None:
        """The first of `n_cells` cells (from 0) whose signal `message` (cantools') does not have; None if it
        has them all."""
        have = {signal.name for signal in message.signals}
        return next((cell for cell, name in enumerate(self.names(n_cells)) if name not in have), None)


@dataclass(frozen=True)
class DutMap:
    path: Path
    name: str
    read: dict[str, Signal]                       # state, pack_current_a, and the optional numbers
    cells: dict[str, CellSeries]                  # cell_voltages_v, cell_temperatures_c: those mapped
    contactors: tuple[Signal, ...]
    balancing: tuple[tuple[Signal, int], ...]      # (bit field, its width in bits), first cell first
    states: dict[float, BmsState]                 # the state signal's value -> the harness's state
    faults: dict[str, tuple[Signal, ...]]
    warnings: dict[str, tuple[Signal, ...]]
    request_message: str
    request_cycle_s: float | None                 # None: the DBC's GenMsgCycleTime
    heartbeats: tuple[tuple[str, float | None], ...]   # further host frames (message, cycle_s), sent as defaults
    mode_signal: str
    modes: dict[ModeRequest, float]
    clear_faults_signal: str | None
    firmware_version: tuple[Signal, ...] = ()      # [firmware] version: its parts, joined by "."; () unread
    firmware_request: tuple[str, dict] | None = None   # [firmware] request: (message, signal values)
    protections: dict[str, e2e.Protection] = field(default_factory=dict)   # [e2e]: message -> its AUTOSAR profile
    uds: dict | None = None   # [uds]: hil.devices.uds.UdsClient's keywords; None: no UDS

    def messages(self) -> set[str]:
        """Every message the map reads."""
        flags = [s for group in (self.faults, self.warnings) for signals in group.values() for s in signals]
        signals = [*self.read.values(), *self.contactors, *(s for s, _ in self.balancing), *flags,
                   *self.firmware_version]
        return {signal.message for signal in signals} | {series.message for series in self.cells.values()}

    def check_cells(self, n_cells: int, db) -> None:
        """Refuse a cell series whose message has no signal for one of the rig's `n_cells` cells: the load
        checks only the first, as the map does not know the pack."""
        for key, series in self.cells.items():
            missing = series.first_missing(db.get_message_by_name(series.message), n_cells)
            if missing is not None:
                raise ConfigError(f"{self.path}: [read] {key}: cell {missing + 1} would be signal "
                                  f"'{series.names(n_cells)[missing]}', which message '{series.message}' does not "
                                  f"have: it has signals for the first {missing} of the rig's {n_cells} cells "
                                  "(pack.n_series)")


def load_dut_map(path: str | Path, db) -> DutMap:
    """Read and check the map at `path` against `db` (the DUT bus's DBC files)."""
    path = Path(path)
    data = read_toml(path, "DUT map")
    checker = MapChecker(path, db)
    checker.sections(data, _SECTIONS, "a DUT map")
    read = checker.table(data, "read", required=True)
    known = {*_READ_REQUIRED, *_READ_NUMBERS, *_READ_FLAGS, *_READ_LISTS, *_READ_CELLS}
    for key in read:
        if key not in known:
            raise ConfigError(f"{path}: [read] unknown key '{key}'{did_you_mean(key, known)}")
    for key in _READ_REQUIRED:
        if key not in read:
            raise ConfigError(f"{path}: [read] has no '{key}', which the bench needs "
                              f"(see hil/devices/dut_map.py)")
    signals = {key: checker.signal(read[key], f"[read] {key}") for key in ("state", *_READ_NUMBERS, *_READ_FLAGS)
               if key in read}
    contactors = checker.signal_list(read["contactors"], "[read] contactors")
    if len({signal.message for signal in contactors}) > 1:
        raise ConfigError(f"{path}: [read] contactors: {', '.join(map(str, contactors))} are in different "
                          "messages; expected one message that shows every contactor")
    balancing = tuple((signal, checker.dbc_signal(signal).length)
                      for signal in checker.signal_list(read["balancing"], "[read] balancing")
                      ) if "balancing" in read else ()
    cells = {key: checker.cell_series(read[key], f"[read] {key}") for key in _READ_CELLS if key in read}
    request = checker.table(data, "request", required=True)
    for key in request:
        if key not in _REQUEST_KEYS:
            raise ConfigError(f"{path}: [request] unknown key '{key}'{did_you_mean(key, _REQUEST_KEYS)}")
    message = checker.message(request.get("message"), "[request] message")
    cycle_s = checker.cycle_s(message, request.get("cycle_s"), "[request]")
    heartbeats = checker.heartbeats(request.get("heartbeats", []), message.name)
    mode = checker.own_signal(message, request.get("mode"), "[request] mode")
    modes = checker.values_by_name(checker.table(request, "modes", required=True, where="[request.modes]"),
                                   "request.modes", ModeRequest, mode)
    if ModeRequest.STANDBY not in modes:
        raise ConfigError(f"{path}: [request.modes] has no STANDBY: the safe state asks the BMS for it to open "
                          "its contactors")
    clear = request.get("clear_faults")
    clear = checker.own_signal(message, clear, "[request] clear_faults") if clear is not None else None
    state = signals["state"]
    version, version_request = checker.firmware(checker.table(data, "firmware"))
    return DutMap(
        path=path, name=str(checker.table(data, "dut").get("name", path.stem)), read=signals, cells=cells,
        contactors=contactors, balancing=balancing,
        states=checker.values_by_name(checker.table(data, "states", required=True), "states", BmsState,
                                      checker.dbc_signal(state),
                                      many=True),
        faults=checker.flags(data, "faults"), warnings=checker.flags(data, "warnings"),
        request_message=message.name, request_cycle_s=cycle_s, heartbeats=heartbeats,
        mode_signal=mode.name,
        modes=modes,
        clear_faults_signal=clear.name if clear is not None else None,
        firmware_version=version, firmware_request=version_request,
        protections={name: checker.protection(name, item) for name, item in checker.table(data, "e2e").items()},
        uds=checker.uds(checker.table(data, "uds")))


class MapChecker:
    """A device map's checks against the DBC files, each error naming the file, the key and what was expected
    (the DUT map's, and the cell-emulator map's: hil.devices.ce_map)."""

    def __init__(self, path: Path, db):
        self.path = path
        self.messages = {m.name: m for m in db.messages}

    def sections(self, data: dict, known: set[str], what: str) -> None:
        """Refuse a table the map does not have (a misspelt one, with the closest name)."""
        for section in data:
            if section not in known:
                raise ConfigError(f"{self.path}: unknown table [{section}]{did_you_mean(section, known)}; {what} "
                                  f"has {', '.join(f'[{s}]' for s in sorted(known))}")

    def known_keys(self, table: dict, known, where: str) -> None:
        """Refuse a key of `table` that is not one of `known` (a misspelt one, with the closest names)."""
        for key in table:
            if key not in known:
                raise ConfigError(f"{self.path}: {where}: unknown key '{key}'{did_you_mean(key, known)}; expected "
                                  f"{', '.join(known)}")

    def dbc_signal(self, signal: Signal):
        """The DBC's own signal (cantools) that a checked `Signal` names."""
        return self.messages[signal.message].get_signal_by_name(signal.name)

    def table(self, data: dict, name: str, *, required: bool = False, where: str | None = None) -> dict:
        where = where or f"[{name}]"
        table = data.get(name)
        if table is None:
            if required:
                raise ConfigError(f"{self.path}: no {where} table (see hil/devices/dut_map.py)")
            return {}
        if not isinstance(table, dict):
            raise ConfigError(f"{self.path}: {where} must be a table, got {table!r}")
        return table

    def message(self, name, key: str):
        if not isinstance(name, str):
            raise ConfigError(f"{self.path}: {key} = {name!r}, expected a message name of the rig's DBC files")
        if name not in self.messages:
            raise ConfigError(f"{self.path}: {key}: message '{name}' is not in the rig's DBC files"
                              f"{did_you_mean(name, self.messages)}")
        return self.messages[name]

    def cycle_s(self, message, cycle_s, where: str) -> float | None:
        """A host frame's cycle: `cycle_s` seconds, or None for the DBC's GenMsgCycleTime, which it must have."""
        if cycle_s is None and not message.cycle_time:
            raise ConfigError(f"{self.path}: {where} message '{message.name}' has no GenMsgCycleTime in its DBC; "
                              "give cycle_s (seconds between its frames)")
        if cycle_s is not None and not (isinstance(cycle_s, (int, float)) and not isinstance(cycle_s, bool)
                                        and 0 < cycle_s <= 10):
            raise ConfigError(f"{self.path}: {where} cycle_s = {cycle_s!r}, expected seconds in (0, 10]")
        return None if cycle_s is None else float(cycle_s)

    def heartbeats(self, items, request_message: str) -> tuple[tuple[str, float | None], ...]:
        """[request] heartbeats: further periodic host frames the BMS times out without, each a message name
        or {message = "...", cycle_s = 0.1}."""
        if not isinstance(items, list):
            raise ConfigError(f"{self.path}: [request] heartbeats = {items!r}, expected a list of message names "
                              'or tables { message = "...", cycle_s = 0.1 }')
        out = []
        for item in items:
            table = item if isinstance(item, dict) else {"message": item}
            unknown = set(table) - {"message", "cycle_s"}
            if unknown:
                raise ConfigError(f"{self.path}: [request] heartbeats: unknown key '{min(unknown)}'; expected "
                                  "message, cycle_s")
            message = self.message(table.get("message"), "[request] heartbeats")
            if message.name == request_message or message.name in (name for name, _ in out):
                raise ConfigError(f"{self.path}: [request] heartbeats: '{message.name}' is already sent (the "
                                  "request message, or listed twice)")
            out.append((message.name, self.cycle_s(message, table.get("cycle_s"), "[request] heartbeats:")))
        return tuple(out)

    def own_signal(self, message, name, key: str):
        names = [s.name for s in message.signals]
        if not isinstance(name, str) or name not in names:
            raise ConfigError(f"{self.path}: {key} = {name!r}, expected a signal of message '{message.name}'"
                              f"{did_you_mean(name, names)}")
        return message.get_signal_by_name(name)

    def signal(self, item, key: str) -> Signal:
        """"Message.Signal", or {signal = "Message.Signal", scale = 1.0, offset = 0.0}, {signal = ..., bit = N}
        or {signal = ..., value = V} (V a value-table name or a number: a flag raised by that one value)."""
        scale, offset, bit, equals = 1.0, 0.0, None, None
        if isinstance(item, dict):
            unknown = set(item) - {"signal", "scale", "offset", "bit", "value"}
            if unknown:
                raise ConfigError(f"{self.path}: {key}: unknown key '{min(unknown)}'; expected signal, "
                                  "scale, offset, bit, value")
            if "bit" in item and "value" in item:
                raise ConfigError(f"{self.path}: {key}: both bit and value; a flag is one bit of a signal or one "
                                  "value of it, not both")
            scale, offset = (self._number(item.get(k, default), f"{key}.{k}") for k, default in
                             (("scale", 1.0), ("offset", 0.0)))
            bit, equals = item.get("bit"), item.get("value")
            item = item.get("signal")
        if not isinstance(item, str) or item.count(".") != 1:
            raise ConfigError(f"{self.path}: {key} = {item!r}, expected \"Message.Signal\" (a message of the "
                              "rig's DBC files, a dot, one of its signals)")
        message_name, name = item.split(".")
        message = self.message(message_name, key)
        signal = self.own_signal(message, name, key)
        if bit is not None and (isinstance(bit, bool) or not isinstance(bit, int)
                                or not 0 <= bit < signal.length):
            raise ConfigError(f"{self.path}: {key}: bit = {bit!r}, expected a bit of the {signal.length}-bit "
                              f"signal '{name}' (0 to {signal.length - 1})")
        if equals is not None:   # as the Monitor decodes it: the raw number a value-table name stands for
            equals = self.value_of(equals, signal, f"{key}: value")
        return Signal(message_name, name, scale, offset, bit, equals)

    def cell_series(self, item, key: str) -> CellSeries:
        """{signals = "Message.Signal{index}", first = 0, scale = 1.0, offset = 0.0}: one signal per cell.
        Only the first cell's signal is checked here; `DutMap.check_cells` checks the rig's count."""
        if not isinstance(item, dict):
            raise ConfigError(f"{self.path}: {key} = {item!r}, expected a table {_CELL_FORMAT}")
        self.known_keys(item, _CELL_KEYS, key)
        message_name, pattern = self._cell_pattern(item.get("signals"), f"{key}.signals")
        message = self.message(message_name, f"{key}.signals")
        first = item.get("first", 0)
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ConfigError(f"{self.path}: {key}.first = {first!r}, expected the first cell's number in its "
                              "signal's name, an integer >= 0")
        scale, offset = (self._number(item.get(k, default), f"{key}.{k}") for k, default in
                         (("scale", 1.0), ("offset", 0.0)))
        series = CellSeries(message.name, pattern, first, scale, offset)
        try:
            name = series.names(1)[0]
        except (ValueError, KeyError, IndexError) as error:   # a format spec a number does not take
            raise ConfigError(f"{self.path}: {key}.signals: '{pattern}' cannot format index = {first}: {error}; "
                              "expected a format spec for an integer, e.g. {index:02d}") from None
        names = [s.name for s in message.signals]
        if name not in names:
            raise ConfigError(f"{self.path}: {key}: the first cell would be signal '{name}' (index = {first}), "
                              f"which message '{message.name}' does not have{_first_hint(series, names)}")
        return series

    def _cell_pattern(self, item, key: str) -> tuple[str, str]:
        """"Message.Signal{index}" split into the message and the signal's format string, which must have
        one field, {index} (with or without a format spec)."""
        expected = ('expected "Message.Signal" whose signal has one {index} field, e.g. '
                    '"BMS_CellVoltages.BMS_Cell{index:02d}_Voltage"')
        if not isinstance(item, str) or "." not in item:
            raise ConfigError(f"{self.path}: {key} = {item!r}, {expected}")
        message, pattern = item.split(".", 1)   # a message name has no dot; a format spec may
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None]
        except ValueError as error:   # an unmatched brace
            raise ConfigError(f"{self.path}: {key} = {item!r}: {error}; {expected}") from None
        if fields != ["index"]:
            raise ConfigError(f"{self.path}: {key} = {item!r} has fields {fields}; {expected}")
        return message, pattern

    def signal_list(self, items, key: str) -> tuple[Signal, ...]:
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{self.path}: {key} = {items!r}, expected a list of \"Message.Signal\"")
        return tuple(self.signal(item, key) for item in items)

    def firmware(self, table: dict) -> tuple[tuple[Signal, ...], tuple[str, dict] | None]:
        """[firmware]: `version`, the signals of one message whose values, joined by ".", name the build, and
        an optional `request` = {message = "...", signals = {...}}: one frame that asks the BMS for them."""
        for key in table:
            if key not in ("version", "request"):
                raise ConfigError(f"{self.path}: [firmware] unknown key '{key}'"
                                  f"{did_you_mean(key, ('version', 'request'))}; expected version, request")
        if not table:
            return (), None
        if "version" not in table:
            raise ConfigError(f"{self.path}: [firmware] has no 'version': expected the signals that say which build "
                              'the BMS runs, e.g. version = ["Msg.Major", "Msg.Minor", "Msg.Patch"]')
        version = self.signal_list(table["version"], "[firmware] version")
        if len({signal.message for signal in version}) > 1:
            raise ConfigError(f"{self.path}: [firmware] version: {', '.join(map(str, version))} are in different "
                              "messages; expected the parts of one message, so that one frame gives the version")
        request = table.get("request")
        if request is None:
            return version, None
        if not isinstance(request, dict) or set(request) - {"message", "signals"} \
                or not isinstance(request.get("signals", {}), dict):
            raise ConfigError(f"{self.path}: [firmware] request = {request!r}, expected a table "
                              '{ message = "...", signals = { Signal = value, ... } }')
        message = self.message(request.get("message"), "[firmware] request message")
        values = {self.own_signal(message, name, "[firmware] request signals").name:
                  self.value_of(value, message.get_signal_by_name(name), f"[firmware] request signals.{name}")
                  for name, value in request.get("signals", {}).items()}
        return version, (message.name, values)

    def protection(self, name: str, item) -> e2e.Protection:
        """[e2e] Message = { profile = "P01", data_id = 0x123 }: the AUTOSAR E2E profile that protects `name`,
        with its data ID (P01, P05, P11; `data_id_mode` for P01 and P11) or its 16 data IDs (`data_id_list`,
        P02), its CRC in signal `crc` and its counter in `counter` (`<Message>_CRC`, `<Message>_Counter` unless
        named), laid out as the profile has them."""
        key = f"[e2e] {name}"
        message = self.message(name, "[e2e]")
        if not isinstance(item, dict):
            raise ConfigError(f"{self.path}: {key} = {item!r}, expected a table {_E2E_FORMAT}")
        self.known_keys(item, _E2E_KEYS, key)
        profile = item.get("profile")
        if profile not in e2e.PROFILES:
            raise ConfigError(f"{self.path}: {key}: profile = {profile!r}, expected one of {', '.join(e2e.PROFILES)} "
                              f"(AUTOSAR E2E profiles){did_you_mean(str(profile), e2e.PROFILES)}")
        crc, counter = (self.own_signal(message, item.get(option, f"{name}_{suffix}"), f"{key} {option}")
                        for option, suffix in (("crc", "CRC"), ("counter", "Counter")))
        options = {}
        if profile == "P02":
            ids = item.get("data_id_list")
            if not (isinstance(ids, list) and len(ids) == _DATA_ID_LIST_LENGTH
                    and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 0xFF for i in ids)):
                raise ConfigError(f"{self.path}: {key}: data_id_list = {ids!r}, expected P02's {_DATA_ID_LIST_LENGTH} "
                                  "data IDs, one per counter value, each a byte (0..255)")
            options["data_id_list"] = bytes(ids)
        else:
            data_id = item.get("data_id")
            if isinstance(data_id, bool) or not isinstance(data_id, int) or not 0 <= data_id <= 0xFFFF:
                raise ConfigError(f"{self.path}: {key}: data_id = {data_id!r}, expected {profile}'s 16-bit data ID "
                                  "(0..0xFFFF), as the BMS's E2E configuration gives it")
            options["data_id"] = data_id
            modes = e2e.DATA_ID_MODES.get(profile, ("both",))
            mode = item.get("data_id_mode", "both")
            if mode not in modes:
                raise ConfigError(f"{self.path}: {key}: data_id_mode = {mode!r}, expected one of {', '.join(modes)} "
                                  f"for {profile}")
            options["data_id_mode"] = mode
        for option in ("data_id", "data_id_mode") if profile == "P02" else ("data_id_list",):
            if option in item:
                raise ConfigError(f"{self.path}: {key}: {option} is not a key of {profile}")
        try:
            return e2e.autosar(message, profile, crc, counter, **options)
        except e2e.LayoutError as error:
            raise ConfigError(f"{self.path}: {key}: {profile} does not fit message '{name}': {error}") from None

    def uds(self, table: dict) -> dict | None:
        """[uds]: the BMS's diagnostic request and response messages (ISO-TP, physical addressing), the functional
        request message (optional), the DID of its software version (0xF189 unless given) and the DTC it stores for
        each fault (`dtcs`, optional)."""
        if not table:
            return None
        self.known_keys(table, _UDS_KEYS, "[uds]")
        request, response = (self.message(table.get(key), f"[uds] {key}") for key in ("request", "response"))
        if request.name == response.name:
            raise ConfigError(f"{self.path}: [uds] request and response are both '{request.name}'; expected the "
                              "tester's request message and the BMS's response message")
        functional = table.get("functional_request")
        if functional is not None:
            functional = self.message(functional, "[uds] functional_request").name
            if functional in (request.name, response.name):
                raise ConfigError(f"{self.path}: [uds] functional_request is '{functional}', the request or response "
                                  "message; expected the message a tester addresses every ECU with (0x7DF)")
        did = self.did(table.get("software_version_did", 0xF189), "[uds] software_version_did",
                       " (0xF189: ISO 14229-1's ECU software version number)")
        dtcs = self.table(table, "dtcs", where="[uds.dtcs]")
        for name, code in dtcs.items():
            self.flag_name(name, "[uds.dtcs]")
            if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 0xFFFFFF:
                raise ConfigError(f"{self.path}: [uds.dtcs] {name} = {code!r}, expected a 3-byte DTC number "
                                  "(0x1A0000 is P1A00-00)")
        records = self.table(table, "snapshot_records", where="[uds] snapshot_records")
        self.known_keys(records, ("first", "latest"), "[uds] snapshot_records")
        for key, number in records.items():
            self.record_number(number, f"[uds] snapshot_records.{key}")
        occurrence = table.get("occurrence_record")
        if occurrence is not None:
            self.record_number(occurrence, "[uds] occurrence_record")
        level = table.get("security_level")
        if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 0x01 <= level <= 0x7D
                                  or level % 2 == 0):
            raise ConfigError(f"{self.path}: [uds] security_level = {level!r}, expected the odd requestSeed "
                              "subfunction of SecurityAccess, 0x01..0x7D")
        protected = table.get("protected_did")
        if protected is not None:
            self.did(protected, "[uds] protected_did")
        return {"request_message": request.name, "response_message": response.name, "functional_message": functional,
                "software_version_did": did, "dtcs": dtcs, "snapshot": self.snapshot(table),
                "snapshot_records": records, "occurrence_record": occurrence, "security_level": level,
                "security_key": self.function(table.get("security_key"), "[uds] security_key"),
                "protected_did": protected}

    def did(self, did, key: str, hint: str = "") -> int:
        if isinstance(did, bool) or not isinstance(did, int) or not 0 <= did <= 0xFFFF:
            raise ConfigError(f"{self.path}: {key} = {did!r}, expected a 16-bit DID{hint}")
        return did

    def function(self, where, key: str):
        """A function named as "package.module:function", or "file.py:function" for a file beside the map; None
        for None."""
        if where is None:
            return None
        expected = 'expected "package.module:function" or "file.py:function" (a file beside the map)'
        if not isinstance(where, str) or where.count(":") != 1 or not all(where.split(":")):
            raise ConfigError(f"{self.path}: {key} = {where!r}, {expected}")
        module_name, name = where.split(":")
        try:
            if module_name.endswith(".py"):
                file = self.path.parent / module_name
                if not file.is_file():
                    raise ConfigError(f"{self.path}: {key}: no file {file}; {expected}")
                spec = importlib.util.spec_from_file_location(f"hil_dut_map_{file.stem}", file)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(module_name)
        except ConfigError:
            raise
        except Exception as error:   # the lab's own code: whatever it raises on import is the map's error
            raise ConfigError(f"{self.path}: {key}: importing {module_name!r} failed: "
                              f"{type(error).__name__}: {error}") from None
        function = getattr(module, name, None)
        if not callable(function):
            raise ConfigError(f"{self.path}: {key}: {module_name!r} has no function {name!r}; {expected}")
        return function

    def snapshot(self, table: dict) -> dict[str, ScaledDid]:
        """[uds.snapshot]: name -> the DID of a DTC's snapshot record that holds it, and how to read it."""
        snapshot, dids = {}, {}
        for name, item in self.table(table, "snapshot", where="[uds.snapshot]").items():
            key = f"[uds.snapshot] {name}"
            close = difflib.get_close_matches(name, SNAPSHOT_DIDS, n=1, cutoff=_TYPO_RATIO)
            if name not in SNAPSHOT_DIDS and close:
                raise ConfigError(f"{self.path}: {key} is not a snapshot name of the harness (did you mean "
                                  f"'{close[0]}'?); the suite looks for {', '.join(SNAPSHOT_DIDS)}")
            if not isinstance(item, dict):
                raise ConfigError(f"{self.path}: {key} = {item!r}, expected a table such as "
                                  '{ did = 0x4A01, type = "uint16", scale = 0.001 }')
            self.known_keys(item, _SNAPSHOT_KEYS, key)
            did = self.did(item.get("did"), f"{key} did")
            if did in dids:
                raise ConfigError(f"{self.path}: {key} did = 0x{did:04X} is {dids[did]}'s too")
            dids[did] = name
            kind = item.get("type", "uint16")
            if kind not in ScaledDid.TYPES:
                raise ConfigError(f"{self.path}: {key} type = {kind!r}, expected one of {', '.join(ScaledDid.TYPES)}")
            scale = self._number(item.get("scale", 1.0), f"{key} scale")
            if scale == 0:
                raise ConfigError(f"{self.path}: {key} scale = 0, expected a non-zero factor")
            snapshot[name] = ScaledDid(did, kind, scale, self._number(item.get("offset", 0.0), f"{key} offset"))
        return snapshot

    def record_number(self, number, key: str) -> None:
        """A DTC record number: 0x01..0xFE (0x00 is reserved; 0xFF asks for every record)."""
        if isinstance(number, bool) or not isinstance(number, int) or not 0x01 <= number <= 0xFE:
            raise ConfigError(f"{self.path}: {key} = {number!r}, expected a record number 0x01..0xFE")

    def flags(self, data: dict, section: str) -> dict[str, tuple[Signal, ...]]:
        flags = {}
        for name, items in self.table(data, section).items():
            self.flag_name(name, f"[{section}]")
            flags[name] = self.signal_list(items, f"[{section}] {name}")
        return flags

    def flag_name(self, name: str, where: str) -> None:
        """Refuse a fault name of one's own this close to one of the harness's: a typing error."""
        close = difflib.get_close_matches(name, HARNESS_FLAGS, n=1, cutoff=_TYPO_RATIO)
        if name not in HARNESS_FLAGS and close:
            raise ConfigError(f"{self.path}: {where} '{name}' is not a fault name of the harness (did you mean "
                              f"'{close[0]}'?); the suite looks for {', '.join(HARNESS_FLAGS)}")

    def values_by_name(self, table: dict, section: str, enum, signal, *, many: bool = False) -> dict:
        """[states] (one or more BMS values per harness state) or [request.modes] (one per mode), checked
        against the signal's value table or, without one, its range."""
        out = {}
        for key, values in table.items():
            if key.upper() not in enum.__members__:
                raise ConfigError(f"{self.path}: [{section}] '{key}' is not one of the harness's "
                                  f"{', '.join(enum.__members__)}{did_you_mean(key.upper(), enum.__members__)}")
            member = enum[key.upper()]
            for value in (values if many and isinstance(values, list) else [values]):
                number = self.value_of(value, signal, f"[{section}] {key}")
                if many:
                    if number in out:
                        raise ConfigError(f"{self.path}: [{section}] {key}: value {value!r} is already "
                                          f"{out[number].name}")
                    out[number] = member
                else:
                    out[member] = number
        if not out:
            raise ConfigError(f"{self.path}: [{section}] is empty; expected at least one entry")
        return out

    def value_of(self, value, signal, key: str) -> float:
        """`value` (a value-table name or a number) as the Monitor decodes `signal`, checked against its value
        table or its range."""
        choices = {str(text): number for number, text in (signal.choices or {}).items()}
        if isinstance(value, str):
            if value not in choices:
                listed = f"its value table has {', '.join(choices)}" if choices else "it has no value table"
                raise ConfigError(f"{self.path}: {key}: '{value}' is not a value of signal '{signal.name}' "
                                  f"({listed}){did_you_mean(value, choices)}")
            return _plain(choices[value] * signal.scale + signal.offset)
        number = _plain(self._number(value, key))
        low, high = signal.minimum, signal.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            raise ConfigError(f"{self.path}: {key} = {value!r} is outside signal '{signal.name}''s range "
                              f"[{low}, {high}]")
        return number

    def _number(self, value, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{self.path}: {key} = {value!r}, expected a finite number")
        return float(value)


def _first_hint(series: CellSeries, names: list[str]) -> str:
    """" (with first = N, ...)" when the neighbouring index names a signal: a series counted from 1 given
    first = 0, or the other way round, is the likely mistake; else difflib's closest names."""
    for first in (series.first + 1, series.first - 1):
        if first >= 0 and (name := series.pattern.format(index=first)) in names:
            return f" (with first = {first} it would be '{name}', which it has)"
    return did_you_mean(series.names(1)[0], names)


def _plain(number: float) -> float | int:
    """A whole number as an int: the value a frame carries, and what the Monitor decodes it to."""
    return int(number) if float(number).is_integer() else number
