"""A cell emulator with a DBC of its own, driven by data: which of its signals take what the harness sets.

The harness's cell-emulator driver (`hil.devices.cell_emulator.CellEmulator`) speaks `dbc/cell_emulator.dbc`.
A lab's own emulator speaks its maker's protocol. A cell-emulator map (`[cell_emulator] map = "..."` in the
rig, a TOML file, e.g. `fixtures/cell_emulators/reference-ce.toml`) names its signals as "Message.Signal" of
the rig's DBC files, so the loop, the suite and the safe state drive it without code:

    [cells]                     # required: each channel's cell-voltage setpoint, in volts
    # One or more series of one signal per channel, the channels continuing from one series to the next;
    # each { signals = "Message.Signal{index}", first = 0, scale = 1.0, offset = 0.0, count = N } (count:
    # how many channels it carries; the last series takes the rest). A signal's value is (V - offset) / scale:
    # scale = 0.001 for a signal in mV, as in a DUT map.
    series = [{ signals = "CE_CellSetpoint.CE_Cell{index:02d}_Setpoint", first = 1 }]

    [temperatures]              # optional: each channel's thermistor setpoint, degC (the rig's "thermistors")
    series = [{ signals = "CE_TempSetpoint.CE_Temp{index:02d}_Setpoint", first = 1 }]

    [current]                   # optional: the pack current the BMS's current sensor is given, A
    signal = "CE_CurrentSetpoint.CE_PackCurrent"

    [outputs]                   # required: outputs on and off, a periodic frame that is the emulator's heartbeat
    signal = "CE_Control.CE_OutputEnable"
    on = 1                      # the values that mean on and off (numbers or value-table names)
    off = 0
    cycle_s = 0.1               # when the DBC has no GenMsgCycleTime for it
    readback = "CE_Status.CE_OutputsOn"   # required: the safe state confirms the outputs off from it
    readback_off = 0            # the readback's value when they are off (default 0)

    [relays]                    # optional: per-channel fault relays (the rig's "fault_relays")
    message = "CE_FaultRelay"
    channel = "CE_Relay_Channel"          # the channel, counted from `first_channel` (default 0)
    open_wire = "CE_Relay_OpenWire"       # each relay's signal, 1 closes the fault; any may be left out
    short = "CE_Relay_Short"

    [insulation]                # optional: an insulation fault from the pack to chassis (the rig's "hv_insulation")
    resistance = "CE_InsulationFault.CE_Iso_Resistance"   # ohm; a table with scale = 1000 for a signal in kOhm
    connect = "CE_InsulationFault.CE_Iso_Connect"         # 1 connects the resistor, 0 opens it (same message)
    depth = "CE_InsulationFault.CE_Iso_Depth"   # optional: where along the stack, in cells below the positive
                                                # terminal (same message; the rig's "insulation_tap")

    [contactor_weld]            # optional: weld relays across the BMS's main contactors (the rig's "contactor_weld")
    pos = "CE_ContactorWeld.CE_Weld_Pos"   # 1 holds the positive contactor closed, 0 releases it
    neg = "CE_ContactorWeld.CE_Weld_Neg"   # the negative one (same message)
    pre = "CE_ContactorWeld.CE_Weld_Pre"   # optional: the precharge contactor's (same message; "precharge_weld")

    [contactor_stuck_open]      # optional: relays in series with their coils (the rig's "contactor_stuck_open")
    pos = "CE_ContactorStuckOpen.CE_StuckOpen_Pos"   # 1 holds the positive contactor open, 0 restores its coil
    neg = "CE_ContactorStuckOpen.CE_StuckOpen_Neg"   # the negative one (same message)

    [dc_link_short]             # optional: a relay across the DC link behind the contactors (the rig's "dc_link_short")
    signal = "CE_DcLinkShort.CE_LinkShort"   # 1 shorts it, 0 opens the short

    [hvil]                      # optional: a relay in series with the BMS's interlock loop (the rig's "hvil")
    signal = "CE_HvilBreak.CE_Hvil_Open"     # 1 opens the loop, 0 closes it again

    [afe_link]                  # optional: a relay in the BMS's link to its front end (the rig's "afe_link")
    signal = "CE_AfeLinkBreak.CE_AfeLink_Open"   # 1 breaks the link, 0 restores it

A multiplexed setpoint message is sent one frame per multiplexer value its channels use; a plain one, one
frame. The frames are spread over the setpoint period, as the built-in driver's are. Everything is checked
when the rig is checked (preflight), against its DBC files and its channel count and capabilities: a
signal missing from its message (with the closest names), a channel no series reaches, a capability the map
cannot serve.

An emulator that drops frames whose AUTOSAR E2E protection fails gets it in an `[e2e]` table, as a DUT map has
it (`hil.devices.dut_map`): `CE_Setpoints = { profile = "P01", data_id = 0x0300 }`. Each frame of a message it
names goes out with its own alive counter and sealed, the setpoints, the relays and the on/off frame alike,
and the emulator's status frames are checked against it.

Limits: the setpoints of one frame go out together, the frame's other signals at their DBC initial values.
Without `[e2e]`, only the periodic on/off frame gets an alive counter and CRC filled in (a `<Message>_Counter`
and `<Message>_CRC` pair, as the rest-bus fills them); a checksum of the emulator's own, outside AUTOSAR's
profiles, needs a driver of its own. The emulator's own watchdog state is not read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hil.can import e2e
from hil.datafile import read_toml
from hil.devices.dut_map import MapChecker, Signal
from hil.errors import ConfigError, did_you_mean

_SECTIONS = {"cell_emulator", "cells", "temperatures", "current", "outputs", "relays", "insulation",
             "contactor_weld", "contactor_stuck_open", "dc_link_short", "hvil", "afe_link", "e2e"}
_SERIES_KEYS = {"series"}
_OUTPUT_KEYS = {"signal", "on", "off", "cycle_s", "readback", "readback_off"}
RELAYS = ("open_wire", "short", "thermistor_open", "thermistor_short")
_RELAY_KEYS = {"message", "channel", "first_channel", *RELAYS}
_INSULATION_KEYS = ("resistance", "connect")
INSULATION_DEPTH = "depth"         # [insulation]'s optional key: where along the stack the fault connects
MAIN_CONTACTORS = ("pos", "neg")   # the main contactors, as [contactor_weld] and [contactor_stuck_open] name them
PRECHARGE = "pre"                  # the precharge contactor, which [contactor_weld] may weld too


@dataclass(frozen=True)
class SetpointFrame:
    """One frame of setpoints: its message, the multiplexer signal and value that select it (None for a plain
    message), and (channel, signal name) of each setpoint it carries."""
    message: str
    mux_signal: str | None
    mux_value: int | None
    channels: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Setpoints:
    """Channels' setpoints as frames: channel k's value goes out as (value - offset) / scale."""
    frames: tuple[SetpointFrame, ...]
    scale: tuple[float, ...]     # per channel
    offset: tuple[float, ...]


@dataclass(frozen=True)
class CeMap:
    path: Path
    name: str
    cells: Setpoints
    temperatures: Setpoints | None
    current: Signal | None
    outputs: Signal                  # the on/off command's signal
    outputs_on: float
    outputs_off: float
    control_cycle_s: float | None    # None: the DBC's GenMsgCycleTime
    readback: Signal
    readback_off: float
    relays: dict[str, str] | None    # "message", "channel" and each mapped relay -> signal name
    relay_first_channel: int
    insulation: tuple[Signal, Signal] | None   # (resistance in ohm, connect), one message
    insulation_depth: Signal | None  # cells between the insulation fault and the positive terminal, same message
    contactor_weld: tuple[Signal, Signal] | None   # (pos, neg) weld relays, one message
    precharge_weld: Signal | None    # the precharge contactor's weld relay, in the same message
    contactor_stuck_open: tuple[Signal, Signal] | None   # (pos, neg) coil-break relays, one message
    dc_link_short: Signal | None     # 1 shorts the DC link, 0 opens the short
    hvil: Signal | None              # 1 opens the BMS's interlock loop, 0 closes it
    afe_link: Signal | None          # 1 breaks the BMS's link to its cell-monitoring front end, 0 restores it
    protections: dict[str, e2e.Protection] = field(default_factory=dict)   # [e2e]: message -> AUTOSAR profile


def load_ce_map(path: str | Path, db, n_channels: int) -> CeMap:
    """Read and check the map at `path` against `db` (the cell emulator bus's DBC files) for `n_channels`."""
    path = Path(path)
    data = read_toml(path, "cell-emulator map")
    checker = MapChecker(path, db)
    checker.sections(data, _SECTIONS, "a cell-emulator map")
    cells = _setpoints(checker, data, "cells", n_channels, required=True)
    temperatures = _setpoints(checker, data, "temperatures", n_channels, required=False)
    outputs = checker.table(data, "outputs", required=True)
    _keys(path, outputs, _OUTPUT_KEYS, "[outputs]")
    for key in ("signal", "readback"):
        if key not in outputs:
            raise ConfigError(f"{path}: [outputs] has no '{key}', which the bench needs "
                              "(see hil/devices/ce_map.py)")
    command = checker.signal(outputs["signal"], "[outputs] signal")
    readback = checker.signal(outputs["readback"], "[outputs] readback")
    command_dbc, readback_dbc = checker.dbc_signal(command), checker.dbc_signal(readback)
    relays, relay_first_channel = _relays(checker, data)
    weld = _one_frame(checker, data, "contactor_weld", MAIN_CONTACTORS, optional=(PRECHARGE,))
    insulation = _one_frame(checker, data, "insulation", _INSULATION_KEYS, optional=(INSULATION_DEPTH,))
    return CeMap(
        path=path, name=str(checker.table(data, "cell_emulator").get("name", path.stem)), cells=cells,
        temperatures=temperatures,
        current=_single_signal(checker, data, "current"),
        outputs=command,
        outputs_on=checker.value_of(outputs.get("on", 1), command_dbc, "[outputs] on"),
        outputs_off=checker.value_of(outputs.get("off", 0), command_dbc, "[outputs] off"),
        control_cycle_s=checker.cycle_s(checker.messages[command.message], outputs.get("cycle_s"), "[outputs]"),
        readback=readback,
        readback_off=checker.value_of(outputs.get("readback_off", 0), readback_dbc, "[outputs] readback_off"),
        relays=relays, relay_first_channel=relay_first_channel,
        insulation=insulation,
        insulation_depth=_beside(checker, data, "insulation", INSULATION_DEPTH, (_INSULATION_KEYS[0], insulation)),
        contactor_weld=weld,
        precharge_weld=_beside(checker, data, "contactor_weld", PRECHARGE, (MAIN_CONTACTORS[0], weld)),
        contactor_stuck_open=_one_frame(checker, data, "contactor_stuck_open", MAIN_CONTACTORS),
        dc_link_short=_single_signal(checker, data, "dc_link_short"), hvil=_single_signal(checker, data, "hvil"),
        afe_link=_single_signal(checker, data, "afe_link"),
        protections={name: checker.protection(name, item) for name, item in checker.table(data, "e2e").items()})


def _single_signal(checker: MapChecker, data: dict, section: str) -> Signal | None:
    """The signal of an optional `[section]` whose one key is `signal`; None if the map leaves it out."""
    table = checker.table(data, section)
    _keys(checker.path, table, {"signal"}, f"[{section}]")
    return checker.signal(table["signal"], f"[{section}] signal") if "signal" in table else None


def _keys(path: Path, table: dict, known: set[str], where: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{path}: {where} unknown key '{key}'{did_you_mean(key, known)}; expected "
                              f"{', '.join(sorted(known))}")


def _setpoints(checker: MapChecker, data: dict, section: str, n_channels: int, *, required: bool) -> Setpoints | None:
    """The `[section] series`, as the frames that carry `n_channels` channels."""
    table = checker.table(data, section, required=required)
    if not table:
        return None
    _keys(checker.path, table, _SERIES_KEYS, f"[{section}]")
    items = table.get("series")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{checker.path}: [{section}] series = {items!r}, expected a list of "
                          '{ signals = "Message.Signal{index}", first = 0, count = N }')
    names, scale, offset = [], [], []
    for number, item in enumerate(items):
        key = f"[{section}] series[{number}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{checker.path}: {key} = {item!r}, expected a table")
        count = item.get("count", n_channels - len(names) if number == len(items) - 1 else None)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"{checker.path}: {key}.count = {item.get('count')!r}, expected how many channels it "
                              "carries, an integer >= 1 (only the last series may leave it out)")
        series = checker.cell_series({k: v for k, v in item.items() if k != "count"}, key)
        message = checker.messages[series.message]
        missing = series.first_missing(message, count)
        if missing is not None:
            name = series.names(count)[missing]
            raise ConfigError(f"{checker.path}: {key}: channel {len(names) + missing + 1} would be signal '{name}', "
                              f"which message '{series.message}' does not have"
                              f"{did_you_mean(name, [signal.name for signal in message.signals])}")
        names += [(series.message, name) for name in series.names(count)]
        scale += [series.scale] * count
        offset += [series.offset] * count
        if len(names) >= n_channels:
            break
    if len(names) < n_channels:
        raise ConfigError(f"{checker.path}: [{section}] series carry {len(names)} channels; the rig has {n_channels} "
                          "(cell_emulator.channels)")
    return Setpoints(_frames(checker, names[:n_channels]), tuple(scale[:n_channels]), tuple(offset[:n_channels]))


def _frames(checker: MapChecker, names: list[tuple[str, str]]) -> tuple[SetpointFrame, ...]:
    """Group the channels' signals into frames: one per message, or per multiplexer value of a multiplexed
    one, in the order of their first channel."""
    groups: dict[tuple[str, int | None], list[tuple[int, str]]] = {}
    mux_of: dict[str, str | None] = {}
    for channel, (message_name, name) in enumerate(names):
        message = checker.messages[message_name]
        signal = message.get_signal_by_name(name)
        ids = signal.multiplexer_ids
        if ids is not None and len(ids) != 1:
            raise ConfigError(f"{checker.path}: signal '{name}' of '{message_name}' is in {len(ids)} multiplexer "
                              "groups; a setpoint needs exactly one")
        mux_of[message_name] = signal.multiplexer_signal
        groups.setdefault((message_name, ids[0] if ids else None), []).append((channel, name))
    return tuple(SetpointFrame(message, mux_of[message] if value is not None else None, value, tuple(channels))
                 for (message, value), channels in groups.items())


def _relays(checker: MapChecker, data: dict) -> tuple[dict[str, str] | None, int]:
    """("message", "channel" and each mapped relay -> its signal; the channel signal's first number)."""
    table = checker.table(data, "relays")
    if not table:
        return None, 0
    _keys(checker.path, table, _RELAY_KEYS, "[relays]")
    message = checker.message(table.get("message"), "[relays] message")
    relays = {"message": message.name,
              "channel": checker.own_signal(message, table.get("channel"), "[relays] channel").name}
    for relay in RELAYS:
        if relay in table:
            relays[relay] = checker.own_signal(message, table[relay], f"[relays] {relay}").name
    if len(relays) == 2:
        raise ConfigError(f"{checker.path}: [relays] maps no relay; expected one or more of {', '.join(RELAYS)}")
    first = table.get("first_channel", 0)
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise ConfigError(f"{checker.path}: [relays] first_channel = {first!r}, expected the number of the first "
                          "channel in the channel signal, an integer >= 0")
    return relays, first


def _one_frame(checker: MapChecker, data: dict, section: str, keys: tuple[str, str],
               optional: tuple[str, ...] = ()) -> tuple[Signal, Signal] | None:
    """The two signals of `[section]` (both required), which must share a message: one frame then switches
    the fault, and never leaves it half set. `optional` keys are allowed beside them (read by the caller)."""
    table = checker.table(data, section)
    if not table:
        return None
    _keys(checker.path, table, {*keys, *optional}, f"[{section}]")
    missing = [key for key in keys if key not in table]
    if missing:
        raise ConfigError(f"{checker.path}: [{section}] has no '{missing[0]}'; expected both of {', '.join(keys)}")
    first, second = (checker.signal(table[key], f"[{section}] {key}") for key in keys)
    _one_message(checker, section, (keys[0], first), (keys[1], second))
    return first, second


def _beside(checker: MapChecker, data: dict, section: str, key: str,
            anchor: tuple[str, tuple[Signal, Signal] | None]) -> Signal | None:
    """The optional `[section] key` (the precharge weld relay beside the main ones, the insulation fault's depth
    beside its resistance), in the message of the pair `_one_frame` read (`anchor`: its first key and the pair),
    so that one frame sets them all; None where the map leaves it out."""
    table = checker.table(data, section)
    if key not in table:
        return None
    first_key, pair = anchor
    signal = checker.signal(table[key], f"[{section}] {key}")
    _one_message(checker, section, (first_key, pair[0]), (key, signal))
    return signal


def _one_message(checker: MapChecker, section: str, first: tuple[str, Signal], other: tuple[str, Signal]) -> None:
    """Both (key, signal) pairs of `[section]` in one message: one frame then switches the fault, and never
    leaves it half set."""
    (first_key, first_signal), (other_key, other_signal) = first, other
    if other_signal.message != first_signal.message:
        raise ConfigError(f"{checker.path}: [{section}] {other_key} is in '{other_signal.message}', {first_key} in "
                          f"'{first_signal.message}'; expected one message, so one frame switches the fault")


def check_capabilities(ce_map: CeMap, capabilities, where: str) -> None:
    """A rig that claims thermistors, fault relays, insulation faults or contactor faults needs the map to serve
    them (its tests would use them)."""
    for capability, mapping, served in (("thermistors", "[temperatures]", ce_map.temperatures is not None),
                                        ("fault_relays", "[relays]", ce_map.relays is not None),
                                        ("hv_insulation", "[insulation]", ce_map.insulation is not None),
                                        ("insulation_tap", f"'{INSULATION_DEPTH}' in [insulation]",
                                         ce_map.insulation_depth is not None),
                                        ("contactor_weld", "[contactor_weld]", ce_map.contactor_weld is not None),
                                        ("precharge_weld", f"'{PRECHARGE}' in [contactor_weld]",
                                         ce_map.precharge_weld is not None),
                                        ("contactor_stuck_open", "[contactor_stuck_open]",
                                         ce_map.contactor_stuck_open is not None),
                                        ("dc_link_short", "[dc_link_short]", ce_map.dc_link_short is not None),
                                        ("hvil", "[hvil]", ce_map.hvil is not None),
                                        ("afe_link", "[afe_link]", ce_map.afe_link is not None)):
        if capability in capabilities and not served:
            raise ConfigError(f"{where}: capability '{capability}', but the cell-emulator map {ce_map.path} has no "
                              f"{mapping}; map them, or drop the capability")

