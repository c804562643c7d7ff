"""Real DBC files, read in place from ../shared/realworld/dbc (skipped with the reason when absent): they load,
every message and multiplexer group round-trips, and the Monitor decodes their BMS frames."""
from __future__ import annotations

import can
import cantools
import pytest
from .conftest import REALWORLD_FILES, realworld

from hil.can.dbc import load_dbcs, round_trip_problems
from hil.can.monitor import Monitor
from hil.errors import ConfigError

@pytest.mark.parametrize("name", REALWORLD_FILES)
def test_real_file_loads_and_every_message_round_trips(loaded, name):
    db = loaded(name)
    assert (len(db.messages), sum(m.is_multiplexed() for m in db.messages)) == REALWORLD_FILES[name]
    problems = [problem for message in db.messages for problem in round_trip_problems(message)]
    assert problems == []


def test_the_old_tesla_file_that_cantools_45_1_refuses_loads(loaded):
    path = realworld("opendbc_tesla_can.dbc")
    if tuple(int(part) for part in cantools.__version__.split(".")[:2]) >= (45, 1):
        with pytest.raises(Exception, match="unused VAL_ entries"):
            cantools.database.load_file(str(path))
    db = loaded("opendbc_tesla_can.dbc")
    assert db.get_message_by_frame_id(568).name == "UI_driverAssistRoadSign"


def test_foxbms_big_endian_multiplexed_cell_voltages_decode_in_the_monitor(loaded):
    db = loaded("foxbms2_foxbms.dbc")
    voltages = db.get_message_by_frame_id(0x250)
    assert voltages.get_signal_by_name("CellVoltage_012").byte_order == "big_endian"
    monitor = Monitor(db, lambda: 0.0)
    signals = {s.name: 0 for s in voltages.signals if s.multiplexer_ids in (None, [3])}
    signals.update({"f_CellVoltages_Mux": 3, "CellVoltage_012": 3301, "CellVoltage_015": 4187})
    monitor.on_message_received(can.Message(arbitration_id=0x250, is_extended_id=False,
                                            data=voltages.encode(signals)))
    assert (monitor.get("CellVoltage_012"), monitor.get("CellVoltage_015")) == (3301, 4187)
    assert monitor.counters["decode_errors"] == 0


def test_sensor_files_merge_on_one_bus_but_not_with_foxbms_which_already_holds_them():
    sensors = load_dbcs([realworld("foxbms2_ivt-s_current_sensor.dbc"),
                         realworld("foxbms2_iso165_insulation_monitor.dbc")])
    assert len(sensors.messages) == 15
    with pytest.raises(ConfigError, match=r"foxbms2_ivt-s_current_sensor\.dbc: message 'IVT_Msg_Result_Wh' \(ID 0x528\) "
                                          r"collides with 'CS_IsabellenhuetteIvtString0Ec' \(ID 0x528\)"):
        load_dbcs([realworld("foxbms2_foxbms.dbc"), realworld("foxbms2_ivt-s_current_sensor.dbc")])


def test_tesla_model_3_brick_voltages_decode_in_the_monitor(loaded):
    db = loaded("opendbc_tesla_model3_vehicle.dbc")
    bricks = db.get_message_by_name("BMS_brickMeasurements")
    signals = {s.name: 0 for s in bricks.signals if s.multiplexer_ids in (None, [5])}
    signals.update({"BMS_brickVoltageMultiplexer": 5, "BMS_brickVoltage17": 3.85})
    monitor = Monitor(db, lambda: 0.0)
    monitor.on_message_received(can.Message(arbitration_id=0x401, is_extended_id=False,
                                            data=bricks.encode(signals)))
    assert monitor.get("BMS_brickVoltage17") == pytest.approx(3.85, abs=bricks.get_signal_by_name(
        "BMS_brickVoltage17").scale / 2)
