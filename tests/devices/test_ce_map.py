"""Cell-emulator maps: a cell emulator with a DBC of its own, driven through a data file.

The reference emulator's DBC mapped onto itself must put the built-in driver's frames on the bus, byte for
byte; an emulator of another shape (plain messages, setpoints in mV, no relays) gets its frames from its map;
and a bad map is refused before any bench, naming the file and key.
"""
from __future__ import annotations

import json

import can
import numpy as np
import pytest

from hil.bench import Bench
from hil.can.dbc import load_dbc, load_dbcs
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.can.simbus import SimBus
from hil.clock import VirtualClock
from hil.devices.ce_map import load_ce_map
from hil.devices.cell_emulator import MappedCellEmulator
from hil.errors import ConfigError
from hil.profiles import PROFILES
from hil.rig import PROJECT_ROOT, load_rig, preflight
from tests.can.conftest import fresh_channel

REFERENCE_CE_MAP = PROJECT_ROOT / "fixtures" / "cell_emulators" / "reference-ce.toml"
MAPPED = [f'cell_emulator.map="{REFERENCE_CE_MAP}"']
REFERENCE_DBCS = [PROJECT_ROOT / "dbc" / name for name in ("bms.dbc", "vcu.dbc", "cell_emulator.dbc")]

# A 12-channel emulator of another make: setpoints in mV, four to a plain message, no thermistors or relays.
OTHER_DBC = """VERSION ""
NS_ :
BS_:
BU_: HOST SIM
BO_ 1536 SIM_Cells_A: 8 HOST
 SG_ Ch1_mV : 0|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch2_mV : 16|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch3_mV : 32|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch4_mV : 48|16@1+ (1,0) [0|6000] "mV" SIM
BO_ 1537 SIM_Cells_B: 8 HOST
 SG_ Ch5_mV : 0|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch6_mV : 16|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch7_mV : 32|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch8_mV : 48|16@1+ (1,0) [0|6000] "mV" SIM
BO_ 1538 SIM_Cells_C: 8 HOST
 SG_ Ch9_mV : 0|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch10_mV : 16|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch11_mV : 32|16@1+ (1,0) [0|6000] "mV" SIM
 SG_ Ch12_mV : 48|16@1+ (1,0) [0|6000] "mV" SIM
BO_ 1539 SIM_Command: 1 HOST
 SG_ Mode : 0|2@1+ (1,0) [0|3] "" SIM
BO_ 1540 SIM_State: 1 SIM
 SG_ Outputs : 0|2@1+ (1,0) [0|3] "" HOST
VAL_ 1539 Mode 0 "OFF" 1 "STANDBY" 2 "RUN" ;
VAL_ 1540 Outputs 0 "DISABLED" 1 "ENABLED" 2 "TRIPPED" ;
"""
OTHER_MAP = """[cell_emulator]
name = "12-channel simulator"

[cells]
series = [{ signals = "SIM_Cells_A.Ch{index}_mV", first = 1, scale = 0.001, count = 4 },
          { signals = "SIM_Cells_B.Ch{index}_mV", first = 5, scale = 0.001, count = 4 },
          { signals = "SIM_Cells_C.Ch{index}_mV", first = 9, scale = 0.001 }]

[outputs]
signal = "SIM_Command.Mode"
on = "RUN"
off = "STANDBY"
cycle_s = 0.05
readback = "SIM_State.Outputs"
readback_off = "DISABLED"
"""


def _frames_of_a_run(overrides) -> list[tuple[int, bytes]]:
    """Every frame on the sim rig's bus over power-up, 2 s of load and a fault relay."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", overrides)) as bench:
        with SimBus(channel=bench.bus.channel_id) as sniffer:
            bench.power_up()
            bench.run_profile(PROFILES["ai-training"](duration_s=2.0, dt_s=bench.loop.dt_s, seed=1))
            bench.loop.run_for(2.0)
            bench.force_temperature(2, 40.0)
            bench.cell_emulator.set_relay(3, open_wire=True)
            bench.loop.run_for(0.2)
            frames = []
            while (msg := sniffer.recv(timeout=0)) is not None:
                frames.append((msg.arbitration_id, bytes(msg.data)))
        return frames


def test_the_reference_emulator_through_its_map_puts_the_built_in_drivers_frames_on_the_bus():
    built_in, mapped = _frames_of_a_run([]), _frames_of_a_run(MAPPED)
    assert len(built_in) > 1000 and mapped == built_in


def test_the_safe_state_reads_back_the_mapped_outputs():
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", MAPPED)) as bench:
        bench.power_up()
        steps = {step.name: step for step in bench.make_safe().steps}
    assert steps["outputs"].confirmed and "CE_Status CE_OutputsOn=0" in steps["outputs"].seen
    assert "CE_Control out by" in steps["outputs"].seen


@pytest.fixture
def other(tmp_path):
    """The 12-channel simulator's map on its DBC, its driver on a SimBus, and the simulator's side of the bus."""
    (tmp_path / "sim.dbc").write_text(OTHER_DBC)
    (tmp_path / "sim.toml").write_text(OTHER_MAP)
    db = load_dbc(tmp_path / "sim.dbc")
    channel = fresh_channel()
    with SimBus(channel=channel) as host_bus, SimBus(channel=channel) as device_bus:
        monitor = Monitor(db, VirtualClock().now_s)
        sender = PeriodicSender(host_bus, db)
        emulator = MappedCellEmulator(load_ce_map(tmp_path / "sim.toml", db, 12), host_bus, db, sender, monitor, 12)

        def received() -> dict[str, dict]:
            frames = {}
            while (msg := device_bus.recv(timeout=0)) is not None:
                message = db.get_message_by_frame_id(msg.arbitration_id)
                frames[message.name] = db.decode_message(msg.arbitration_id, msg.data, decode_choices=False)
            return frames
        yield emulator, sender, monitor, received, db, device_bus


def test_an_emulator_of_another_make_gets_its_frames_from_its_map(other):
    emulator, sender, monitor, received, db, _device_bus = other
    assert (emulator.cell_frames, emulator.temperature_frames) == (3, 0)
    emulator.set_cells(np.linspace(3.0, 4.1, 12))
    frames = received()
    assert [frames["SIM_Cells_A"][f"Ch{c}_mV"] for c in (1, 4)] == [3000, 3300]
    assert [frames["SIM_Cells_C"][f"Ch{c}_mV"] for c in (9, 12)] == [3800, 4100]
    # one frame, and values beyond the signal's range go out as its ends
    emulator.set_cells(np.r_[np.full(4, 3.7), 7.0, -1.0, 3.7, 3.7, np.full(4, 3.7)], groups=range(1, 2))
    frames = received()
    assert list(frames) == ["SIM_Cells_B"]
    assert [frames["SIM_Cells_B"][f"Ch{c}_mV"] for c in (5, 6, 7)] == [6000, 0, 3700]
    emulator.set_temperatures(np.full(12, 25.0))   # no thermistors mapped: nothing to send
    emulator.set_current(12.0)
    assert received() == {}
    sender.tick(0.0)
    assert received()["SIM_Command"]["Mode"] == 1   # STANDBY: off
    emulator.enable(True)
    sender.tick(0.05)
    assert received()["SIM_Command"]["Mode"] == 2   # RUN
    assert emulator.outputs_on is None
    state = db.get_message_by_name("SIM_State")
    for value, on in ((1, True), (2, True), (0, False)):   # TRIPPED is not DISABLED: not confirmed off
        monitor.on_message_received(_msg(state, {"Outputs": value}))
        assert emulator.outputs_on is on
    assert emulator.outputs_off({"Outputs": 0}) and not emulator.outputs_off({"Outputs": 2})
    with pytest.raises(ConfigError, match=r"sim.toml: has no \[relays\]: 12-channel simulator's fault relays"):
        emulator.set_relay(0, open_wire=True)


def _msg(message, values) -> can.Message:
    return can.Message(arbitration_id=message.frame_id, data=message.encode(values), is_extended_id=False)


# Bad maps ------------------------------------------------------------------------------------------------
BAD_MAPS = [
    # (what to change in the other make's map, the error it must give)
    (("[outputs]", "[output]"), r"unknown table \[output\] \(did you mean 'outputs'\?\)"),
    ((", count = 4 },\n          { signals = \"SIM_Cells_B", " },\n          { signals = \"SIM_Cells_B"),
     r"\[cells\] series\[0\].count = None, expected how many channels it carries"),
    (("first = 9, scale = 0.001 }", "first = 9, scale = 0.001, count = 3 }"),
     r"\[cells\] series carry 11 channels; the rig has 12"),
    (("Ch{index}_mV\", first = 5", "Chan{index}_mV\", first = 5"),
     r"\[cells\] series\[1\]: the first cell would be signal 'Chan5_mV' .* \(did you mean 'Ch5_mV'"),
    (("first = 9, scale = 0.001 }", "first = 9, scale = 0.001, count = 5 }"),
     r"\[cells\] series\[2\]: channel 13 would be signal 'Ch13_mV', which message 'SIM_Cells_C' does not have"),
    (('readback = "SIM_State.Outputs"\n', ""), r"\[outputs\] has no 'readback', which the bench needs"),
    (('on = "RUN"', 'on = "GO"'), r"\[outputs\] on: 'GO' is not a value of signal 'Mode' \(its value table has OFF"),
    (("cycle_s = 0.05", "period_s = 0.05"), r"\[outputs\] unknown key 'period_s'"),
    (("cycle_s = 0.05\n", ""), r"\[outputs\] message 'SIM_Command' has no GenMsgCycleTime in its DBC; give cycle_s"),
    (('series = [{ signals = "SIM_Cells_A', 'series = [{ signal = "SIM_Cells_A'),
     r"\[cells\] series\[0\]: unknown key 'signal' \(did you mean 'signals'\?\)"),
    (("[outputs]", "[relays]\nmessage = \"SIM_Command\"\nchannel = \"Mode\"\n\n[outputs]"),
     r"\[relays\] maps no relay; expected one or more of open_wire, short"),
    (("[outputs]", "[insulation]\nresistance = \"SIM_Command.Mode\"\n\n[outputs]"),
     r"\[insulation\] has no 'connect'; expected both of resistance, connect"),
    (("[outputs]", "[insulation]\nresistance = \"SIM_Cells_A.Ch1_mV\"\nconnect = \"SIM_Command.Mode\"\n\n[outputs]"),
     r"\[insulation\] connect is in 'SIM_Command', resistance in 'SIM_Cells_A'; expected one message"),
    (("[outputs]", "[insulation]\nresistance = \"SIM_Command.Mode\"\nconnect = \"SIM_Command.Mode\"\n"
                   "depth = \"SIM_Cells_A.Ch1_mV\"\n\n[outputs]"),
     r"\[insulation\] depth is in 'SIM_Cells_A', resistance in 'SIM_Command'; expected one message"),
    (("[outputs]", "[contactor_weld]\npos = \"SIM_Command.Mode\"\nneg = \"SIM_Cells_A.Ch1_mV\"\n\n[outputs]"),
     r"\[contactor_weld\] neg is in 'SIM_Cells_A', pos in 'SIM_Command'; expected one message"),
    (("[outputs]", "[contactor_weld]\npos = \"SIM_Command.Mode\"\nneg = \"SIM_Command.Mode\"\n"
                   "pre = \"SIM_Cells_A.Ch1_mV\"\n\n[outputs]"),
     r"\[contactor_weld\] pre is in 'SIM_Cells_A', pos in 'SIM_Command'; expected one message"),
    (("[outputs]", "[contactor_stuck_open]\npos = \"SIM_Command.Mode\"\n\n[outputs]"),
     r"\[contactor_stuck_open\] has no 'neg'; expected both of pos, neg"),
    (("[outputs]", "[dc_link_short]\nsignals = \"SIM_Command.Mode\"\n\n[outputs]"),
     r"\[dc_link_short\] unknown key 'signals' \(did you mean 'signal'\?\)"),
    (("[outputs]", "[hvil]\nsignal = \"SIM_Command.Hvil\"\n\n[outputs]"),
     r"\[hvil\] signal = 'Hvil', expected a signal of message 'SIM_Command'"),
]


@pytest.mark.parametrize("change,error", BAD_MAPS, ids=[str(i) for i in range(len(BAD_MAPS))])
def test_a_bad_map_is_refused_naming_the_file_and_key(tmp_path, change, error):
    old, new = change
    assert old in OTHER_MAP, old
    (tmp_path / "sim.dbc").write_text(OTHER_DBC)
    (tmp_path / "bad.toml").write_text(OTHER_MAP.replace(old, new, 1))
    with pytest.raises(ConfigError, match=error) as caught:
        load_ce_map(tmp_path / "bad.toml", load_dbc(tmp_path / "sim.dbc"), 12)
    assert str(tmp_path / "bad.toml") in str(caught.value)


@pytest.mark.parametrize("section,capability", [("relays", "fault_relays"), ("insulation", "hv_insulation"),
                                                ("contactor_weld", "contactor_weld"),
                                                ("contactor_stuck_open", "contactor_stuck_open"),
                                                ("dc_link_short", "dc_link_short"), ("hvil", "hvil"),
                                                ("afe_link", "afe_link")])
def test_a_rig_whose_capabilities_the_map_cannot_serve_fails_its_preflight(tmp_path, section, capability):
    text = REFERENCE_CE_MAP.read_text()
    start = text.index(f"[{section}]")
    end = text.find("\n[", start + 1)
    (tmp_path / "less.toml").write_text(text[:start] + (text[end + 1:] if end >= 0 else ""))
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'cell_emulator.map="{tmp_path / "less.toml"}"'])
    with pytest.raises(ConfigError, match=rf"\[rig\]: capability '{capability}', but the cell-emulator map .* has no "
                                          rf"\[{section}\]; map them, or drop the capability"):
        preflight(rig)


def _without_key(tmp_path, key: str):
    """The reference map without its line `key = ...` (an optional key: the precharge weld relay, the insulation
    fault's depth), as no_<key>.toml."""
    text = REFERENCE_CE_MAP.read_text()
    line = next(line for line in text.splitlines(keepends=True) if line.startswith(f"{key} = "))
    (tmp_path / f"no_{key}.toml").write_text(text.replace(line, ""))
    return tmp_path / f"no_{key}.toml"


def _without_capability(tmp_path, key: str, capability: str):
    """A sim rig on the reference map without `key`: its preflight fails while the rig claims `capability`; returns
    the rig without the capability."""
    less = _without_key(tmp_path, key)
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'cell_emulator.map="{less}"'])
    with pytest.raises(ConfigError, match=rf"capability '{capability}', but the cell-emulator map .*no_{key}.toml has "
                                          rf"no '{key}' in \[.*\]; map them, or drop the capability"):
        preflight(rig)
    capable = [c for c in rig.data["rig"]["capabilities"] if c != capability]
    return load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'cell_emulator.map="{less}"',
                                                          f"rig.capabilities={json.dumps(capable)}"])


def test_a_rig_that_welds_the_precharge_contactor_needs_its_relay_in_the_map(tmp_path):
    rig = _without_capability(tmp_path, "pre", "precharge_weld")
    with Bench(rig) as bench:
        bench.cell_emulator.set_contactor_weld("neg")   # the main ones still weld
        bench.loop.run_for(0.01)
        assert bench.boards.cell_emulator.welded_contactors == {"neg"}
        with pytest.raises(ConfigError, match=r"no_pre.toml: \[contactor_weld\] has no 'pre': .* cannot weld the "
                                              r"precharge contactor"):
            bench.cell_emulator.set_contactor_weld("pre")


def test_a_rig_that_moves_its_insulation_fault_needs_its_depth_in_the_map(tmp_path):
    rig = _without_capability(tmp_path, "depth", "insulation_tap")
    with Bench(rig) as bench:
        bench.cell_emulator.set_insulation_fault(10_000.0)   # at the one point the bench has
        bench.loop.run_for(0.01)
        assert bench.boards.cell_emulator.insulation_fault_ohm == 10_000.0
        with pytest.raises(ConfigError, match=r"no_depth.toml: \[insulation\] has no 'depth': .* connects its "
                                              r"insulation fault at one point only, not at cell tap 8"):
            bench.cell_emulator.set_insulation_fault(10_000.0, 8)


@pytest.mark.parametrize("overrides", [[], MAPPED], ids=["built-in", "mapped"])
def test_an_insulation_fault_goes_out_at_its_tap(overrides):
    """A tap counted from the pack's negative terminal, as a front end counts them, arrives as the cells between it
    and the positive terminal; no tap is the positive terminal; a tap off the stack is refused, naming the range."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", overrides)) as bench:
        board, n = bench.boards.cell_emulator, bench.pack.n_series
        for tap, depth in ((0, n), (5, n - 5), (n, 0), (None, 0)):
            bench.cell_emulator.set_insulation_fault(10_000.0, tap)
            bench.loop.run_for(0.01)
            assert board.insulation_fault_depth == depth and board.insulation_fault_ohm == 10_000.0, tap
        for tap in (-1, n + 1, 2.5, True):
            with pytest.raises(ValueError, match=rf"insulation fault tap {tap!r}: expected a cell tap from 0 \(the "
                                                 rf"pack's negative terminal\) to {n} \(its positive terminal\)"):
                bench.cell_emulator.set_insulation_fault(10_000.0, tap)


def test_a_map_that_carries_too_few_channels_fails_its_preflight(tmp_path):
    twelve = ('first = 1, count = 8 },\n          { signals = "CE_CellSetpoint.CE_Cell{index:02d}_Setpoint", '
              'first = 9, count = 4 }]\n\n[temperatures]')
    (tmp_path / "few.toml").write_text(REFERENCE_CE_MAP.read_text().replace('first = 1 }]\n\n[temperatures]', twelve, 1))
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'cell_emulator.map="{tmp_path / "few.toml"}"'])
    with pytest.raises(ConfigError, match=r"few.toml: \[cells\] series carry 12 channels; the rig has 16"):
        preflight(rig)


def test_the_reference_map_loads_for_the_reference_dbcs():
    ce_map = load_ce_map(REFERENCE_CE_MAP, load_dbcs(REFERENCE_DBCS), 16)
    assert [frame.mux_value for frame in ce_map.cells.frames] == [0, 1, 2, 3]
    assert ce_map.cells.frames[1].channels[0] == (4, "CE_Cell05_Setpoint")
    assert len(ce_map.temperatures.frames) == 3 and ce_map.relays["channel"] == "CE_Relay_Channel"


@pytest.mark.parametrize("overrides", [[], MAPPED], ids=["built-in", "mapped"])
def test_an_insulation_fault_the_signal_cannot_carry_is_refused(overrides):
    """Beyond CE_Iso_Resistance's range the frame would carry another resistance: both drivers refuse it."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", overrides)) as bench:
        bench.cell_emulator.set_insulation_fault(5000.0)   # in range
        with pytest.raises(ConfigError, match=r"insulation fault of 20000000.0 ohm: expected 0 to 1.67772e\+07 ohm "
                                              r"\(CE_Iso_Resistance\), or None to disconnect"):
            bench.cell_emulator.set_insulation_fault(2e7)


CONTACTOR_FAULTS = [("weld", "set_contactor_weld", "welded_contactors", ("neg", "pos", "pre")),
                    ("stuck open", "set_contactor_stuck_open", "stuck_open_contactors", ("neg", "pos"))]


@pytest.mark.parametrize("fault,setter,board_relays,contactors", CONTACTOR_FAULTS, ids=["weld", "stuck_open"])
@pytest.mark.parametrize("overrides", [[], MAPPED], ids=["built-in", "mapped"])
def test_a_contactor_fault_goes_out_on_its_relay_and_a_bad_name_is_refused(overrides, fault, setter, board_relays,
                                                                           contactors):
    """Both drivers weld (a main contactor or the precharge one), or hold open (a main one), one at a time,
    release all with None, and refuse a name they do not know."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", overrides)) as bench:
        inject = getattr(bench.cell_emulator, setter)
        for contactor in contactors:
            inject(contactor)
            bench.loop.run_for(0.01)
            assert getattr(bench.boards.cell_emulator, board_relays) == {contactor}
        inject(None)
        bench.loop.run_for(0.01)
        assert getattr(bench.boards.cell_emulator, board_relays) == set()
        expected = ", ".join(repr(c) for c in ("pos", "neg", "pre") if c in contactors)
        with pytest.raises(ConfigError, match=rf"contactor {fault} 'precharge': expected one of {expected}, or None"):
            inject("precharge")


@pytest.mark.parametrize("section,setter,arg", [("contactor_weld", "set_contactor_weld", "pos"),
                                                ("contactor_stuck_open", "set_contactor_stuck_open", "pos"),
                                                ("dc_link_short", "set_dc_link_short", True),
                                                ("hvil", "set_hvil_open", True),
                                                ("afe_link", "set_afe_link_open", True)])
def test_a_map_without_a_high_voltage_relay_refuses_to_inject_naming_its_file(tmp_path, section, setter, arg):
    """On a rig that does not claim the capability (so its preflight passes), a test that injects it anyway
    gets the map's file and the table it lacks."""
    text = REFERENCE_CE_MAP.read_text()
    start = text.index(f"[{section}]")
    end = text.find("\n[", start + 1)
    (tmp_path / "less.toml").write_text(text[:start] + (text[end + 1:] if end >= 0 else ""))
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'cell_emulator.map="{tmp_path / "less.toml"}"',
                                                         'rig.capabilities=["emulated"]'])
    with Bench(rig) as bench:
        with pytest.raises(ConfigError, match=rf"less.toml: has no \[{section}\]: .* cannot"):
            getattr(bench.cell_emulator, setter)(arg)


@pytest.mark.parametrize("overrides", [[], MAPPED], ids=["built-in", "mapped"])
@pytest.mark.parametrize("setter,board_relay", [("set_dc_link_short", "dc_link_shorted"),
                                                ("set_hvil_open", "hvil_open"), ("set_afe_link_open", "afe_link_open")])
def test_a_one_signal_relay_goes_out_on_its_frame(overrides, setter, board_relay):
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", overrides)) as bench:
        getattr(bench.cell_emulator, setter)(True)
        bench.loop.run_for(0.01)
        assert getattr(bench.boards.cell_emulator, board_relay)
        getattr(bench.cell_emulator, setter)(False)
        bench.loop.run_for(0.01)
        assert not getattr(bench.boards.cell_emulator, board_relay)
