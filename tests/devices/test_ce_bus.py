"""A cell emulator on a CAN bus of its own (`[cell_emulator] bus` naming another `[can.*]` table).

Each board's frames stay on its own bus, the BMS still reads the cells the emulator outputs (through the
emulated boards' wires, not CAN), the safe state confirms the outputs through the emulator's bus, and the
CAN log keeps both buses apart as channels 1 and 2. The same over two slcan ptys: tests/test_wire_slcan.py.
"""
from __future__ import annotations

import can
import pytest

from hil.bench import Bench
from hil.can.dbc import load_dbcs
from hil.can.simbus import SimBus
from hil.errors import ConfigError, DeviceLost
from hil.protocol import BmsState
from hil.rig import PROJECT_ROOT, load_rig, preflight

SIM = PROJECT_ROOT / "rigs" / "sim.toml"
DBC = PROJECT_ROOT / "dbc"
CE_BUS = [f'can.main.dbc=["{DBC / "bms.dbc"}", "{DBC / "vcu.dbc"}"]',
          f'can.ce={{interface = "virtual", dbc = ["{DBC / "cell_emulator.dbc"}"]}}',
          'cell_emulator.bus="ce"']
CE_IDS = {message.frame_id for message in load_dbcs([DBC / "cell_emulator.dbc"]).messages}
DUT_IDS = {message.frame_id for message in load_dbcs([DBC / "bms.dbc", DBC / "vcu.dbc"]).messages}


def _drain(bus) -> set[int]:
    ids = set()
    while (msg := bus.recv(timeout=0)) is not None:
        ids.add(msg.arbitration_id)
    return ids


def test_each_boards_frames_stay_on_its_own_bus_and_the_bms_still_reads_the_cells():
    with Bench(load_rig(SIM, CE_BUS)) as bench:
        assert bench.ce_bus is not bench.bus and bench.ce_bus.channel_id != bench.bus.channel_id
        with SimBus(channel=bench.bus.channel_id) as dut_side, SimBus(channel=bench.ce_bus.channel_id) as ce_side:
            bench.power_up()
            bench.set_load(5.0)
            bench.loop.run_for(1.0)
            dut_ids, ce_ids = _drain(dut_side), _drain(ce_side)
            # An over-voltage the emulator outputs on its own bus reaches the BMS: it trips on the DUT bus.
            bench.force_cell(5, bench.rig.data["dut"]["calibration"]["cell_ov_v"] + 0.05)
            bench.bms.wait_state(BmsState.FAULT, 1.0)
            bench.bms.wait_contactors_open(0.5)
            assert "cell_ov" in bench.bms.faults
    assert dut_ids and dut_ids <= DUT_IDS, sorted(map(hex, dut_ids - DUT_IDS))
    assert ce_ids and ce_ids <= CE_IDS, sorted(map(hex, ce_ids - CE_IDS))
    assert 0x300 in ce_ids and 0x100 in dut_ids   # CE_CellSetpoint there, BMS_Status here


def test_the_safe_state_confirms_the_outputs_on_the_emulators_bus():
    with Bench(load_rig(SIM, CE_BUS)) as bench:
        bench.power_up()
        steps = {step.name: step for step in bench.make_safe().steps}
        assert bench.ce_monitor.stats["CE_Status"].count > 0
        assert "CE_Status" not in bench.monitor.stats or bench.monitor.stats["CE_Status"].count == 0
    assert all(step.confirmed for step in steps.values()), steps
    assert "CE_Status CE_OutputsOn=0" in steps["outputs"].seen and "CE_Control out by" in steps["outputs"].seen


def test_the_can_log_holds_both_buses_as_channels_one_and_two(tmp_path):
    with Bench(load_rig(SIM, CE_BUS), report_dir=tmp_path, name="two") as bench:
        bench.power_up()
        bench.loop.run_for(0.5)
    by_channel: dict[int, set[int]] = {}
    for msg in can.LogReader(str(tmp_path / "two.blf")):
        by_channel.setdefault(msg.channel, set()).add(msg.arbitration_id)
    # python-can's BLF reader counts channels from 0: Vector's tools show these as CAN 1 and CAN 2.
    assert set(by_channel) == {0, 1}, by_channel
    assert by_channel[0] <= DUT_IDS and by_channel[1] <= CE_IDS
    assert {0x100, 0x200} <= by_channel[0] and {0x300} <= by_channel[1]


def test_one_bus_logs_as_channel_one(tmp_path):
    """Before, the channel came from the bus's name (an in-process channel 'hil-<pid>-<n>' logged as n + 1)."""
    with Bench(load_rig(SIM), report_dir=tmp_path, name="one") as bench:
        bench.power_up()
    assert {msg.channel for msg in can.LogReader(str(tmp_path / "one.blf"))} == {0}


def test_the_emulators_bus_must_carry_its_setpoints():
    """The setpoint check reads the emulator's bus, not the DUT's: here its DBC is the BMS's."""
    overrides = CE_BUS[:1] + [f'can.ce={{interface = "virtual", dbc = ["{DBC / "bms.dbc"}"]}}', CE_BUS[2]]
    with pytest.raises(ConfigError) as caught:
        preflight(load_rig(SIM, overrides))
    assert "key 'cell_emulator.channels' = 16, but the bus's DBC files (bms.dbc) have Cell setpoints for 0" in str(
        caught.value)


def test_a_cell_emulator_on_a_bus_the_rig_lacks_is_refused():
    with pytest.raises(ConfigError) as caught:
        load_rig(SIM, ['cell_emulator.bus="ce"'])
    assert "key 'cell_emulator.bus' = 'ce', expected one of the buses ['main']" in str(caught.value)


def test_an_emulator_adapter_that_is_absent_is_named_by_its_own_table(tmp_path):
    """The DUT's adapter opens; the emulator's does not: the error names [can.ce] and its device, not the DUT's."""
    overrides = ['dut.kind="external"', 'power_supply.kind="none"', 'cell_emulator.kind="can"', 'rig.capabilities=[]',
                 f'can.main.dbc=["{DBC / "bms.dbc"}", "{DBC / "vcu.dbc"}"]', 'can.main.channel="ce-bus-absent"',
                 f'can.ce={{interface = "slcan", channel = "{tmp_path / "ttyACM9"}", sleep_after_open = 0, '
                 f'dbc = ["{DBC / "cell_emulator.dbc"}"]}}', 'cell_emulator.bus="ce"']
    with pytest.raises(DeviceLost) as caught:
        Bench(load_rig(SIM, overrides))
    assert "[can.ce]: cannot open CAN device: interface 'slcan' channel" in str(caught.value)
    assert "ttyACM9" in str(caught.value) and "[can.main]" not in str(caught.value)
