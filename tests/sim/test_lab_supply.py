"""The emulated lab supply's SCPI, and what the reference firmware does with its low-voltage input: brown-out
reset, boot, the SOC kept in NVM, and the two seeded supply bugs."""
import pytest

from hil.protocol import BmsState
from hil.sim.bms_firmware import TX_MESSAGES
from hil.sim.lab_supply import MAX_LIST_POINTS, LabSupply


def ask(supply: LabSupply, line: str, now_s: float = 0.0) -> str | None:
    reply = supply.answer(line.encode(), now_s)
    return None if reply is None else reply.decode().strip()


def errors(supply: LabSupply) -> list[str]:
    seen = []
    while (error := ask(supply, "SYST:ERR?")) != '0,"No error"':
        seen.append(error)
    return seen


# SCPI ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["VOLT 7.5", "volt 7.5", "VOLTage 7.5", ":SOUR:VOLT 7.5", "source:voltage 7.5",
                                     "SOUR1:VOLT:LEV:IMM:AMPL 7.5", "VOLT 7.5V", "VOLT 7500E-3"])
def test_long_short_and_optional_forms_set_the_same_voltage(command):
    supply = LabSupply()
    assert ask(supply, command) is None
    assert ask(supply, "VOLT?") == "7.5000" and errors(supply) == []


def test_queries_in_one_line_answer_in_one_line():
    supply = LabSupply(nominal_v=12.0)
    assert ask(supply, "*IDN?;OUTP?;MEAS:VOLT?") == "hil,Emulated lab supply,0,1.0;1;12.0000"
    assert ask(supply, "OUTP OFF;MEAS:VOLT?;MEAS:CURR?") == "0.0000;0.0000"


@pytest.mark.parametrize("command,code", [("VOLT 31", -222), ("VOLT -1", -222), ("VOLT twelve", -104), ("VOLT", -109),
                                          ("CURR 6", -222), ("OUTP MAYBE", -224), ("OUTP", -109), ("VOLTS 5", -113),
                                          ("FOO?", -113), ("*IDN? 3", -108), ("INIT", -221),
                                          ("VOLT:MODE SWEEP", -224), ("LIST:DWEL 0.0001", -222)])
def test_a_refused_command_changes_nothing_and_queues_its_error(command, code):
    supply = LabSupply(nominal_v=12.0)
    ask(supply, command)
    queued = errors(supply)
    assert len(queued) == 1 and queued[0].startswith(f"{code},"), queued
    assert ask(supply, "VOLT?;OUTP?") == "12.0000;1"


def test_the_error_queue_keeps_the_oldest_and_reports_its_overflow():
    supply = LabSupply()
    for _ in range(40):
        ask(supply, "BOGUS")
    queued = errors(supply)
    assert queued[0].startswith("-113,") and queued[-1] == '-350,"Queue overflow"' and len(queued) == 16
    ask(supply, "BOGUS;*CLS")
    assert errors(supply) == []


def test_a_voltage_list_plays_on_the_supplys_own_time_then_returns_to_the_setting():
    supply = LabSupply(nominal_v=12.0)
    ask(supply, "LIST:VOLT 6,8;LIST:DWEL 0.05,2;VOLT:MODE LIST", now_s=1.0)
    assert supply.output_v(1.0) == 12.0, "a list waits for INIT"
    ask(supply, "INIT", now_s=1.0)
    assert [supply.output_v(t) for t in (1.0, 1.049, 1.05, 3.049)] == [6.0, 6.0, 8.0, 8.0]
    assert supply.output_v(3.05) == 12.0 and not supply.list_running(3.05)
    ask(supply, "INIT", now_s=10.0)   # the list is kept: INIT plays it again
    assert supply.output_v(10.01) == 6.0
    ask(supply, "ABOR", now_s=10.02)
    assert supply.output_v(10.03) == 12.0
    assert errors(supply) == []


def test_a_list_needs_as_many_dwells_as_voltages_and_stops_with_the_output():
    supply = LabSupply(nominal_v=12.0)
    ask(supply, "LIST:VOLT 6,8;LIST:DWEL 1;VOLT:MODE LIST;INIT")
    assert errors(supply)[0].startswith("-221,") and supply.output_v(0.5) == 12.0
    ask(supply, "LIST:DWEL 1,1;INIT;OUTP OFF;OUTP ON", now_s=0.0)
    assert supply.output_v(0.5) == 12.0, "switching the output off aborts the list"
    ask(supply, "LIST:VOLT " + ",".join(["5"] * (MAX_LIST_POINTS + 1)))
    assert errors(supply)[0].startswith("-223,")


def test_rst_restores_the_power_up_state():
    supply = LabSupply(nominal_v=24.0, current_limit_a=3.0)
    ask(supply, "VOLT 5;CURR 1;OUTP OFF;LIST:VOLT 1;BOGUS;*RST")
    assert ask(supply, "VOLT?;CURR?;OUTP?;SYST:ERR?") == '24.0000;3.0000;1;0,"No error"'


# The firmware on its supply --------------------------------------------------------------------------------
def _set_supply(boards, voltage_v: float) -> None:
    ask(boards.host.supply, f"VOLT {voltage_v}", boards.t_s)


def test_below_the_brownout_level_the_bms_goes_dark_and_opens_its_contactors(make_boards):
    boards = make_boards()
    boards.power_up()
    _set_supply(boards, boards.cal["supply_reset_v"] - 0.1)
    boards.step()
    assert not boards.fw.powered and not any(boards.fw.contactor_fb.values())
    assert not any(boards.host.sender.is_running(name) for name in TX_MESSAGES)
    frames = boards.monitor.stats["BMS_Status"].count
    boards.run_for(1.0)
    assert boards.monitor.stats["BMS_Status"].count == frames, "a dark BMS sent frames"
    assert ask(boards.host.supply, "MEAS:CURR?", boards.t_s) == "0.0000"


def test_it_boots_after_boot_ms_with_a_fresh_ram_and_the_saved_soc(make_boards):
    boards = make_boards()
    boards.power_up()
    boards.fw.soc = 0.4321   # as if counted down to it
    boards.fw.faults = 1      # RAM: gone after the reset
    _set_supply(boards, 0.0)
    boards.step()
    assert boards.fw.nvm["soc"] == 0.4321, "the power-fail interrupt writes the SOC"
    boards.run_for(0.5)
    returned_s = boards.t_s
    _set_supply(boards, 12.0)
    booted_s = boards.run_until(lambda: boards.fw.powered, 1.0, "boot")
    assert booted_s - returned_s == pytest.approx(boards.cal["boot_ms"] / 1000, abs=0.0101)
    assert boards.fw.state == BmsState.INIT and boards.fw.faults == 0
    boards.request("standby")
    boards.standby()
    assert boards.fw.soc == 0.4321, "the SOC from NVM, not from the cells' OCV"
    boards.run_for(0.2)
    assert boards.monitor.get("BMS_State") == int(BmsState.STANDBY)
    assert boards.monitor.stats["BMS_Status"].bad_counter <= 1, "the alive counter restarts once, from 0"


def test_a_supply_hovering_at_the_level_does_not_boot_it(make_boards):
    boards = make_boards()
    _set_supply(boards, 0.0)
    boards.step()
    _set_supply(boards, boards.cal["supply_reset_v"] + 0.1)   # inside the detector's hysteresis
    boards.run_for(1.0)
    assert not boards.fw.powered


def test_a_first_power_up_without_a_saved_soc_reads_it_off_the_ocv(make_boards):
    boards = make_boards(soc0=0.7)
    assert boards.fw.nvm == {}
    boards.standby()
    assert boards.fw.soc == pytest.approx(0.7, abs=0.01)


def test_the_soc_is_saved_periodically_once_it_is_known(make_boards):
    boards = make_boards("dut.calibration.nvm_save_period_s=1.0")
    boards.standby()
    boards.step_slow()
    assert boards.fw.nvm["soc"] == boards.fw.soc
    boards.fw.soc = 0.25
    boards.run_for(1.1)
    assert boards.fw.nvm["soc"] == 0.25


def test_the_supply_reads_what_the_bms_draws(make_boards):
    boards = make_boards()
    boards.standby()
    standby_a = float(ask(boards.host.supply, "MEAS:CURR?", boards.t_s))
    boards.power_up()
    closed_a = float(ask(boards.host.supply, "MEAS:CURR?", boards.t_s))
    assert 0 < standby_a < closed_a, "the closed contactors' coils draw from the 12 V input too"


def test_the_boards_events_say_when_the_bms_lost_its_supply_and_booted(make_boards, tmp_path):
    from hil.sim.events import EventLog, read_events
    boards = make_boards()
    boards.host.events = EventLog(tmp_path / "events.jsonl")
    boards.standby()
    _set_supply(boards, 0.0)
    boards.run_for(0.1)
    _set_supply(boards, 12.0)
    boards.run_for(0.5)
    boards.host.events.close()
    seen = [(e["event"], e.get("reset_v")) for e in read_events(tmp_path / "events.jsonl") if e["board"] == "bms"]
    power = [event for event in seen if event[0] in ("power_lost", "booted")]
    assert power == [("power_lost", 4.5), ("booted", 4.5)], seen
