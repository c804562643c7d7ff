"""BMS specs: what the BMS must do (`fixtures/specs/*.toml`). The suite checks the DUT against them.

A spec is written by the team that owns the BMS and pack; it holds numbers only. Every protection has a
threshold, a tolerance band the trip must fall in, and a maximum reaction time from crossing the limit to
the contactors reporting open.

A spec is validated on load against the tables below, so `hil run` refuses a bad one before any test, naming
the file, table and key, instead of a test failing with a KeyError or a TypeError later. Within the suite's
tables the keys are closed: one the suite does not read would be a requirement nobody checks. A table of
its own (a lab's requirements for its own tests, read with `Spec.section`) is kept, unless its name is close
to one of the suite's: a misspelt `[heartbeet]` is refused with the closest name.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from pathlib import Path

from hil.datafile import read_toml
from hil.errors import ConfigError, did_you_mean

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Key:
    """What one key must hold: a value of `kind`; a number must also be finite and inside the bounds given."""
    kind: type = float
    required: bool = True
    above: float | None = None
    at_least: float | None = None
    below: float | None = None
    at_most: float | None = None

    def _bounds(self):
        return [(op, bound) for op, bound in ((">", self.above), (">=", self.at_least), ("<", self.below),
                                              ("<=", self.at_most)) if bound is not None]

    def expected(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string"
        noun = "an integer" if self.kind is int else "a finite number"
        return f"{noun} {' and '.join(f'{op} {bound:g}' for op, bound in self._bounds())}".rstrip()

    def accepts(self, value) -> bool:
        if self.kind in (bool, str):
            return isinstance(value, self.kind)
        number_types = int if self.kind is int else (int, float)
        # bool is an int to Python but never a number to a spec author; nan and inf are no limit at all (a
        # test's check against nan is always False, a timeout of inf overflows)
        if isinstance(value, bool) or not isinstance(value, number_types) or not math.isfinite(value):
            return False
        return all(_COMPARE[op](value, bound) for op, bound in self._bounds())


# The unit each protection's threshold and tolerance are in: the tests step and measure in these units.
PROTECTION_UNITS = {"cell_ov": "V", "cell_uv": "V", "discharge_oc": "A", "charge_oc": "A",
                    "cell_ot": "degC", "cell_ut": "degC", "insulation": "ohm/V", "short_circuit": "A",
                    "discharge_oc_sustained": "A"}
PROTECTIONS = tuple(PROTECTION_UNITS)
# The ones tests/bms always steps across; cell_ut, insulation (pack to chassis, in ohm per volt of pack
# voltage), short_circuit (a discharge current cut at once, not after the over-current debounce) and
# discharge_oc_sustained (the pack's continuous rating, below discharge_oc's peak level, cut after a long delay and
# reported as discharge_oc) are tested when a spec states them (a BMS may have none of them).
REQUIRED_PROTECTIONS = ("cell_ov", "cell_uv", "discharge_oc", "charge_oc", "cell_ot")
# Any table of the suite's, and each entry of a named one ([protections.cell_ov]), may name the requirement it
# states in the team's own documents, e.g. requirement = "SYS-BMS-042": the report's spec coverage shows it.
REQUIREMENT = "requirement"
PROTECTION_KEYS = {"unit": Key(str, required=False), "threshold": Key(), "tolerance": Key(at_least=0),
                   "max_reaction_ms": Key(above=0), REQUIREMENT: Key(str, required=False)}
# Where a trip band can sensibly lie, per unit: outside it the number is in another unit (mV, K) or sign.
PLAUSIBLE_BAND = {
    "V": (0.0, 6.0, "a cell voltage, above 0 V and below 6 V for any chemistry (not in mV)"),
    "A": (0.0, math.inf, "a current magnitude above 0 A (charge_oc counts charging current as positive)"),
    "degC": (-273.15, 200.0, "a cell temperature above -273.15 degC and below 200 degC (not in kelvin)"),
    "ohm/V": (0.0, 100_000.0, "a resistance per volt of pack voltage above 0 and below 100000 ohm/V (100 ohm/V is "
                              "the usual DC error level)"),
}
# Keys of one table that bound a measurement from both sides: (table, the lower bound, the upper bound).
ORDERED_KEYS = (("security", "min_lockout_s", "max_lockout_s"), ("security", "min_session_s", "max_session_s"))
# Protections whose bands must not overlap: (the lower limit, the upper limit).
ORDERED_PROTECTIONS = (("cell_uv", "cell_ov"), ("cell_ut", "cell_ot"), ("discharge_oc", "short_circuit"),
                       ("discharge_oc_sustained", "discharge_oc"))
# [warnings.<name>]: the warning tier a BMS reports before it trips (optional, each one), with the protection's
# keys: its band must lie wholly on the safe side of the protection's. The under-limits warn above their band.
WARNINGS = ("cell_ov", "cell_uv", "discharge_oc", "charge_oc", "cell_ot", "cell_ut", "insulation")
UNDER_LIMITS = ("cell_uv", "cell_ut", "insulation")

# [cycle_times]: the BMS's periodic messages tests/bms/test_communication.py times, one entry each, by their
# names in the DUT's DBC (any of its messages; preflight checks they are in it).
CYCLE_KEYS = {"cycle_ms": Key(above=0), "tolerance_pct": Key(at_least=0, below=100),
              REQUIREMENT: Key(str, required=False)}
# The corners of the pack's window where the discharge limit is checked (tests/bms/test_ride_through.py), each
# optional: [corners.<name>] with the pack's SOC and the ambient its cells start at.
CORNERS = ("low_soc", "cold")
CORNER_KEYS = {"soc": Key(at_least=0.05, at_most=1), "ambient_c": Key(at_least=-40, at_most=60),
               REQUIREMENT: Key(str, required=False)}

# The plain tables: key -> Key. A table with a required key is required, unless OPTIONAL_TABLES names it.
TABLES = {
    "bms": {"name": Key(str, required=False), "n_series": Key(int, required=False, above=0)},
    "heartbeat": {"timeout_ms": Key(above=0), "max_reaction_ms": Key(above=0)},
    "soc": {"max_error_pct": Key(above=0, at_most=100), "max_error_after_rest_pct": Key(above=0, at_most=100)},
    # Capacity fade (tests/bms/test_soc.py, on a pack of cells at 80 % of their capacity): after a discharge of
    # delta_soc between two rests of rest_s, the BMS's SOH within max_error_pct (points) of the cells' capacity.
    "soh": {"max_error_pct": Key(above=0, at_most=100), "delta_soc": Key(above=0, at_most=0.6),
            "rest_s": Key(above=0, at_most=86_400)},
    "balancing": {"soc0": Key(required=False, at_least=0, at_most=1),
                  "initial_soc_spread": Key(above=0, at_most=1),   # a standard deviation of SOC, 0..1
                  "bleed_current_a": Key(above=0), "duration_s": Key(above=0),
                  "max_final_fraction": Key(above=0, at_most=1)},   # end spread over start spread
    # stores_dtcs (optional): every error the BMS latches is stored as its DTC, read over UDS; checked after each
    # test whose body ends with errors latched, where the harness has UDS for the BMS (hil/pytest_plugin.py).
    # stores_dtcs: each error latched is stored as its DTC (the suite reads them over UDS after each test);
    # stores_snapshots: with a snapshot of the pack as the BMS measured it, the first occurrence's and the latest's;
    # counts_occurrences: and a count of the times the error occurred (tests/bms/test_diagnostics.py).
    "diagnostics": {"self_discharge": Key(bool), "stores_dtcs": Key(bool, required=False),
                    "stores_snapshots": Key(bool, required=False), "counts_occurrences": Key(bool, required=False)},
    # min_charge_cell_v: charging near full at the BMS's limit must take the fullest cell at least this high
    # (the CV phase), so a BMS that simply stops charging early does not pass the no-trip test by default.
    # discharge_end_cell_v: discharging to empty at 1 C under the BMS's limit must take the emptiest cell (loaded) at
    # least this low, so a BMS that stops early, with charge left in every block, does not pass by default.
    # rack_power_w (optional): the rack power, or its share, this pack carries, at which the AI-rack profiles and the
    # grid-loss ride-through run (tests/bms/loads.py); without it, each profile's default, sized for a 16S1P 5 Ah pack.
    # discharge_while_charging (optional, default false): a load that comes while the host asks the BMS to charge is
    # carried at once, as a grid loss during a backup unit's recharge must be (tests/bms/test_ride_through.py).
    "ride_through": {"min_discharge_limit_a": Key(above=0), "min_charge_cell_v": Key(above=0, below=6),
                     "discharge_end_cell_v": Key(above=0, below=6),
                     "rack_power_w": Key(required=False, above=0, at_most=1_000_000),
                     "discharge_while_charging": Key(bool, required=False)},
    # How close what the BMS reports must be to what the bench applies (tests/bms/test_measurement.py). The
    # bounds keep a number in the wrong unit out: a cell voltage error of 0.005 "mV" was meant in volts.
    "accuracy": {"cell_voltage_mv": Key(at_least=0.1, at_most=500),
                 "temperature_c": Key(at_least=0.05, at_most=50),
                 "pack_voltage_v": Key(at_least=0.001, at_most=100),
                 "pack_current_a": Key(at_least=0.001, at_most=1000),   # plus pack_current_pct of the reading
                 "pack_current_pct": Key(required=False, at_least=0, at_most=50),
                 # From a stimulus's change until the report must meet them: voltages and current, then the
                 # thermistors (reported more slowly, e.g. once a second).
                 "settle_ms": Key(above=0, at_most=60_000), "temperature_settle_ms": Key(above=0, at_most=600_000),
                 # The insulation monitor's reading, in % of the resistance applied from pack to chassis, and
                 # its settling time (a monitor takes seconds per reading). Optional: not every BMS reports it.
                 "insulation_pct": Key(required=False, above=0, at_most=100),
                 "insulation_settle_ms": Key(required=False, above=0, at_most=600_000)},
    # Current limits against the hottest cell (tests/bms/test_derating.py): full up to start_c, falling linearly
    # to 0 at end_c, each limit within tolerance_pct of its full value of that line.
    # Once the cell cools below start_c again, both limits must be back within tolerance_pct of full within
    # max_recovery_s (optional: without it, recovery is not checked).
    "derating": {"start_c": Key(above=-273.15, below=200), "end_c": Key(above=-273.15, below=200),
                 "tolerance_pct": Key(at_least=0, at_most=100),
                 "max_recovery_s": Key(required=False, above=0, at_most=3600),
                 # Charging a cold cell plates lithium: the charge limit against the coldest cell, 0 at and below
                 # cold_charge_zero_c, full from cold_charge_full_c (optional, both or neither).
                 "cold_charge_zero_c": Key(required=False, above=-273.15, below=200),
                 "cold_charge_full_c": Key(required=False, above=-273.15, below=200),
                 # The same for the discharge limit (a cold cell's resistance sags it toward UV; datasheets end
                 # the discharge range, LG INR21700-M50's at -20 degC): optional, both or neither.
                 "cold_discharge_zero_c": Key(required=False, above=-273.15, below=200),
                 "cold_discharge_full_c": Key(required=False, above=-273.15, below=200)},
    # The power-up sequence (tests/bms/test_precharge.py), from the BMS's contactor reports: the precharge
    # contactor closed for at least min_precharge_ms before the main contactors close (the DC link's RC, ~3
    # time constants), main closed within max_close_ms of the host's request, and the precharge contactor
    # open within max_overlap_ms of the main one closing.
    "precharge": {"min_precharge_ms": Key(at_least=0, at_most=60_000), "max_close_ms": Key(above=0, at_most=60_000),
                  "max_overlap_ms": Key(at_least=0, at_most=60_000),
                  # Into a shorted DC link (the rig's "dc_link_short"): from the host's request until the BMS
                  # reports a precharge fault with every contactor open. Optional.
                  "max_abort_ms": Key(required=False, above=0, at_most=60_000)},
    # A main contactor welded shut (tests/bms/test_protections.py): from the host's request to open until the BMS
    # reports a contactor fault (its feedback disagrees with its command). Optional: from the precharge contactor
    # welding, in operation (its command is then open), until the fault with both main contactors open.
    "contactor_weld": {"max_reaction_ms": Key(above=0, at_most=60_000),
                       "max_precharge_reaction_ms": Key(required=False, above=0, at_most=60_000)},
    # A main contactor that fails to close (tests/bms/test_protections.py): from the host's request to close until
    # the BMS reports a contactor fault with every contactor open, precharge included (its resistor must not
    # carry load current through the gap). Optional: one that drops out in operation, under load (its coil's supply
    # lost), from the drop until the same.
    "contactor_stuck_open": {"max_reaction_ms": Key(above=0, at_most=60_000),
                             "max_dropout_reaction_ms": Key(required=False, above=0, at_most=60_000)},
    # A host's STANDBY request under load (tests/bms/test_precharge.py): the contactors must not break more than
    # max_open_current_a; with a host that follows the limits they open within max_open_ms of the request, and with
    # one that keeps drawing, within max_forced_open_ms (a BMS that waits for the current forever is stuck closed).
    "shutdown": {"max_open_current_a": Key(above=0, at_most=10_000), "max_open_ms": Key(above=0, at_most=60_000),
                 "max_forced_open_ms": Key(above=0, at_most=60_000)},
    # A cell heating itself, the onset of a thermal runaway (tests/bms/test_protections.py): the BMS must report
    # `thermal_runaway` with every contactor open within max_detect_ms of the cell starting to rise at twice
    # rate_c_per_s faster than the rest, and must not when the whole pack rises that fast (a hard load's heat).
    "thermal_runaway": {"rate_c_per_s": Key(above=0, at_most=100), "max_detect_ms": Key(above=0, at_most=600_000)},
    # A charger that ignores the charge limit the BMS publishes (tests/bms/test_derating.py, after a cold cell has
    # taken the limit to 0): a charge current more than margin_a above the limit must be cut off (contactors open,
    # charge_oc) within max_reaction_ms, even below the charge over-current level; a charger that follows a falling
    # limit within response_s, or stays within margin_a of it, must not be.
    # The high-voltage interlock loop (tests/bms/test_protections.py, on a rig with "hvil"): opened, the BMS must
    # report `hvil` with every contactor open within max_reaction_ms, and must not close while it stays open;
    # interruptions of ride_through_ms (a connector chattering under vibration) must not trip it.
    "hvil": {"max_reaction_ms": Key(above=0, at_most=60_000), "ride_through_ms": Key(at_least=0, at_most=60_000)},
    # The link to the cell-monitoring front end (tests/bms/test_protections.py, on a rig with "afe_link"): broken,
    # the BMS must report `afe` with every contactor open within max_reaction_ms, and not close while it stays so.
    "afe": {"max_reaction_ms": Key(above=0, at_most=60_000)},
    # Sleep (tests/bms/test_sleep.py): with every contactor open and the host silent, the BMS falls silent (asleep)
    # within max_idle_s of the host's last frame, then draws at most max_quiescent_ma from its 12 V supply (on a rig
    # with "lv_supply"); the host's next frame has its status frames back within max_wake_ms. With
    # max_check_period_s (optional), asleep it looks at its cells by itself at least that often: silent while they
    # are healthy, and awake, the fault reported, for a cell below its cut-off.
    "sleep": {"max_idle_s": Key(above=0, at_most=86_400), "max_quiescent_ma": Key(above=0, at_most=10_000),
              "max_wake_ms": Key(above=0, at_most=60_000),
              "max_check_period_s": Key(above=0, at_most=604_800, required=False)},
    # Security access (tests/bms/test_security_access.py, where the harness has UDS with a security key for the
    # BMS): its protected DID written only in the extended session, unlocked. After max_attempts wrong keys in a row,
    # its seed requests refused for at least min_lockout_s, and the right key taken again within max_lockout_s. The
    # unlocked session kept through min_session_s of a silent tester, ended (locked again) within max_session_s
    # (ISO 14229-2's S3Server: 5 s).
    "security": {"max_attempts": Key(int, at_least=1, at_most=100), "min_lockout_s": Key(at_least=0, at_most=3600),
                 "max_lockout_s": Key(above=0, at_most=3600), "min_session_s": Key(at_least=0, at_most=600),
                 "max_session_s": Key(above=0, at_most=600)},
    # The current sensor (tests/bms/test_protections.py, on a rig with "current_sensor"): one that drops to 0 A with
    # load_a flowing, or freezes at its reading before a load step of load_a, must be reported as `current_sensor`
    # with every contactor open within max_reaction_ms.
    "current_sensor": {"load_a": Key(above=0, at_most=100_000), "max_reaction_ms": Key(above=0, at_most=60_000),
                       # Optional, all three or none: with every contactor open (nothing flows), a reading off by
                       # more than max_offset_a + offset_tolerance_a either way must be reported as current_sensor
                       # within max_offset_reaction_ms; one within max_offset_a - offset_tolerance_a must not be.
                       "max_offset_a": Key(required=False, above=0, at_most=1000),
                       "offset_tolerance_a": Key(required=False, at_least=0, at_most=1000),
                       "max_offset_reaction_ms": Key(required=False, above=0, at_most=60_000),
                       # Optional, with the offset keys: the pack idles closed for idle_s with the sensor off by
                       # max_offset_a - offset_tolerance_a; the BMS's SOC must stay within [soc] max_error_pct.
                       "idle_s": Key(required=False, above=0, at_most=86_400)},
    # A block whose resistance rises (tests/bms/test_pack_health.py): every cell of a mid-pack block `factor` times
    # as resistive (a loosening busbar, a corroded weld) must be reported as `cell_resistance`, naming the block,
    # within within_s of the AI-training load (at [ride_through] rack_power_w); on a pack with cells in parallel, so
    # must one lost cell of a block (open: its neighbours carry its share) where that raises the block's resistance
    # by factor or more. A healthy pack with a production spread must not be flagged over the same load. Optional:
    # with derate_tolerance_pct, the discharge limit at rest must then fall by the block's resistance over the median
    # block's (within that %), so that each of the block's cells carries no more than before.
    "cell_resistance": {"factor": Key(above=1, at_most=10), "within_s": Key(above=0, at_most=3600),
                        "derate_tolerance_pct": Key(required=False, at_least=0, at_most=100)},
    "charge_limit": {"margin_a": Key(above=0, at_most=1000), "response_s": Key(at_least=0, at_most=600),
                     "max_reaction_ms": Key(above=0, at_most=600_000)},
    # The BMS's own low-voltage supply (tests/bms/test_lv_supply.py, on a rig with a programmable supply). A cold
    # crank it must ride through unchanged: a dip to crank_low_v for crank_low_ms, then crank_hold_v for
    # crank_hold_s. A deeper dip (deep_crank_v for deep_crank_ms) or a cut may reset it; it must then be back in
    # STANDBY within max_boot_s of the supply's return, its SOC within max_soc_loss_pct of what it had.
    "lv_supply": {"crank_low_v": Key(above=0, at_most=60), "crank_low_ms": Key(at_least=1, at_most=10_000),
                  "crank_hold_v": Key(above=0, at_most=60), "crank_hold_s": Key(above=0, at_most=60),
                  "deep_crank_v": Key(at_least=0, at_most=60), "deep_crank_ms": Key(at_least=1, at_most=10_000),
                  "max_boot_s": Key(above=0, at_most=60), "max_soc_loss_pct": Key(above=0, at_most=100),
                  # Optional, both or neither: an over-voltage it must ride through unchanged, jump_start_v for
                  # jump_start_s (ISO 16750-2's jump start of a 12 V system: 24 V for 60 s).
                  "jump_start_v": Key(required=False, above=0, at_most=60),
                  "jump_start_s": Key(required=False, above=0, at_most=600),
                  # Optional: true if a fault the BMS latched must survive a reset of its supply (it comes back in
                  # FAULT until the host clears it), as a fault memory in NVM keeps it.
                  "keeps_faults": Key(bool, required=False)},
}
for _keys in TABLES.values():
    _keys[REQUIREMENT] = Key(str, required=False)
# The tables made of named entries, each entry a requirement of its own: table -> the names the suite knows (None:
# any, the DUT's messages).
NAMED_TABLES = {"protections": PROTECTIONS, "warnings": WARNINGS, "corners": CORNERS, "cycle_times": None}
KNOWN_TABLES = ("bms", "protections", "heartbeat", "cycle_times", "soc", "balancing", "diagnostics",
                "ride_through", "accuracy", "derating", "precharge", "contactor_weld", "contactor_stuck_open",
                "thermal_runaway", "lv_supply", "charge_limit", "warnings", "hvil", "soh", "current_sensor",
                "cell_resistance", "shutdown", "afe", "corners", "sleep", "security")
# A BMS without the function leaves these out, and their tests skip (many low-voltage packs switch with
# MOSFETs and have no precharge contactor, nor contactor feedback; a small pack may only cut off at OT, without
# derating; a pack that powers its BMS from its own cells has no separate low-voltage supply).
OPTIONAL_TABLES = ("derating", "precharge", "contactor_weld", "contactor_stuck_open", "thermal_runaway",
                   "lv_supply", "charge_limit", "hvil", "soh", "current_sensor", "cell_resistance", "shutdown", "afe",
                   "sleep", "security")


@dataclass(frozen=True)
class Protection:
    name: str
    threshold: float
    tolerance: float
    max_reaction_ms: float
    unit: str

    @property
    def low(self) -> float:
        return self.threshold - self.tolerance

    @property
    def high(self) -> float:
        return self.threshold + self.tolerance


@dataclass(frozen=True)
class Spec:
    path: Path
    data: dict
    protections: dict
    warnings: dict = field(default_factory=dict)   # name -> Protection: the warning tier's bands, when stated

    def section(self, name: str) -> dict:
        if name not in self.data:
            raise ConfigError(f"{self.path}: missing table [{name}]")
        return self.data[name]

    def requirements(self) -> dict[str, str | None]:
        """What the spec requires, one entry per table or named entry ("heartbeat", "protections.cell_ov"), in
        the file's order, each with its `requirement` (None where it names none). [bms] names the BMS only; a
        lab's own tables are entries too."""
        entries = {}
        for name, table in self.data.items():
            if name == "bms" or not isinstance(table, dict):
                continue
            if name in NAMED_TABLES:
                for entry, values in table.items():
                    entries[f"{name}.{entry}"] = values.get(REQUIREMENT) if isinstance(values, dict) else None
            else:
                entries[name] = table.get(REQUIREMENT)
        return entries

    def value(self, dotted: str) -> float:
        table = self.data
        for key in dotted.split("."):
            if not isinstance(table, dict) or key not in table:
                raise ConfigError(f"{self.path}: missing key '{dotted}'")
            table = table[key]
        return table


def unknown_entry(dotted: str) -> str:
    """Why `dotted` ("sleep", "protections.cell_ov") names no entry a spec can state, or "" if it can: a table of
    the suite's, one of a named table's entries the suite knows, or a lab's own table (a name that is not a
    misspelling of one of the suite's, as `load_spec` keeps it)."""
    table, _, entry = dotted.partition(".")
    if table not in KNOWN_TABLES:
        hint = _misspelt_table(table)
        return f"unknown table [{table}]{hint}" if hint or not table else ""
    if entry and table not in NAMED_TABLES:
        return f"[{table}] has no named entries: name the table alone, '{table}'"
    known = NAMED_TABLES.get(table)
    if entry and known is not None and entry not in known:
        return f"unknown entry '{entry}' of [{table}]{did_you_mean(entry, known)}; the suite knows {list(known)}"
    return ""


def _quoted_number_hint(value, rule: Key) -> str:
    """A number written in quotes is the commonest wrong type: say so rather than only "expected a number"."""
    if rule.kind in (int, float) and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return f" (write it without quotes: {value.strip()})"
    return ""


def _sub_table(parent: dict, key: str, where: str, header: str) -> dict:
    """`parent[key]`, which must be a table: `[protections] cell_ov = 5` is a number where a table belongs."""
    value = parent[key]
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: key '{key}' = {value!r}, expected a table [{header}]")
    return value


def _check_keys(table: dict, keys: dict[str, Key], where: str) -> None:
    """Every key known, every required key present, every value of its kind and in its range."""
    for key in table:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, keys)}; expected one of "
                              f"{sorted(keys)}")
    for key, rule in keys.items():
        if key not in table:
            if rule.required:
                raise ConfigError(f"{where}: missing key '{key}' (expected {rule.expected()})")
        elif not rule.accepts(table[key]):
            raise ConfigError(f"{where}: key '{key}' = {table[key]!r}, expected {rule.expected()}"
                              f"{_quoted_number_hint(table[key], rule)}")


def _misspelt_table(name: str) -> str:
    """" (did you mean 'X'?)" where `name` is not one of the suite's tables but close to one; "" otherwise: a name
    far from all of them is a lab's own table, kept for its own tests."""
    return "" if name in KNOWN_TABLES else did_you_mean(name, KNOWN_TABLES, cutoff=0.8)


def _check_table_names(data: dict, path: Path) -> None:
    """Before anything is missed: a misspelt table reads as a missing one, and the misspelling is the news."""
    for name, value in data.items():
        if name not in KNOWN_TABLES and (not isinstance(value, dict) or _misspelt_table(name)):
            what = f"table [{name}]" if isinstance(value, dict) else f"key '{name}'"
            raise ConfigError(f"{path}: unknown {what}{did_you_mean(name, KNOWN_TABLES)}; expected tables "
                              f"{list(KNOWN_TABLES)}")


def _check_plain_tables(data: dict, path: Path) -> None:
    for name, keys in TABLES.items():
        if name in data:
            _check_keys(_sub_table(data, name, str(path), name), keys, f"{path} [{name}]")
        elif name not in OPTIONAL_TABLES and any(rule.required for rule in keys.values()):
            needed = [key for key, rule in keys.items() if rule.required]
            raise ConfigError(f"{path}: missing table [{name}] (keys {', '.join(needed)})")
    for name, low, high in ORDERED_KEYS:
        table = data.get(name, {})
        if low in table and high in table and not table[low] <= table[high]:
            raise ConfigError(f"{path} [{name}]: key '{low}' = {table[low]:g} is above '{high}' = {table[high]:g}; "
                              f"expected {low} <= {high}")


def _named_tables(data: dict, path: Path, table: str, known, required, keys: dict[str, Key]) -> dict[str, dict]:
    """The `[table.<name>]` entries: each name known (any, for `known` None), each required one present, each a
    table of `keys`."""
    entries = _sub_table(data, table, str(path), f"{table}.<name>") if table in data else {}
    for name in entries:
        if known is not None and name not in known:
            raise ConfigError(f"{path} [{table}]: unknown entry '{name}'{did_you_mean(name, known)}; the suite "
                              f"checks {list(known)}")
    missing = [name for name in required if name not in entries]
    if missing:
        raise ConfigError(f"{path}: missing table {', '.join(f'[{table}.{name}]' for name in missing)} (keys "
                          f"{', '.join(key for key in keys if key != REQUIREMENT)}); the suite needs every one of "
                          f"{list(required)}")
    for name in entries:
        _check_keys(_sub_table(entries, name, f"{path} [{table}]", f"{table}.{name}"), keys,
                    f"{path} [{table}.{name}]")
    return entries


def _protection(name: str, table: dict, where: str) -> Protection:
    """A checked table as a Protection: in the unit the tests work in, its band where such a limit can be."""
    unit = PROTECTION_UNITS[name]
    if table.get("unit", unit) != unit:
        raise ConfigError(f"{where}: key 'unit' = {table['unit']!r}, expected {unit!r}: the suite steps and "
                          f"measures {name} in {unit}, so give threshold and tolerance in {unit}")
    protection = Protection(name, float(table["threshold"]), float(table["tolerance"]),
                            float(table["max_reaction_ms"]), unit)
    lowest, highest, what = PLAUSIBLE_BAND[unit]
    if not lowest < protection.low <= protection.high < highest:
        raise ConfigError(f"{where}: keys 'threshold' = {protection.threshold:g} and 'tolerance' = "
                          f"{protection.tolerance:g} put the trip band at [{protection.low:g}, "
                          f"{protection.high:g}] {unit}; expected {what}")
    return protection


def _check_bands_apart(protections: dict[str, Protection], path: Path) -> None:
    """An under-limit band that reaches its over-limit's band leaves no normal range to test between them."""
    for lower, upper in ORDERED_PROTECTIONS:
        if lower in protections and upper in protections:
            under, over = protections[lower], protections[upper]
            if not under.high < over.low:
                raise ConfigError(f"{path} [protections.{lower}]: trip band [{under.low:g}, {under.high:g}] "
                                  f"{under.unit} reaches [protections.{upper}]'s [{over.low:g}, {over.high:g}] "
                                  f"{over.unit}; expected {lower} wholly below {upper}")


def _check_ends_reachable(ride_through: dict, protections: dict[str, Protection], path: Path) -> None:
    """The cell voltages a charge and a discharge must reach lie short of the trips that would end them first, and
    so does the discharge current the BMS must allow: below the long-delay over-current level."""
    for key, name, under in (("min_charge_cell_v", "cell_ov", False), ("discharge_end_cell_v", "cell_uv", True)):
        trip = protections.get(name)
        if trip is not None and not (ride_through[key] > trip.high if under else ride_through[key] < trip.low):
            raise ConfigError(f"{path} [ride_through]: key '{key}' = {ride_through[key]:g} V reaches "
                              f"[protections.{name}]'s band [{trip.low:g}, {trip.high:g}] {trip.unit}; expected it "
                              f"wholly {'above' if under else 'below'} it: the cell must get there without a trip")
    sustained, allowed_a = protections.get("discharge_oc_sustained"), ride_through["min_discharge_limit_a"]
    if sustained is not None and not allowed_a < sustained.low:
        raise ConfigError(f"{path} [ride_through]: key 'min_discharge_limit_a' = {allowed_a:g} A reaches "
                          f"[protections.discharge_oc_sustained]'s band [{sustained.low:g}, {sustained.high:g}] A; "
                          "expected it wholly below: a host drawing what the BMS must allow would be cut after the "
                          "long delay")


def _check_warnings_inside(warnings: dict[str, Protection], protections: dict[str, Protection], path: Path) -> None:
    """A warning is notice before the trip: its band on the safe side of its protection's, apart from it."""
    for name, warning in warnings.items():
        trip = protections.get(name)
        if trip is None:
            raise ConfigError(f"{path} [warnings.{name}]: no [protections.{name}] to warn of; expected the "
                              "protection's table too")
        under = name in UNDER_LIMITS
        if not (warning.low > trip.high if under else warning.high < trip.low):
            raise ConfigError(f"{path} [warnings.{name}]: band [{warning.low:g}, {warning.high:g}] {warning.unit} "
                              f"reaches [protections.{name}]'s [{trip.low:g}, {trip.high:g}] {trip.unit}; expected it "
                              f"wholly {'above' if under else 'below'} it, warning before the trip")


def _check_sustained_warned(warnings: dict[str, Protection], protections: dict[str, Protection], path: Path) -> None:
    """A discharge warning above the long-delay level's band: an overload between them is cut with no notice."""
    warning, sustained = warnings.get("discharge_oc"), protections.get("discharge_oc_sustained")
    if warning is not None and sustained is not None and warning.high > sustained.high:
        raise ConfigError(f"{path} [warnings.discharge_oc]: band [{warning.low:g}, {warning.high:g}] A reaches above "
                          f"[protections.discharge_oc_sustained]'s [{sustained.low:g}, {sustained.high:g}] A; "
                          "expected it no higher: a current between them is cut after the long delay with no warning")


def _check_derating(data: dict, path: Path) -> None:
    derating = data.get("derating")
    if derating is None:
        return
    if not derating["start_c"] < derating["end_c"]:
        raise ConfigError(f"{path} [derating]: key 'start_c' = {derating['start_c']!r}, expected below key 'end_c' = "
                          f"{derating['end_c']!r}: the limits fall from full at start_c to 0 at end_c")
    for kind in ("charge", "discharge"):
        zero_key, full_key = f"cold_{kind}_zero_c", f"cold_{kind}_full_c"
        cold = _all_or_none(derating, (zero_key, full_key), f"{path} [derating]",
                            f"where the {kind} limit is 0 and where it is full again")
        if cold and not derating[zero_key] < derating[full_key] <= derating["start_c"]:
            raise ConfigError(f"{path} [derating]: keys '{zero_key}' = {derating[zero_key]!r} and '{full_key}' = "
                              f"{derating[full_key]!r}; expected zero_c below full_c, and full_c at most 'start_c' = "
                              f"{derating['start_c']!r}")


def _check_jump_start(data: dict, path: Path) -> None:
    _all_or_none(data.get("lv_supply", {}), ("jump_start_v", "jump_start_s"), f"{path} [lv_supply]",
                 "the jump start's voltage and how long it lasts")


def _check_current_offset(data: dict, path: Path) -> None:
    table, where = data.get("current_sensor", {}), f"{path} [current_sensor]"
    keys = ("max_offset_a", "offset_tolerance_a", "max_offset_reaction_ms")
    if _all_or_none(table, keys, where, "the offset the BMS must report, its tolerance and the reaction time") \
            and not table["offset_tolerance_a"] < table["max_offset_a"]:
        raise ConfigError(f"{where}: key 'offset_tolerance_a' = {table['offset_tolerance_a']!r}, expected below key "
                          f"'max_offset_a' = {table['max_offset_a']!r}: an offset within max_offset_a - "
                          "offset_tolerance_a must pass")
    if "idle_s" in table and "max_offset_a" not in table:
        raise ConfigError(f"{where}: key 'idle_s' without 'max_offset_a', 'offset_tolerance_a' and "
                          "'max_offset_reaction_ms': the idle test offsets the sensor by max_offset_a - "
                          "offset_tolerance_a")


def _all_or_none(table: dict, keys: tuple[str, ...], where: str, together: str) -> bool:
    """Whether `table` states the optional group `keys`; some of them without the rest is a ConfigError
    (`together`: what they say together)."""
    given = [key for key in keys if key in table]
    if given and len(given) < len(keys):
        missing = " and ".join(f"'{key}'" for key in keys if key not in table)
        both, neither = ("both", "neither") if len(keys) == 2 else ("all", "none")
        raise ConfigError(f"{where}: key '{given[0]}' without {missing}; expected {both} ({together}) or {neither}")
    return bool(given)


def _reaction_exceeds(table: dict, other_ms: str, where: str, why: str = "") -> None:
    """A ConfigError unless the table's max_reaction_ms exceeds its key `other_ms`, a time the reaction must allow
    first (`why` says so)."""
    if not table["max_reaction_ms"] > table[other_ms]:
        raise ConfigError(f"{where}: key 'max_reaction_ms' = {table['max_reaction_ms']!r}, expected more than key "
                          f"'{other_ms}' = {table[other_ms]!r}{why}")


def _check_heartbeat(heartbeat: dict, path: Path) -> None:
    """The reaction is timed from the host's last frame, so its budget includes the timeout itself."""
    _reaction_exceeds(heartbeat, "timeout_ms", f"{path} [heartbeat]")


def _check_charge_limit(data: dict, path: Path) -> None:
    """A charger ignoring the limit is given response_s to follow it first, so the reaction takes longer."""
    table = data.get("charge_limit")
    if table is None:
        return
    reaction_ms, response_s = table["max_reaction_ms"], table["response_s"]
    if not reaction_ms > 1000 * response_s:
        raise ConfigError(f"{path} [charge_limit]: key 'max_reaction_ms' = {reaction_ms!r}, expected more than key "
                          f"'response_s' = {response_s!r} s ({1000 * response_s:g} ms): the charger is given "
                          "response_s to follow a falling limit before it may be cut off")


def _check_hvil(data: dict, path: Path) -> None:
    """An interruption the BMS must ride through cannot also be one it must react to."""
    if "hvil" in data:
        _reaction_exceeds(data["hvil"], "ride_through_ms", f"{path} [hvil]",
                          ": an open loop the BMS must ride through for ride_through_ms cannot be one it must have "
                          "reacted to sooner")


def load_spec(path: str | Path) -> Spec:
    """Load and validate a spec file. Errors name the file, the table and the key."""
    path = Path(path)
    data = read_toml(path, "spec")
    _check_table_names(data, path)
    _check_plain_tables(data, path)
    _check_heartbeat(data["heartbeat"], path)
    _check_derating(data, path)
    _check_jump_start(data, path)
    _check_charge_limit(data, path)
    _check_hvil(data, path)
    _check_current_offset(data, path)
    if not _named_tables(data, path, "cycle_times", None, (), CYCLE_KEYS):
        raise ConfigError(f"{path}: [cycle_times] names no message; expected at least one of the BMS's periodic "
                          "messages, e.g. BMS_Status = { cycle_ms = 20, tolerance_pct = 10 }")
    _named_tables(data, path, "corners", CORNERS, (), CORNER_KEYS)
    tables = _named_tables(data, path, "protections", PROTECTIONS, REQUIRED_PROTECTIONS, PROTECTION_KEYS)
    protections = {name: _protection(name, table, f"{path} [protections.{name}]") for name, table in tables.items()}
    _check_bands_apart(protections, path)
    _check_ends_reachable(data["ride_through"], protections, path)
    tables = _named_tables(data, path, "warnings", WARNINGS, (), PROTECTION_KEYS)
    warnings = {name: _protection(name, table, f"{path} [warnings.{name}]") for name, table in tables.items()}
    _check_warnings_inside(warnings, protections, path)
    _check_sustained_warned(warnings, protections, path)
    return Spec(path.resolve(), data, protections, warnings)
