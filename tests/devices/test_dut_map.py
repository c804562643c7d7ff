"""A BMS with a DBC of its own, through a DUT map (hil/devices/dut_map.py): the map is checked on load, the
mapped proxy reads what the built-in one reads and sends what the BMS's DBC asks, and the bench's loop and
safe state run through it."""
from __future__ import annotations

import math

import can
import numpy as np
import pytest
from can.interfaces.virtual import VirtualBus

from hil.bench import Bench
from hil.can.dbc import load_dbcs
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.clock import VirtualClock
from hil.devices.bms import Bms, MappedBms
from hil.devices.dut_map import load_dut_map
from hil.errors import ConfigError
from hil.loop import Loop
from hil.protocol import BmsState
from hil.rig import PROJECT_ROOT, load_rig, preflight
from tests.can.conftest import fresh_channel, realworld

DUTS = PROJECT_ROOT / "fixtures" / "duts"
REFERENCE_MAP = DUTS / "reference-bms.toml"
REFERENCE_DBCS = [PROJECT_ROOT / "dbc" / name for name in ("bms.dbc", "vcu.dbc", "cell_emulator.dbc")]
MAPPED = ['dut.map="../fixtures/duts/reference-bms.toml"']
SPREAD = ["pack.soc_spread=0.03"]   # cells bleed at rest
N_CELLS = 16   # rigs/sim.toml's pack.n_series


def _reference_proxy_reads(bms: MappedBms) -> tuple:
    """What the built-in proxy reads from the same Monitor."""
    return (Bms.state.fget(bms), Bms.contactors_closed.fget(bms), Bms.faults.fget(bms), Bms.warnings.fget(bms),
            Bms.soc.fget(bms), Bms.discharge_limit_a.fget(bms), Bms.charge_limit_a.fget(bms),
            Bms._balancing_bits(bms), Bms.pack_current_a.fget(bms), Bms.pack_voltage_v.fget(bms),
            _comparable(Bms.cell_voltages_v(bms, N_CELLS)), _comparable(Bms.cell_temperatures_c(bms, N_CELLS)),
            Bms.firmware_version.fget(bms))


def _mapped_reads(bms: MappedBms) -> tuple:
    return (bms.state, bms.contactors_closed, bms.faults, bms.warnings, bms.soc, bms.discharge_limit_a,
            bms.charge_limit_a, bms._balancing_bits(), bms.pack_current_a, bms.pack_voltage_v,
            _comparable(bms.cell_voltages_v(N_CELLS)), _comparable(bms.cell_temperatures_c(N_CELLS)),
            bms.firmware_version)


def _comparable(cells: np.ndarray) -> tuple:
    """Cells as a tuple that == compares, a cell not yet reported (NaN, unequal to itself) as None."""
    return tuple(None if math.isnan(value) else value for value in cells)


def test_the_reference_bms_through_its_map_reads_as_the_built_in_proxy_at_every_tick():
    """Power-up, balancing, an over-voltage fault, its clearing and the safe state, compared tick by tick."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", MAPPED + SPREAD)) as bench:
        bms = bench.bms
        assert type(bms) is MappedBms
        seen, differences, bleeding = set(), [], []
        inner = bench.loop.tick_fn

        def compared_tick(t_s: float) -> None:
            inner(t_s)
            mapped, reference = _mapped_reads(bms), _reference_proxy_reads(bms)
            seen.add((mapped[0], mapped[1], tuple(mapped[2])))
            bleeding.append(mapped[7] != 0)
            if mapped != reference:
                differences.append((t_s, mapped, reference))
        bench.loop.tick_fn = compared_tick
        bench.cell_emulator.enable(True)
        bench.bms.wait_state("standby", 3.0)
        bench.loop.run_for(5.0)
        bench.power_up()
        bench.loop.run_for(2.0)
        bench.force_cell(0, 4.4)
        bench.bms.wait_state("fault", 2.0)
        bench.force_cell(0, None)
        bench.bms.clear_faults()
        bench.bms.wait_state("normal", 3.0)
        assert not np.isnan(bms.cell_voltages_v(N_CELLS)).any() and bms.pack_voltage_v > 0   # compared, not NaN
        state = bench.make_safe()
        assert differences == []
        assert state.confirmed, state.describe()
        assert {(BmsState.NORMAL, True, ()), (BmsState.FAULT, False, ("cell_ov",))} <= seen
        assert any(bleeding)


def test_the_safe_state_reads_back_the_mapped_messages():
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", MAPPED)) as bench:
        bench.power_up()
        steps = {step.name: step for step in bench.make_safe().steps}
    assert steps["contactors"].confirmed and "BMS_Status BMS_ContactorPos=0 BMS_ContactorNeg=0" in steps["contactors"].seen
    assert "VCU_Request out by" in steps["contactors"].seen
    assert steps["load"].confirmed and "BMS_PackData BMS_PackCurrent=" in steps["load"].seen


def test_the_maps_further_heartbeat_frames_go_out_and_stop_with_the_request():
    """The reference map lists VCU_Heartbeat: the host then sends what the built-in proxy sends, and a test of
    the BMS's heartbeat timeout silences both."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml", MAPPED)) as bench:
        assert bench.bms.heartbeat_messages == ("VCU_Request", "VCU_Heartbeat")
        bench.loop.run_for(0.3)
        sent_s = {name: bench.sender.last_sent_s(name) for name in bench.bms.heartbeat_messages}
        assert all(t is not None and t > 0.15 for t in sent_s.values()), sent_s
        bench.bms.heartbeat(False)
        stopped_s = bench.loop.t_s
        bench.loop.run_for(0.5)
        assert all(bench.sender.last_sent_s(name) < stopped_s for name in bench.bms.heartbeat_messages)


def test_a_request_the_map_does_not_have_is_a_clear_error(tmp_path):
    text = REFERENCE_MAP.read_text().replace('SAFE = "SAFE"\n', "").replace('clear_faults = "VCU_ClearFaults"\n', "")
    (tmp_path / "no-safe.toml").write_text(text)
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'dut.map="{tmp_path / "no-safe.toml"}"'])
    with Bench(rig) as bench:
        with pytest.raises(ConfigError, match=r"no-safe.toml: \[request.modes\] has no SAFE.*mapped: STANDBY, "
                                              r"DISCHARGE, CHARGE"):
            bench.bms.request("safe")
        with pytest.raises(ConfigError, match=r"no-safe.toml: \[request\] has no clear_faults signal"):
            bench.bms.clear_faults()


# foxBMS 2, with its real DBC -----------------------------------------------------------------------------
@pytest.fixture
def foxbms():
    """The foxBMS 2 map on its DBC, a Monitor and sender on a virtual bus, and the BMS's side of that bus."""
    db = load_dbcs([realworld("foxbms2_foxbms.dbc")])
    dut_map = load_dut_map(DUTS / "foxbms2.toml", db)
    channel = fresh_channel()
    with VirtualBus(channel=channel) as host_bus, VirtualBus(channel=channel) as bms_bus:
        clock = VirtualClock()
        monitor = Monitor(db, clock.now_s)
        sender = PeriodicSender(host_bus, db)

        def tick(t_s: float) -> None:
            sender.tick(t_s)
            while (msg := host_bus.recv(timeout=0)) is not None:
                monitor.on_message_received(msg)
        loop = Loop(clock, 0.01, tick)
        bms = MappedBms(dut_map, monitor, sender, loop)

        def send(name: str, **signals) -> None:
            """One frame of the BMS's, every other signal (of its multiplexer group) at 0."""
            message = db.get_message_by_name(name)
            group = signals.get(f"{name}_Mux")
            values = {s.name: 0 for s in message.signals if s.multiplexer_ids in (None, [group])}
            bms_bus.send(can.Message(arbitration_id=message.frame_id, is_extended_id=False,
                                     data=message.encode(values | signals)))
            loop.step()

        def requests() -> list[dict]:
            frames = []
            while (msg := bms_bus.recv(timeout=0)) is not None:
                frames.append(db.decode_message(msg.arbitration_id, msg.data, decode_choices=False))
            return frames
        yield bms, send, requests, loop


def test_foxbms_states_contactors_faults_and_numbers_read_through_its_map(foxbms):
    bms, send, _requests, _loop = foxbms
    assert bms.describe().startswith("state=no f_BmsState.BmsState received")
    send("f_BmsState", BmsState=8, PackOvercurrentDischargeError=1, InsulationResistance=1000)  # DISCHARGE
    send("f_StringState", f_StringState_Mux=0, IsStringConnected=1, OvervoltageMolWarning=1, OpenWireError=1)
    send("f_PackValuesP0", Current=12.5)
    send("f_PackValuesP1", InsulationResistance=7000)   # the same signal name in another message
    send("f_PackStateEstimation", MinimumSoc=61.5)
    send("f_PackLimits", MaximumDischargeCurrent=120.25, MaximumChargeCurrent=40.5)
    assert bms.state == BmsState.NORMAL and bms.contactors_closed
    assert bms.faults == ["discharge_oc", "sense_wire"] and bms.warnings == ["cell_ov"]
    assert (bms.soc, bms.discharge_limit_a, bms.charge_limit_a) == (pytest.approx(0.615), 120.25, 40.5)
    assert bms.reported_current_a(bms.monitor.snapshot(["Current"], message="f_PackValuesP0")) == 12.5
    assert bms.monitor.latest("f_BmsState")["InsulationResistance"] == 1000
    assert not bms.balancing_mask(16).any()
    send("f_BmsState", BmsState=11)   # UNDEFINED: the map leaves it out
    assert bms.state is None
    assert "state=f_BmsState.BmsState=11 (not in foxbms2.toml [states])" in bms.describe()
    send("f_StringState", f_StringState_Mux=0, IsStringConnected=0)
    assert not bms.contactors_closed and bms.faults == []


def test_a_fault_coded_as_one_value_of_a_signal(tmp_path):
    """A BMS that reports one fault code at a time: each harness fault is one value (a value-table name or a
    number) of that signal, raised only while the signal holds it."""
    text = (DUTS / "foxbms2.toml").read_text().replace(   # foxBMS 2's fatal error code, with its value table
        "[faults]", '[faults]\nafe_alarm = [{ signal = "f_BmsFatalError.FatalErrorCode", value = "DIAG_ID_AFE_ALARM" }]\n'
                    'code_58 = [{ signal = "f_BmsFatalError.FatalErrorCode", value = 58 }]', 1)
    (tmp_path / "codes.toml").write_text(text)
    db = load_dbcs([realworld("foxbms2_foxbms.dbc")])
    dut_map = load_dut_map(tmp_path / "codes.toml", db)
    code = dut_map.faults["afe_alarm"][0]
    assert str(code) == "f_BmsFatalError.FatalErrorCode = 84" and dut_map.faults["code_58"][0].equals == 58
    assert [code.value({"FatalErrorCode": value}) for value in (83, 84, 85)] == [0, 1, 0]
    assert code.value({}) is None


def test_foxbms_cells_and_pack_voltage_read_through_its_map_from_their_own_messages(foxbms):
    bms, send, _requests, _loop = foxbms
    assert bms.pack_voltage_v is None and np.isnan(bms.cell_voltages_v(8)).all()   # nothing received yet
    send("f_CellVoltages", f_CellVoltages_Mux=0, CellVoltage_000=3301, CellVoltage_001=3302, CellVoltage_002=3303,
         CellVoltage_003=3304)   # mV
    # The front end's frame foxBMS takes in, with the same signal names: not what foxBMS reports.
    send("AFE_CellVoltages", AFE_CellVoltages_Mux=0, CellVoltage_000=4999)
    send("AFE_CellVoltages", AFE_CellVoltages_Mux=1, CellVoltage_004=4999)
    send("f_CellTemperatures", f_CellTemperatures_Mux=0, CellTemperature_000=-5, CellTemperature_005=31)
    send("f_PackValuesP0", Current=-20.5, BatteryVoltage=399.8)
    assert bms.monitor.values["CellVoltage_000"] == 4999   # the name's latest value, of any message
    np.testing.assert_allclose(bms.cell_voltages_v(6), [3.301, 3.302, 3.303, 3.304, np.nan, np.nan], rtol=1e-12)
    np.testing.assert_array_equal(bms.cell_temperatures_c(7), [-5, 0, 0, 0, 0, 31, np.nan])
    assert bms.pack_voltage_v == pytest.approx(399.8) and bms.pack_current_a == -20.5
    assert bms.cell_voltages_v(0).shape == (0,)


def test_readbacks_a_map_leaves_out_read_as_none(tmp_path):
    """None, not NaN: the suite skips what the BMS's proxy cannot read, and fails what it did not report."""
    left_out = ("pack_voltage_v", "cell_voltages_v", "cell_temperatures_c")
    text = "".join(line for line in REFERENCE_MAP.read_text().splitlines(keepends=True)
                   if not line.startswith(left_out))
    (tmp_path / "few.toml").write_text(text)
    db = load_dbcs(REFERENCE_DBCS)
    dut_map = load_dut_map(tmp_path / "few.toml", db)
    assert dut_map.cells == {} and "pack_voltage_v" not in dut_map.read
    dut_map.check_cells(1000, db)   # nothing to check
    with VirtualBus(channel=fresh_channel()) as bus:
        bms = MappedBms(dut_map, Monitor(db, VirtualClock().now_s), PeriodicSender(bus, db), loop=None)
        assert (bms.pack_voltage_v, bms.cell_voltages_v(16), bms.cell_temperatures_c(16)) == (None, None, None)


def test_a_cell_series_longer_than_its_message_is_refused_naming_the_first_missing_signal():
    db = load_dbcs([realworld("foxbms2_foxbms.dbc")])
    dut_map = load_dut_map(DUTS / "foxbms2.toml", db)
    assert dut_map.cells["cell_voltages_v"].names(3) == ["CellVoltage_000", "CellVoltage_001", "CellVoltage_002"]
    assert {"f_CellVoltages", "f_CellTemperatures"} <= dut_map.messages()
    dut_map.check_cells(180, db)
    with pytest.raises(ConfigError, match=r"foxbms2.toml: \[read\] cell_temperatures_c: cell 181 would be signal "
                                          r"'CellTemperature_180', which message 'f_CellTemperatures' does not "
                                          r"have: it has signals for the first 180 of the rig's 216 cells"):
        dut_map.check_cells(216, db)
    with pytest.raises(ConfigError, match=r"\[read\] cell_voltages_v: cell 217 would be signal 'CellVoltage_216'"):
        dut_map.check_cells(217, db)


def test_a_rig_whose_pack_outnumbers_the_mapped_cells_fails_its_preflight(tmp_path):
    path = tmp_path / "short-map.toml"
    temps = 'BMS_Temp{index:02d}", first = '   # BMS_Temp90..96 are there for 7 of the 16 cells
    path.write_text(REFERENCE_MAP.read_text().replace(temps + "1", temps + "90"))
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'dut.map="{path}"'])
    with pytest.raises(ConfigError, match=r"short-map.toml: \[read\] cell_temperatures_c: cell 8 would be signal "
                                          r"'BMS_Temp97', .* it has signals for the first 7 of the rig's 16 cells"):
        preflight(rig)


def test_foxbms_requests_go_out_as_its_state_request_frame(foxbms):
    bms, _send, requests, loop = foxbms
    loop.run_for(0.3)
    sent = requests()
    assert len(sent) == 3 and {frame["RequestBmsMode"] for frame in sent} == {0}  # Standby, every 100 ms
    bms.request("discharge")
    loop.run_for(0.2)
    assert [frame["RequestBmsMode"] for frame in requests()] == [1, 1]
    bms.clear_faults()
    loop.run_for(0.2)
    assert [frame["ResetPersistentFlags"] for frame in requests()] == [1, 0, 0]  # one frame, then restored
    bms.heartbeat(False)
    loop.run_for(0.5)
    assert requests() == []
    with pytest.raises(ConfigError, match=r"foxbms2.toml: \[request.modes\] has no SAFE: foxBMS 2 cannot be asked"):
        bms.request("safe")


def test_foxbms_says_its_version_when_asked_once(foxbms):
    """foxBMS 2 answers f_Debug's VersionInfo request in f_DebugResponse; until then its build is unknown."""
    bms, send, requests, loop = foxbms
    assert bms.firmware_message == "f_DebugResponse" and bms.firmware_version is None
    loop.run_for(0.05)
    requests()   # the periodic state request
    bms.ask_firmware_version()
    asked = [frame for frame in requests() if "GetBmsSoftwareVersion" in frame]
    assert [(frame["f_Debug_Mux"], frame["GetBmsSoftwareVersion"]) for frame in asked] == [(0, 1)]
    send("f_DebugResponse", f_DebugResponse_Mux=1, UniqueId=77)   # another answer: no version in it
    assert bms.firmware_version is None
    send("f_DebugResponse", f_DebugResponse_Mux=0, MajorVersionNumber=1, MinorVersionNumber=11,
         PatchVersionNumber=0)
    assert bms.firmware_version == "1.11.0"


def test_a_map_without_firmware_reads_no_version_and_asks_nothing(tmp_path):
    text = REFERENCE_MAP.read_text()
    path = tmp_path / "map.toml"
    path.write_text(text[:text.index("[firmware]")])
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'dut.map="{path}"'])
    with Bench(rig) as bench:
        bench.loop.run_for(1.2)   # a BMS_Version has gone out
        assert bench.bms.firmware_message is None and bench.firmware_version() is None
    with Bench(load_rig(rig.path, [f'dut.map="{path}"', 'dut.firmware="9.9.9"'])) as bench:
        bench.check_firmware()   # nothing to check it against: the report records the rig's word


# Bad maps ------------------------------------------------------------------------------------------------
BAD_MAPS = [
    # (what to change in the reference map, what the error must say)
    (('state = "BMS_Status.BMS_State"', 'state = "BMS_Status.BMS_Stat"'),
     r"\[read\] state = 'BMS_Stat', expected a signal of message 'BMS_Status' \(did you mean 'BMS_State'"),
    (('state = "BMS_Status.BMS_State"', 'state = "BMS_Statu.BMS_State"'),
     r"\[read\] state: message 'BMS_Statu' is not in the rig's DBC files \(did you mean 'BMS_Status'"),
    (('state = "BMS_Status.BMS_State"', 'state = "BMS_State"'), r"\[read\] state = 'BMS_State', expected \"Message.Signal\""),
    (('state = "BMS_Status.BMS_State"\n', ""), r"\[read\] has no 'state', which the bench needs"),
    (('FAULT = ["FAULT"]', 'FAULT = ["FAILED"]'),
     r"\[states\] FAULT: 'FAILED' is not a value of signal 'BMS_State' \(its value table has INIT, STANDBY"),
    (('FAULT = ["FAULT"]', 'FAULT = ["NORMAL"]'), r"\[states\] FAULT: value 'NORMAL' is already NORMAL"),
    (('FAULT = ["FAULT"]', "FAULT = [16]"), r"\[states\] FAULT = 16 is outside signal 'BMS_State''s range \[0, 15\]"),
    (('FAULT = ["FAULT"]', 'FAILED = ["FAULT"]'), r"\[states\] 'FAILED' is not one of the harness's INIT, STANDBY"),
    (('STANDBY = "STANDBY"\n', ""), r"\[request.modes\] has no STANDBY: the safe state asks"),
    (('mode = "VCU_ModeRequest"', 'mode = "BMS_State"'),
     r"\[request\] mode = 'BMS_State', expected a signal of message 'VCU_Request'"),
    (('contactors = ["BMS_Status.BMS_ContactorPos", "BMS_Status.BMS_ContactorNeg"]',
      'contactors = ["BMS_Status.BMS_ContactorPos", "BMS_PackData.BMS_PackVoltage"]'),
     r"\[read\] contactors: .* are in different messages"),
    (("cell_ov = [{ signal = \"BMS_Status.BMS_FaultBits\", bit = 0 }]",
      "cel_ov = [{ signal = \"BMS_Status.BMS_FaultBits\", bit = 0 }]"),
     r"\[faults\] 'cel_ov' is not a fault name of the harness \(did you mean 'cell_ov'\?\)"),
    (("bit = 0 }", "bit = 24 }"), r"\[faults\] cell_ov: bit = 24, expected a bit of the 24-bit signal 'BMS_FaultBits'"),
    (("bit = 0 }", "value = \"FAULTY\" }"),
     r"\[faults\] cell_ov: value: 'FAULTY' is not a value of signal 'BMS_FaultBits' \(it has no value table\)"),
    (("bit = 0 }", "value = 17000000 }"),
     r"\[faults\] cell_ov: value = 17000000 is outside signal 'BMS_FaultBits''s range"),
    (("bit = 0 }", "bit = 0, value = 1 }"), r"\[faults\] cell_ov: both bit and value"),
    (("[warnings]", "[warning]"), r"unknown table \[warning\] \(did you mean 'warnings'\?\)"),
    (('heartbeats = ["VCU_Heartbeat"]', 'heartbeats = ["VCU_Heartbeet"]'),
     r"\[request\] heartbeats: message 'VCU_Heartbeet' is not in the rig's DBC files \(did you mean 'VCU_Heartbeat'"),
    (('heartbeats = ["VCU_Heartbeat"]', 'heartbeats = ["VCU_Request"]'),
     r"\[request\] heartbeats: 'VCU_Request' is already sent \(the request message, or listed twice\)"),
    (('heartbeats = ["VCU_Heartbeat"]', 'heartbeats = "VCU_Heartbeat"'),
     r"\[request\] heartbeats = 'VCU_Heartbeat', expected a list of message names"),
    (('heartbeats = ["VCU_Heartbeat"]', 'heartbeats = [{ message = "VCU_Heartbeat", cycle_s = 0 }]'),
     r"\[request\] heartbeats: cycle_s = 0, expected seconds in \(0, 10\]"),
    (('heartbeats = ["VCU_Heartbeat"]', 'heartbeats = [{ message = "VCU_Heartbeat", period = 0.1 }]'),
     r"\[request\] heartbeats: unknown key 'period'; expected message, cycle_s"),
    (("soc = {", "state_of_charge = {"), r"\[read\] unknown key 'state_of_charge'"),
    (("scale = 0.01", "scale = \"0.01\""), r"\[read\] soc.scale = '0.01', expected a finite number"),
    (('"BMS_PackData.BMS_PackVoltage"', '"BMS_PackData.BMS_PackVolts"'),
     r"\[read\] pack_voltage_v = 'BMS_PackVolts', expected a signal of message 'BMS_PackData' \(did you mean"),
    # cell series: the first of them in the map is cell_voltages_v's
    (('{ signals = "BMS_CellVoltages.BMS_Cell{index:02d}_Voltage", first = 1 }',
      '"BMS_CellVoltages.BMS_Cell01_Voltage"'),
     r"\[read\] cell_voltages_v = 'BMS_CellVoltages.BMS_Cell01_Voltage', expected a table \{ signals = "),
    (("first = 1 }", "frist = 1 }"),
     r"\[read\] cell_voltages_v: unknown key 'frist' \(did you mean 'first'\?\); expected signals, first, scale"),
    (("BMS_Cell{index:02d}_Voltage", "BMS_Cell01_Voltage"),
     (r"\[read\] cell_voltages_v.signals = 'BMS_CellVoltages.BMS_Cell01_Voltage' has fields \[\]; expected "
      r"\"Message.Signal\" whose signal has one \{index\} field")),
    (("BMS_Cell{index:02d}_Voltage", "BMS_Cell{cell:02d}_Voltage"),
     r"\[read\] cell_voltages_v.signals = 'BMS_CellVoltages.BMS_Cell\{cell:02d\}_Voltage' has fields \['cell'\]"),
    (("BMS_Cell{index:02d}_Voltage", "BMS_Cell{index:02d_Voltage"),
     r"\[read\] cell_voltages_v.signals = 'BMS_CellVoltages.BMS_Cell\{index:02d_Voltage': unmatched '\{'"),
    (('"BMS_CellVoltages.BMS_Cell{', '"BMS_Cell{'),
     r"\[read\] cell_voltages_v.signals = 'BMS_Cell\{index:02d\}_Voltage', expected \"Message.Signal\""),
    (("BMS_Cell{index:02d}_Voltage", "BMS_Cell{index:02q}_Voltage"),
     r"\[read\] cell_voltages_v.signals: 'BMS_Cell\{index:02q\}_Voltage' cannot format index = 1: Unknown format code"),
    (('"BMS_CellVoltages.BMS_Cell{', '"BMS_CellVoltage.BMS_Cell{'),
     (r"\[read\] cell_voltages_v.signals: message 'BMS_CellVoltage' is not in the rig's DBC files \(did you mean "
      r"'BMS_CellVoltages'")),
    (("first = 1 }", "first = -1 }"), r"\[read\] cell_voltages_v.first = -1, expected the first cell's number"),
    (("first = 1 }", "first = 0 }"),
     (r"\[read\] cell_voltages_v: the first cell would be signal 'BMS_Cell00_Voltage' \(index = 0\), which message "
      r"'BMS_CellVoltages' does not have \(with first = 1 it would be 'BMS_Cell01_Voltage', which it has\)")),
    (("BMS_Cell{index:02d}_Voltage", "BMS_Cell{index:02d}_Volts"),
     (r"\[read\] cell_voltages_v: the first cell would be signal 'BMS_Cell01_Volts' \(index = 1\), which message "
      r"'BMS_CellVoltages' does not have \(did you mean 'BMS_Cell01_Voltage'")),
    (("first = 1 }", "first = 1, scale = nan }"),
     r"\[read\] cell_voltages_v.scale = nan, expected a finite number"),
    (("first = 1 }", "first = 1, offset = \"0\" }"),
     r"\[read\] cell_voltages_v.offset = '0', expected a finite number"),
    (('"BMS_Version.BMS_SwPatch"]', '"BMS_Status.BMS_State"]'),
     r"\[firmware\] version: .* are in different messages; expected the parts of one message"),
    (("version = [", "versions = ["), r"\[firmware\] unknown key 'versions' \(did you mean 'version'\?\)"),
    (("version = [", 'request = { message = "VCU_Request" }\nrequested = ['), r"\[firmware\] unknown key 'requested'"),
    (("version = [", 'request = { message = "VCU_Request" }\n# version = ['),
     r"\[firmware\] has no 'version': expected the signals that say which build"),
    (("version = [", 'request = { message = "VCU_Request", signals = { VCU_Mode = 1 } }\nversion = ['),
     r"\[firmware\] request signals = 'VCU_Mode', expected a signal of message 'VCU_Request' \(did you mean"),
    (("version = [", 'request = { message = "VCU_Request", signals = { VCU_ModeRequest = "GO" } }\nversion = ['),
     r"\[firmware\] request signals.VCU_ModeRequest: 'GO' is not a value of signal 'VCU_ModeRequest'"),
    (("version = [", 'request = "VCU_Request"\nversion = ['),
     r"\[firmware\] request = 'VCU_Request', expected a table \{ message = "),
    (('request = "UDS_BmsRequest"', 'request = "UDS_BmsReqest"'),
     r"\[uds\] request: message 'UDS_BmsReqest' is not in the rig's DBC files \(did you mean 'UDS_BmsRequest'"),
    (('response = "UDS_BmsResponse"', 'response = "UDS_BmsRequest"'),
     r"\[uds\] request and response are both 'UDS_BmsRequest'"),
    (('functional_request = "UDS_FunctionalRequest"', 'functional_request = "UDS_BmsRequest"'),
     r"\[uds\] functional_request is 'UDS_BmsRequest', the request or response message; expected the message a "),
    (('functional_request = "UDS_FunctionalRequest"', 'functional_request = "UDS_Functional"'),
     r"\[uds\] functional_request: message 'UDS_Functional' is not in the rig's DBC files \(did you mean "),
    (("software_version_did = 0xF189", "software_version_did = 0x1F189"),
     r"\[uds\] software_version_did = 127369, expected a 16-bit DID"),
    (("software_version_did = 0xF189", "version_did = 0xF189"), r"\[uds\]: unknown key 'version_did'"),
    (("cell_ov = 0x1A0000", "cell_0v = 0x1A0000"), r"\[uds.dtcs\] 'cell_0v' is not a fault name of the harness"),
    (("cell_ov = 0x1A0000", "cell_ov = 0x1A000000"), r"\[uds.dtcs\] cell_ov = 436207616, expected a 3-byte DTC"),
    (("max_cell_voltage_v = {", "max_cell_volt_v = {"),
     r"\[uds.snapshot\] max_cell_volt_v is not a snapshot name of the harness \(did you mean 'max_cell_voltage_v'"),
    (("did = 0x4A02", "did = 0x4A01"), r"\[uds.snapshot\] min_cell_voltage_v did = 0x4A01 is max_cell_voltage_v's"),
    (("did = 0x4A02", "did = 0x14A02"), r"\[uds.snapshot\] min_cell_voltage_v did = 84482, expected a 16-bit DID"),
    (('type = "int16", scale = 0.1 }', 'type = "short", scale = 0.1 }'),
     r"\[uds.snapshot\] pack_current_a type = 'short', expected one of uint8, int8, uint16, int16, uint32, int32"),
    (("scale = 0.0001 }", "scale = 0 }"), r"\[uds.snapshot\] soc scale = 0, expected a non-zero factor"),
    (("scale = 0.0001 }", "scale = 0.0001, unit = \"%\" }"), r"\[uds.snapshot\] soc: unknown key 'unit'"),
    (("soc = { did", "soc = 0x4A06\n# { did"), r"\[uds.snapshot\] soc = 18950, expected a table such as"),
    (("latest = 0x02 }", "latest = 0xFF }"),
     r"\[uds\] snapshot_records.latest = 255, expected a record number 0x01..0xFE"),
    (("latest = 0x02 }", "last = 0x02 }"), r"\[uds\] snapshot_records: unknown key 'last'"),
    (("occurrence_record = 0x01", "occurrence_record = 0"),
     r"\[uds\] occurrence_record = 0, expected a record number 0x01..0xFE"),
    (("security_level = 0x01", "security_level = 0x02"),
     r"\[uds\] security_level = 2, expected the odd requestSeed subfunction of SecurityAccess, 0x01..0x7D"),
    (('security_key = "hil.protocol:reference_security_key"', 'security_key = "hil.protocol:no_such_key"'),
     r"\[uds\] security_key: 'hil.protocol' has no function 'no_such_key'; expected \"package.module:function\""),
    (('security_key = "hil.protocol:reference_security_key"', 'security_key = "acme_keys:key"'),
     r"\[uds\] security_key: importing 'acme_keys' failed: ModuleNotFoundError"),
    (('security_key = "hil.protocol:reference_security_key"', 'security_key = "keys.py:key"'),
     r"\[uds\] security_key: no file .*keys.py; expected"),
    (('security_key = "hil.protocol:reference_security_key"', 'security_key = "reference_security_key"'),
     r"\[uds\] security_key = 'reference_security_key', expected \"package.module:function\" or"),
    (("protected_did = 0x4B01", "protected_did = 0x14B01"), r"\[uds\] protected_did = 84737, expected a 16-bit DID"),
]


@pytest.mark.parametrize(("change", "error"), BAD_MAPS, ids=[error[:40] for _, error in BAD_MAPS])
def test_a_bad_map_is_refused_naming_the_file_and_key(tmp_path, change, error):
    old, new = change
    text = REFERENCE_MAP.read_text()
    assert old in text
    path = tmp_path / "bad-map.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=f"bad-map.toml: {error}"):
        load_dut_map(path, load_dbcs(REFERENCE_DBCS))


def test_a_request_message_without_a_cycle_time_needs_cycle_s(tmp_path):
    dbc = tmp_path / "request.dbc"
    dbc.write_text((PROJECT_ROOT / "dbc" / "vcu.dbc").read_text().replace('BA_ "GenMsgCycleTime" BO_ 528 100;', ""))
    path = tmp_path / "map.toml"
    path.write_text(REFERENCE_MAP.read_text())
    db = load_dbcs([PROJECT_ROOT / "dbc" / "bms.dbc", dbc])
    with pytest.raises(ConfigError, match=r"map.toml: \[request\] message 'VCU_Request' has no GenMsgCycleTime"):
        load_dut_map(path, db)
    path.write_text(REFERENCE_MAP.read_text().replace('mode = "VCU_ModeRequest"', 'cycle_s = 0.05\nmode = "VCU_ModeRequest"'))
    assert load_dut_map(path, db).request_cycle_s == 0.05


def test_a_rig_with_a_bad_map_fails_its_preflight_before_any_bench(tmp_path):
    path = tmp_path / "bad-map.toml"
    path.write_text(REFERENCE_MAP.read_text().replace('"BMS_Status.BMS_State"', '"BMS_Status.BMS_Stat"'))
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'dut.map="{path}"'])
    with pytest.raises(ConfigError, match=r"bad-map.toml: \[read\] state = 'BMS_Stat'"):
        preflight(rig)
    missing = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", ['dut.map="no-such-map.toml"'])
    with pytest.raises(ConfigError, match=r"no-such-map.toml: DUT map file not found"):
        preflight(missing)


def test_the_mapped_proxy_drives_the_boards_over_the_wire():
    """The slcan rig: the boards in their own process behind a pty, the Monitor fed by python-can's Notifier
    thread, every value read through the map."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "slcan.toml", MAPPED)) as bench:
        assert type(bench.bms) is MappedBms
        bench.power_up()
        assert bench.bms.discharge_limit_a > 0 and 0 < bench.bms.soc < 1
        bench.force_cell(0, 4.4)
        bench.bms.wait_state("fault", 2.0)
        assert "cell_ov" in bench.bms.faults
        bench.bms.wait_contactors_open(1.0)   # their feedback follows the command by contactor_delay_ms
        state = bench.make_safe()
    assert state.confirmed, state.describe()
