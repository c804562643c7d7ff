"""Bad spec input gets a clear error naming the file, table and key, at load (so `hil run` exits 2 before any
test): never a TypeError, KeyError or OverflowError mid-test, never a spec that loads and tests the wrong thing."""
import subprocess
import sys
from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.spec import Key, load_spec

ROOT = Path(__file__).resolve().parent.parent

# The smallest spec the suite accepts: every table and key tests/bms reads, and nothing else.
VALID = """\
[protections.cell_ov]
unit = "V"
threshold = 4.25
tolerance = 0.01
max_reaction_ms = 320

[protections.cell_uv]
unit = "V"
threshold = 2.70
tolerance = 0.01
max_reaction_ms = 620

[protections.discharge_oc]
unit = "A"
threshold = 25.0
tolerance = 0.5
max_reaction_ms = 220

[protections.charge_oc]
unit = "A"
threshold = 10.0
tolerance = 0.5
max_reaction_ms = 220

[protections.cell_ot]
unit = "degC"
threshold = 60.0
tolerance = 1.0
max_reaction_ms = 1200

[heartbeat]
timeout_ms = 500
max_reaction_ms = 620

[cycle_times]
BMS_Status = { cycle_ms = 20, tolerance_pct = 10 }
BMS_PackData = { cycle_ms = 20, tolerance_pct = 10 }
BMS_Limits = { cycle_ms = 100, tolerance_pct = 10 }
BMS_SOC = { cycle_ms = 100, tolerance_pct = 10 }

[soc]
max_error_pct = 3.0
max_error_after_rest_pct = 1.0

[balancing]
initial_soc_spread = 0.02
bleed_current_a = 1.0
duration_s = 900
max_final_fraction = 0.6

[diagnostics]
self_discharge = true

[ride_through]
min_discharge_limit_a = 15.0
min_charge_cell_v = 4.15
discharge_end_cell_v = 3.0

[accuracy]
cell_voltage_mv = 5.0
temperature_c = 1.0
pack_voltage_v = 0.1
pack_current_a = 0.1
settle_ms = 300
temperature_settle_ms = 1500
"""

OV_TABLE = "[protections.cell_ov]\nunit = \"V\"\nthreshold = 4.25\ntolerance = 0.01\nmax_reaction_ms = 320\n\n"
UV_TABLE = "[protections.cell_uv]\nunit = \"V\"\nthreshold = 2.70\ntolerance = 0.01\nmax_reaction_ms = 620\n\n"
HEARTBEAT = "[heartbeat]\ntimeout_ms = 500\nmax_reaction_ms = 620\n"
SECURITY = ("[security]\nmax_attempts = {1}\nmin_lockout_s = 10.0\nmax_lockout_s = {0}\nmin_session_s = 4.0\n"
            "max_session_s = 6.0\n")


def _spec(tmp_path, old: str = "", new: str = "") -> Path:
    """VALID with `old` replaced by `new` (once), written as tmp_path/spec.toml."""
    assert old in VALID, f"fixture text {old!r} not in VALID"
    path = tmp_path / "spec.toml"
    path.write_text(VALID.replace(old, new, 1))
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def test_valid_and_shipped_specs_load(tmp_path):
    spec = load_spec(_spec(tmp_path))
    assert spec.protections["cell_ov"].high == pytest.approx(4.26)
    assert "cell_ut" not in spec.protections   # known, but no test needs it: a BMS may leave it out
    for path in sorted((ROOT / "fixtures" / "specs").glob("*.toml")):
        spec = load_spec(path)
        # Insulation too, except on a pack too low in voltage to need its monitor (the 25 V drone pack).
        core = {"cell_ov", "cell_uv", "discharge_oc", "discharge_oc_sustained", "charge_oc", "cell_ot", "cell_ut",
                "short_circuit"}
        assert core <= set(spec.protections) <= core | {"insulation"}, path


# Defect 1: a number where a table belongs.
@pytest.mark.parametrize("old,new,expected", [
    (OV_TABLE, "[protections]\ncell_ov = 5\n\n",
     "[protections]: key 'cell_ov' = 5, expected a table [protections.cell_ov]"),
    ("BMS_Status = { cycle_ms = 20, tolerance_pct = 10 }", "BMS_Status = 20",
     "[cycle_times]: key 'BMS_Status' = 20, expected a table [cycle_times.BMS_Status]"),
    (VALID[:VALID.index("[cycle_times]")], "heartbeat = 500\n" + VALID[:VALID.index("[heartbeat]")],
     "key 'heartbeat' = 500, expected a table [heartbeat]"),
    (VALID[:VALID.index("[heartbeat]")], "protections = 5\n",
     "key 'protections' = 5, expected a table [protections.<name>]"),
], ids=["protection", "cycle_time", "heartbeat", "protections"])
def test_number_where_a_table_belongs(tmp_path, old, new, expected):
    assert expected in _load_error(_spec(tmp_path, old, new))


# Defect 2: a protection or value the suite uses, missing.
@pytest.mark.parametrize("old,expected", [
    (UV_TABLE, "missing table [protections.cell_uv] (keys unit, threshold, tolerance, max_reaction_ms)"),
    (OV_TABLE + UV_TABLE, "missing table [protections.cell_ov], [protections.cell_uv]"),
    (HEARTBEAT, "missing table [heartbeat] (keys timeout_ms, max_reaction_ms)"),
    ("max_reaction_ms = 320\n", "[protections.cell_ov]: missing key 'max_reaction_ms' (expected a finite number > 0)"),
    (VALID[VALID.index("BMS_Status = {"):VALID.index("[soc]")], "[cycle_times] names no message; expected at least "
                                                                "one of the BMS's periodic messages"),
    ("self_discharge = true\n", "[diagnostics]: missing key 'self_discharge' (expected true or false)"),
    ("max_error_after_rest_pct = 1.0\n", "[soc]: missing key 'max_error_after_rest_pct'"),
    ("min_discharge_limit_a = 15.0\n", "[ride_through]: missing key 'min_discharge_limit_a'"),
    ("cell_voltage_mv = 5.0\n", "[accuracy]: missing key 'cell_voltage_mv'"),
], ids=["cell_uv", "ov_and_uv", "heartbeat", "reaction_time", "cycle_message", "self_discharge", "soc",
        "ride_through", "accuracy"])
def test_missing_protection_or_value(tmp_path, old, expected):
    assert expected in _load_error(_spec(tmp_path, old, ""))


# Defect 3: NaN, inf, negative and impossible numbers.
@pytest.mark.parametrize("old,new,expected", [
    ("max_reaction_ms = 320", "max_reaction_ms = inf",
     "[protections.cell_ov]: key 'max_reaction_ms' = inf, expected a finite number > 0"),
    ("timeout_ms = 500", "timeout_ms = nan", "[heartbeat]: key 'timeout_ms' = nan, expected a finite number > 0"),
    ("max_reaction_ms = 620\n", "max_reaction_ms = -5\n",
     "[protections.cell_uv]: key 'max_reaction_ms' = -5, expected a finite number > 0"),
    ("max_reaction_ms = 220", "max_reaction_ms = 0",
     "[protections.discharge_oc]: key 'max_reaction_ms' = 0, expected a finite number > 0"),
    ("tolerance = 0.01", "tolerance = -0.01",
     "[protections.cell_ov]: key 'tolerance' = -0.01, expected a finite number >= 0"),
    ("threshold = 60.0", "threshold = -inf", "[protections.cell_ot]: key 'threshold' = -inf, expected a finite number"),
    ("BMS_SOC = { cycle_ms = 100, tolerance_pct = 10 }", "BMS_SOC = { cycle_ms = 100, tolerance_pct = 100 }",
     "[cycle_times.BMS_SOC]: key 'tolerance_pct' = 100, expected a finite number >= 0 and < 100"),
    ("max_error_pct = 3.0", "max_error_pct = 0",
     "[soc]: key 'max_error_pct' = 0, expected a finite number > 0 and <= 100"),
    ("duration_s = 900", "duration_s = -900", "[balancing]: key 'duration_s' = -900, expected a finite number > 0"),
    ("max_final_fraction = 0.6", "max_final_fraction = 1.5",
     "[balancing]: key 'max_final_fraction' = 1.5, expected a finite number > 0 and <= 1"),
    ("cell_voltage_mv = 5.0", "cell_voltage_mv = 0.005",
     "[accuracy]: key 'cell_voltage_mv' = 0.005, expected a finite number >= 0.1 and <= 500"),
    ("timeout_ms = 500\nmax_reaction_ms = 620", "timeout_ms = 500\nmax_reaction_ms = 400",
     "[heartbeat]: key 'max_reaction_ms' = 400, expected more than key 'timeout_ms' = 500"),
    ("threshold = 2.70", "threshold = 4.25",
     "[protections.cell_uv]: trip band [4.24, 4.26] V reaches [protections.cell_ov]'s [4.24, 4.26] V; expected "
     "cell_uv wholly below cell_ov"),
    ("threshold = 10.0", "threshold = -10.0",
     "[protections.charge_oc]: keys 'threshold' = -10 and 'tolerance' = 0.5 put the trip band at [-10.5, -9.5] A; "
     "expected a current magnitude above 0 A"),
    # One end of the cold charge line without the other; a line the wrong way round.
    ("max_final_fraction = 0.6", "max_final_fraction = 0.6\n[derating]\nstart_c = 45.0\nend_c = 60.0\n"
     "tolerance_pct = 5.0\ncold_charge_zero_c = 0.0",
     "[derating]: key 'cold_charge_zero_c' without 'cold_charge_full_c'; expected both"),
    ("max_final_fraction = 0.6", "max_final_fraction = 0.6\n[derating]\nstart_c = 45.0\nend_c = 60.0\n"
     "tolerance_pct = 5.0\ncold_charge_zero_c = 10.0\ncold_charge_full_c = 0.0",
     "[derating]: keys 'cold_charge_zero_c' = 10.0 and 'cold_charge_full_c' = 0.0; expected zero_c below full_c"),
    ("max_final_fraction = 0.6", "max_final_fraction = 0.6\n[derating]\nstart_c = 45.0\nend_c = 60.0\n"
     "tolerance_pct = 5.0\ncold_discharge_full_c = 0.0",
     "[derating]: key 'cold_discharge_full_c' without 'cold_discharge_zero_c'; expected both (where the discharge "
     "limit is 0 and where it is full again) or neither"),
    # A short-circuit level inside the over-current band: every over-current would be cut as a short.
    ("[protections.cell_ot]", '[protections.short_circuit]\nthreshold = 25.2\ntolerance = 1.0\nmax_reaction_ms = 100\n'
     "[protections.cell_ot]",
     "[protections.discharge_oc]: trip band [24.5, 25.5] A reaches [protections.short_circuit]'s [24.2, 26.2] A; "
     "expected discharge_oc wholly below short_circuit"),
    # A long-delay level inside the peak one's band, or one that cuts what the BMS must allow.
    ("[protections.cell_ot]", '[protections.discharge_oc_sustained]\nthreshold = 24.5\ntolerance = 0.5\n'
     "max_reaction_ms = 3120\n[protections.cell_ot]",
     "[protections.discharge_oc_sustained]: trip band [24, 25] A reaches [protections.discharge_oc]'s [24.5, 25.5] "
     "A; expected discharge_oc_sustained wholly below discharge_oc"),
    ("[protections.cell_ot]", '[protections.discharge_oc_sustained]\nthreshold = 15.0\ntolerance = 0.5\n'
     "max_reaction_ms = 3120\n[protections.cell_ot]",
     "[ride_through]: key 'min_discharge_limit_a' = 15 A reaches [protections.discharge_oc_sustained]'s band "
     "[14.5, 15.5] A; expected it wholly below"),
    ("[protections.cell_ot]", '[protections.discharge_oc_sustained]\nthreshold = 21.5\ntolerance = 0.5\n'
     'max_reaction_ms = 3120\n[warnings.discharge_oc]\nthreshold = 23.0\ntolerance = 0.5\nmax_reaction_ms = 100\n'
     "[protections.cell_ot]",
     "[warnings.discharge_oc]: band [22.5, 23.5] A reaches above [protections.discharge_oc_sustained]'s [21, 22] A; "
     "expected it no higher: a current between them is cut after the long delay with no warning"),
    # A warning that reaches its protection's band gives no notice; one with no protection warns of nothing.
    ("[protections.cell_ot]", '[warnings.cell_ov]\nthreshold = 4.245\ntolerance = 0.01\nmax_reaction_ms = 100\n'
     "[protections.cell_ot]",
     "[warnings.cell_ov]: band [4.235, 4.255] V reaches [protections.cell_ov]'s [4.24, 4.26] V; expected it wholly "
     "below it, warning before the trip"),
    ("[protections.cell_ot]", '[warnings.cell_uv]\nthreshold = 2.705\ntolerance = 0.01\nmax_reaction_ms = 100\n'
     "[protections.cell_ot]",
     "[warnings.cell_uv]: band [2.695, 2.715] V reaches [protections.cell_uv]'s [2.69, 2.71] V; expected it wholly "
     "above it, warning before the trip"),
    ("[protections.cell_ot]", '[warnings.cell_ut]\nthreshold = -15\ntolerance = 1\nmax_reaction_ms = 100\n'
     "[protections.cell_ot]",
     "[warnings.cell_ut]: no [protections.cell_ut] to warn of; expected the protection's table too"),
    # A charger cut off before the time it is given to follow a falling limit has passed.
    ("max_final_fraction = 0.6", "max_final_fraction = 0.6\n[charge_limit]\nmargin_a = 1.0\nresponse_s = 2.0\n"
     "max_reaction_ms = 1500",
     "[charge_limit]: key 'max_reaction_ms' = 1500, expected more than key 'response_s' = 2.0 s (2000 ms)"),
    ("max_final_fraction = 0.6", "max_final_fraction = 0.6\n[charge_limit]\nmargin_a = 0\nresponse_s = 2.0\n"
     "max_reaction_ms = 3200", "[charge_limit]: key 'margin_a' = 0, expected a finite number > 0 and <= 1000"),
    ("[protections.cell_ot]", '[protections.insulation]\nunit = "ohm/V"\nthreshold = 100\ntolerance = 5\n'
     'max_reaction_ms = 2500\n[warnings.insulation]\nunit = "ohm/V"\nthreshold = 104\ntolerance = 5\n'
     "max_reaction_ms = 2500\n[protections.cell_ot]",
     "[warnings.insulation]: band [99, 109] ohm/V reaches [protections.insulation]'s [95, 105] ohm/V; expected it "
     "wholly above it"),
    # More SOC than the test can discharge twice from its start.
    ("max_final_fraction = 0.6", "max_final_fraction = 0.6\n[soh]\nmax_error_pct = 5\ndelta_soc = 0.8\nrest_s = 200\n",
     "[soh]: key 'delta_soc' = 0.8, expected a finite number > 0 and <= 0.6"),
    # An interlock interruption to ride through that outlasts the reaction the BMS owes to an open loop.
    ("max_final_fraction = 0.6", "max_final_fraction = 0.6\n[hvil]\nmax_reaction_ms = 50\nride_through_ms = 50\n",
     "[hvil]: key 'max_reaction_ms' = 50, expected more than key 'ride_through_ms' = 50"),
    # Ends of a charge or a discharge that the cell cannot reach without tripping first.
    ("discharge_end_cell_v = 3.0", "discharge_end_cell_v = 2.7",
     "[ride_through]: key 'discharge_end_cell_v' = 2.7 V reaches [protections.cell_uv]'s band [2.69, 2.71] V; "
     "expected it wholly above it: the cell must get there without a trip"),
    ("min_charge_cell_v = 4.15", "min_charge_cell_v = 4.3", "[ride_through]: key 'min_charge_cell_v' = 4.3 V reaches "
     "[protections.cell_ov]'s band"),
    ("temperature_settle_ms = 1500\n", f"temperature_settle_ms = 1500\n{SECURITY.format(5.0, 3)}",
     "[security]: key 'min_lockout_s' = 10 is above 'max_lockout_s' = 5; expected min_lockout_s <= max_lockout_s"),
    ("temperature_settle_ms = 1500\n", f"temperature_settle_ms = 1500\n{SECURITY.format(15.0, 2.5)}",
     "[security]: key 'max_attempts' = 2.5, expected"),
], ids=["reaction_inf", "timeout_nan", "reaction_negative", "reaction_zero", "tolerance_negative",
        "threshold_inf", "cycle_tolerance_100", "soc_error_zero", "duration_negative", "fraction_above_one",
        "accuracy_in_volts", "heartbeat_budget_below_timeout", "uv_above_ov", "charge_oc_negative",
        "cold_charge_half_a_line", "cold_charge_line_reversed", "cold_discharge_half_a_line", "short_circuit_inside_oc",
        "sustained_inside_oc", "sustained_below_the_allowed_current", "sustained_unwarned", "warning_reaches_ov",
        "warning_reaches_uv", "warning_without_protection", "charge_limit_reaction_before_response",
        "charge_limit_no_margin", "insulation_warning_reaches_fault",
        "soh_delta_beyond_the_test", "hvil_ride_through_outlasts_reaction",
        "discharge_end_in_uv_band", "charge_top_above_ov", "lockout_bounds_reversed", "attempts_not_whole"])
def test_impossible_numbers(tmp_path, old, new, expected):
    assert expected in _load_error(_spec(tmp_path, old, new))


# Defect 4: misspelt tables and keys.
@pytest.mark.parametrize("old,new,expected", [
    ("[heartbeat]", "[heartbeet]", "unknown table [heartbeet] (did you mean 'heartbeat'?)"),
    ("[protections.cell_ot]", "[protections.cell_otemp]",
     "[protections]: unknown entry 'cell_otemp' (did you mean 'cell_ot'"),
    ("max_reaction_ms = 320", "max_reaction = 320",
     "[protections.cell_ov]: unknown key 'max_reaction' (did you mean 'max_reaction_ms'?)"),
    ("bleed_current_a = 1.0", "bleed_current_ma = 1000",
     "[balancing]: unknown key 'bleed_current_ma' (did you mean 'bleed_current_a'?)"),
    ("", "max_error_pct = 3.0\n", "spec.toml: unknown key 'max_error_pct'"),   # above every table
    # one line too high: TOML puts it in the table before
    ("[soc]", "max_error_pct = 3.0\n[soc]", "[cycle_times]: key 'max_error_pct' = 3.0, expected a table"),
], ids=["table", "protection", "protection_key", "balancing_key", "top_level_key",
        "key_in_the_table_before"])
def test_unknown_names_are_refused_with_a_suggestion(tmp_path, old, new, expected):
    assert expected in _load_error(_spec(tmp_path, old, new))


# Defect 5: wrong types, and units the tests do not work in.
@pytest.mark.parametrize("old,new,expected", [
    ("BMS_Status = { cycle_ms = 20,", 'BMS_Status = { cycle_ms = "20",',
     "[cycle_times.BMS_Status]: key 'cycle_ms' = '20', expected a finite number > 0 (write it without quotes: 20)"),
    ("threshold = 4.25", 'threshold = "high"',
     "[protections.cell_ov]: key 'threshold' = 'high', expected a finite number"),
    ("duration_s = 900", "duration_s = true", "[balancing]: key 'duration_s' = True, expected a finite number > 0"),
    ("self_discharge = true", 'self_discharge = "yes"',
     "[diagnostics]: key 'self_discharge' = 'yes', expected true or false"),
    ('unit = "V"', 'unit = "mV"',
     "[protections.cell_ov]: key 'unit' = 'mV', expected 'V': the suite steps and measures cell_ov in V"),
    ('unit = "degC"', 'unit = "K"', "[protections.cell_ot]: key 'unit' = 'K', expected 'degC'"),
    ('unit = "A"', "unit = 1", "[protections.discharge_oc]: key 'unit' = 1, expected a string"),
    ("threshold = 4.25", "threshold = 4250",
     "[protections.cell_ov]: keys 'threshold' = 4250 and 'tolerance' = 0.01 put the trip band at [4249.99, "
     "4250.01] V; expected a cell voltage, above 0 V and below 6 V for any chemistry (not in mV)"),
    ("threshold = 60.0", "threshold = 333.15",
     "[protections.cell_ot]: keys 'threshold' = 333.15 and 'tolerance' = 1 put the trip band at [332.15, 334.15] "
     "degC; expected a cell temperature above -273.15 degC and below 200 degC (not in kelvin)"),
    ("max_reaction_ms = 320", "max_reaction_ms = 320\nrequirement = 42",
     "[protections.cell_ov]: key 'requirement' = 42, expected a string"),
    ("[heartbeat]", "[heartbeat]\nrequirement = [\"SYS-7\"]",
     "[heartbeat]: key 'requirement' = ['SYS-7'], expected a string"),
    ("min_discharge_limit_a = 15.0", "min_discharge_limit_a = 15.0\ndischarge_while_charging = 1",
     "[ride_through]: key 'discharge_while_charging' = 1, expected true or false"),
], ids=["quoted_number", "word", "bool_for_number", "string_for_bool", "millivolts", "kelvin", "unit_number",
        "threshold_in_mv", "threshold_in_kelvin", "requirement_number", "requirement_list", "number_for_bool"])
def test_wrong_types_and_units(tmp_path, old, new, expected):
    assert expected in _load_error(_spec(tmp_path, old, new))


def test_bounds_hold_for_integers_against_fractional_bounds():
    """TOML gives ints for `-5`: the bound checks must not depend on int and float comparing alike."""
    rule = Key(above=0.0, below=100.0)
    assert [rule.accepts(v) for v in (-5, 0, 5, 99.5, 100, float("nan"), True)] == [False, False, True, True,
                                                                                     False, False, False]
    assert rule.expected() == "a finite number > 0 and < 100"


def test_hil_run_refuses_a_bad_spec_before_any_test(tmp_path):
    spec = _spec(tmp_path, "[heartbeat]", "[heartbeet]")
    rig = tmp_path / "rig.toml"
    rig.write_text((ROOT / "rigs" / "sim.toml").read_text().replace('"../', f'"{ROOT}/')
                   .replace(f'"{ROOT}/fixtures/specs/reference-bms.toml"', f'"{spec}"'))
    result = subprocess.run([sys.executable, "-m", "hil", "run", "--rig", str(rig)], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{spec}: unknown table [heartbeet] (did you mean 'heartbeat'?)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout and len(result.stderr.strip().splitlines()) == 1


def test_a_labs_own_table_is_kept_for_its_own_tests(tmp_path):
    spec = load_spec(_spec(tmp_path, "[heartbeat]", "[insulation]\nmin_resistance_kohm = 500.0\n\n[heartbeat]"))
    assert spec.section("insulation")["min_resistance_kohm"] == 500.0


def test_each_table_and_named_entry_is_a_requirement_with_its_id(tmp_path):
    """`Spec.requirements()`: what the report's spec coverage lists, in the file's order, each with the team's own
    requirement id where the table names one; [bms] only names the BMS, a lab's own table is one too."""
    spec = load_spec(_spec(tmp_path, "[heartbeat]", '[chamber]\nrequirement = "LAB-9"\nmax_c = 45.0\n\n'
                                                    '[heartbeat]\nrequirement = "SYS-BMS-007"'))
    requirements = spec.requirements()
    assert requirements["heartbeat"] == "SYS-BMS-007" and requirements["chamber"] == "LAB-9"
    assert requirements["protections.cell_ov"] is None and "bms" not in requirements
    assert [e for e in requirements if e.startswith("protections.")] == [f"protections.{n}" for n in spec.protections]
    assert [e for e in requirements if e.startswith("cycle_times.")] == [f"cycle_times.{m}"
                                                                        for m in spec.data["cycle_times"]]


PRECHARGE = "\n[precharge]\nmin_precharge_ms = 60\nmax_close_ms = 400\nmax_overlap_ms = 60\n"


@pytest.mark.parametrize("table,expected", [
    (PRECHARGE.replace("max_close_ms = 400", "max_close_ms = 0"),
     "[precharge]: key 'max_close_ms' = 0, expected a finite number > 0 and <= 60000"),
    (PRECHARGE.replace("max_overlap_ms = 60\n", ""), "[precharge]: missing key 'max_overlap_ms'"),
], ids=["close_zero", "overlap_missing"])
def test_precharge_is_optional_but_checked_when_present(tmp_path, table, expected):
    """A BMS without a precharge stage leaves [precharge] out (its test skips); one with it states it all."""
    assert "precharge" not in load_spec(_spec(tmp_path)).data
    path = tmp_path / "with_precharge.toml"
    path.write_text(VALID + PRECHARGE)
    assert load_spec(path).section("precharge")["max_close_ms"] == 400
    path.write_text(VALID + table)
    assert expected in _load_error(path)


def test_derating_is_optional_and_its_line_must_fall(tmp_path):
    path = tmp_path / "derating.toml"
    path.write_text(VALID + "\n[derating]\nstart_c = 45.0\nend_c = 60.0\ntolerance_pct = 5.0\n")
    assert load_spec(path).section("derating")["end_c"] == 60.0
    path.write_text(VALID + "\n[derating]\nstart_c = 60.0\nend_c = 45.0\ntolerance_pct = 5.0\n")
    assert "[derating]: key 'start_c' = 60.0, expected below key 'end_c' = 45.0" in _load_error(path)


LV_SUPPLY = """
[lv_supply]
crank_low_v = 6.0
crank_low_ms = 50
crank_hold_v = 8.0
crank_hold_s = 2.0
deep_crank_v = 3.0
deep_crank_ms = 50
max_boot_s = 1.0
max_soc_loss_pct = 0.5
"""


def test_a_jump_start_needs_its_voltage_and_its_duration(tmp_path):
    path = tmp_path / "jump.toml"
    path.write_text(VALID + LV_SUPPLY + "jump_start_v = 24.0\njump_start_s = 60.0\n")
    assert load_spec(path).section("lv_supply")["jump_start_s"] == 60.0
    path.write_text(VALID + LV_SUPPLY + "jump_start_v = 24.0\n")
    with pytest.raises(ConfigError, match=r"jump.toml \[lv_supply\]: key 'jump_start_v' without 'jump_start_s'; "
                                          r"expected both .* or neither"):
        load_spec(path)


CURRENT_SENSOR = "\n[current_sensor]\nload_a = 10\nmax_reaction_ms = 300\n"
OFFSET = "max_offset_a = 0.5\noffset_tolerance_a = 0.1\nmax_offset_reaction_ms = 300\n"


@pytest.mark.parametrize("keys,expected", [
    (OFFSET.replace("offset_tolerance_a = 0.1\n", ""),
     r"\[current_sensor\]: key 'max_offset_a' without 'offset_tolerance_a'; expected all \(.*\) or none"),
    ("max_offset_reaction_ms = 300\n",
     r"\[current_sensor\]: key 'max_offset_reaction_ms' without 'max_offset_a' and 'offset_tolerance_a'; "
     r"expected all"),
    (OFFSET.replace("offset_tolerance_a = 0.1", "offset_tolerance_a = 0.5"),
     r"\[current_sensor\]: key 'offset_tolerance_a' = 0.5, expected below key 'max_offset_a' = 0.5"),
    ("idle_s = 1800\n",
     r"\[current_sensor\]: key 'idle_s' without 'max_offset_a', 'offset_tolerance_a' and 'max_offset_reaction_ms': "
     r"the idle test offsets the sensor by max_offset_a - offset_tolerance_a"),
], ids=["no_tolerance", "reaction_alone", "tolerance_swallows_the_limit", "idle_without_offset"])
def test_the_current_sensor_offset_keys_come_together(tmp_path, keys, expected):
    path = tmp_path / "offset.toml"
    path.write_text(VALID + CURRENT_SENSOR + OFFSET)
    assert load_spec(path).section("current_sensor")["max_offset_a"] == 0.5
    path.write_text(VALID + CURRENT_SENSOR + keys)
    with pytest.raises(ConfigError, match=r"offset.toml " + expected):
        load_spec(path)
