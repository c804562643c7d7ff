"""Rig files: one TOML file per bench, saying which buses, boards, pack and spec it has.

A rig is data. It is validated on load against the table below, so a typo fails at once with the file,
the key and what was expected, never later as an AttributeError. CAN bus tables pass python-can's own
keyword names (`interface`, `channel`, `bitrate`, `fd`, `data_bitrate`, `sleep_after_open`, ...) through
unchanged. Relative paths are relative to the rig file.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import can

from hil.clock import WAITS, make_clock
from hil.datafile import Between, read_toml
from hil.errors import ConfigError, did_you_mean
from hil.loop import OVERRUN_POLICIES
from hil.model.cell import TEMPERATURE_MAX_C, TEMPERATURE_MIN_C

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RIG = PROJECT_ROOT / "rigs" / "sim.toml"

_ANY = object()   # a table whose keys are free (python-can kwargs, calibration checked elsewhere)


PACK_OPTIONS = ("n_parallel", "soc_spread", "capacity_spread", "resistance_spread", "soh_capacity", "soh_resistance",
                "thermal_dt_s")
SEEDS = range(2 ** 32)  # numpy's generators take seeds >= 0
# What a rig may declare in [rig] capabilities, for `@pytest.mark.rig_requires(...)`. A name close to one of
# these is taken for a typo (it would skip tests silently); a lab's own, unlike any, is accepted.
KNOWN_CAPABILITIES = {
    "emulated": "the boards are the reference firmware and cell emulator, emulated",
    "seeded_bugs": "the emulated firmware takes seeded bugs (`hil mutants`)",
    "fault_relays": "the cell emulator can open sense wires and short cells and thermistors",
    "thermistors": "the cell emulator drives the BMS's thermistor inputs",
    "wire": "the boards sit behind a real transport (slcan pty, SocketCAN)",
    "hv_insulation": "the bench can inject an insulation fault on the high-voltage side",
    "insulation_tap": "the bench can connect its insulation fault at any cell tap of the stack, not at one point only",
    "contactor_weld": "the bench can hold either main contactor of the BMS closed (a weld)",
    "precharge_weld": "the bench can hold the BMS's precharge contactor closed (a weld)",
    "contactor_stuck_open": "the bench can hold either main contactor of the BMS open (it fails to close, or drops "
                            "out closed)",
    "dc_link_short": "the bench can short the DC link behind the BMS's contactors (a precharge that cannot finish)",
    "hvil": "the bench can open the BMS's high-voltage interlock loop (a relay in series: a connector unplugged)",
    "afe_link": "the bench can break the BMS's link to its cell-monitoring front end (a relay in its isoSPI daisy "
                "chain)",
    "current_sensor": "the cell emulator drives the BMS's current-sensor input (an emulated shunt), so the bench can "
                      "make it read other than what flows",
    "lv_supply": "a programmable supply ([power_supply]) feeds the BMS's low-voltage input (KL30)",
    "virtual_clock": "time is virtual (added by the rig itself on a virtual clock)",
}


class _PerCell:
    """The type of a [pack] value given for the whole pack (a number) or per series cell (a list of numbers);
    `_check_consistent` checks a list's length against n_series."""
    __name__ = "a number or a list of numbers (one per series cell)"


PER_CELL = _PerCell()

# section -> {key: (type, required, allowed values or None)}
SCHEMA = {
    "rig": {
        "name": (str, True, None), "description": (str, False, None),
        "clock": (str, True, ("real", "virtual")), "seed": (int, False, SEEDS),
        # The emulated firmware's main task runs every 10 ms: a longer step would skip its tasks.
        "dt_s": (float, False, Between(0.0, 0.01, low_open=True)),
        "setpoint_period_s": (float, False, Between(0.0, 1.0, low_open=True)),
        "overrun_policy": (str, False, OVERRUN_POLICIES), "wait": (str, False, WAITS),
        "realtime_priority": (int, False, range(100)), "capabilities": (list, False, None),
    },
    "pack": {
        # 10000 cells is the largest pack the model's benchmark steps in real time; the DBC may allow fewer.
        "cell": (str, True, None), "n_series": (int, True, range(1, 10001)), "n_parallel": (int, False, range(1, 101)),
        "soc0": (PER_CELL, False, Between(0.0, 1.0)),
        "ambient_c": (float, False, Between(TEMPERATURE_MIN_C, TEMPERATURE_MAX_C)),  # as `hil model simulate`'s
        # the seed of the production spread: one pack whatever [rig] seed (and --hil-repeat) gives the noise
        "seed": (int, False, SEEDS),
        "soc_spread": (float, False, None), "capacity_spread": (float, False, None),
        # a state of health for the whole pack, or one per series cell (an aged module among new ones)
        "resistance_spread": (float, False, None), "soh_capacity": (PER_CELL, False, None),
        "soh_resistance": (PER_CELL, False, None),
        # s between the thermal network's updates (1 s by default): temperatures move in steps this long, too
        # coarse for a test that judges how fast a cell heats (the model checks the value).
        "thermal_dt_s": (float, False, None),
    },
    "spec": {"file": (str, True, None)},
    "dut": {
        "kind": (str, True, ("emulated", "external")), "bus": (str, True, None),
        "bugs": (list, False, None), "calibration": (dict, False, None), "seed": (int, False, SEEDS),
        "map": (str, False, None),  # a DUT map (hil/devices/dut_map.py): a BMS with a DBC of its own
        "firmware": (str, False, None),  # the build the bench must hold ("1.2.0"): checked, and recorded
        # The BMS's debug UART (hil/serial/protocols/bms_debug.py), where the build is read when CAN does not say
        # it: a serial port or URL, or "auto" for the pty `hil emulate` serves.
        "debug_port": (str, False, None), "debug_baudrate": (int, False, range(50, 4_000_001)),
    },
    "cell_emulator": {
        "kind": (str, True, ("emulated", "can")), "bus": (str, True, None),
        "channels": (int, True, range(1, 10001)),
        "map": (str, False, None),  # a cell-emulator map (hil/devices/ce_map.py): an emulator with a DBC of its own
    },
    # The lab supply on the BMS's low-voltage input (hil/devices/power_supply.py): the emulated boards' own, or a
    # real SCPI supply on a serial port.
    "power_supply": {
        # "none": the BMS's supply is not the bench's to switch (a fixed one); tests that need it skip
        "kind": (str, True, ("emulated", "scpi", "none")), "port": (str, False, None),
        "baudrate": (int, False, range(50, 4_000_001)), "timeout_s": (float, False, Between(0.0, 60.0, low_open=True)),
        "nominal_v": (float, True, Between(0.0, 60.0, low_open=True)),   # 12 V or 24 V systems, 48 V ones
        "current_limit_a": (float, False, Between(0.0, 100.0, low_open=True)),
    },
    "emulate": {
        "process": (bool, False, None), "startup_timeout_s": (float, False, Between(0.0, 600.0, low_open=True)),
    },
}
CAN_REQUIRED = ("interface", "dbc")


@dataclass
class Rig:
    path: Path
    data: dict
    # The `--set KEY=VALUE` strings applied on load: `hil emulate` loads the same file with the same ones.
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.data["rig"]["name"]

    @property
    def clock(self) -> str:
        return self.data["rig"]["clock"]

    @property
    def wait(self) -> str:
        """How a real clock waits between ticks (hil.clock): "sleep" unless the rig says "busy"."""
        return self.data["rig"].get("wait", "sleep")

    @property
    def overrun_policy(self) -> str:
        """What a real-clock loop does with a tick that starts more than a step late (hil.loop)."""
        return self.data["rig"].get("overrun_policy", "catch-up")

    @property
    def realtime_priority(self) -> int:
        """The loop thread's SCHED_FIFO priority; 0 is the OS's normal scheduling."""
        return self.data["rig"].get("realtime_priority", 0)

    def make_clock(self):
        """The clock `[rig]` describes: `clock`, and for a real one its `wait` and `realtime_priority`. A
        priority this user may not use is a ConfigError naming this file, raised here."""
        return make_clock(self.clock, wait=self.wait, priority=self.realtime_priority, where=f"{self.path} [rig]")

    def make_pack(self):
        """The model of `[pack]`: its cell file, size, starting state and variation. A value the model refuses
        is a ConfigError naming this file's [pack]."""
        from hil.model.cell import load_cell
        from hil.model.pack import Pack
        pack = self.data["pack"]
        options = {key: _column(pack[key]) for key in PACK_OPTIONS if key in pack}
        try:
            return Pack(load_cell(self.resolve(pack["cell"])), pack["n_series"], soc0=_column(pack.get("soc0", 0.5)),
                        ambient_c=pack.get("ambient_c", 25.0), seed=self.seed, pack_seed=pack.get("seed"),
                        **options)
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(f"{self.path} [pack]: {text.removeprefix('pack: ')}") from None

    @property
    def clock_description(self) -> str:
        """The clock as a report states it: "virtual", or "real" with how its loop waits and is scheduled."""
        if self.clock != "real":
            return self.clock
        priority = self.realtime_priority
        scheduling = f"SCHED_FIFO priority {priority}" if priority else "normal scheduling"
        return f"real (wait {self.wait}, {scheduling})"

    @property
    def expected_firmware(self) -> str | None:
        """The build the rig says its BMS runs (`[dut] firmware`), which each bench checks; None: any."""
        return self.data["dut"].get("firmware")

    @property
    def debug_port(self) -> str | None:
        """The BMS's debug UART (`[dut] debug_port`): a port, "auto" (the emulated boards' pty), or None."""
        return self.data["dut"].get("debug_port")

    @property
    def seed(self) -> int:
        return self.data["rig"].get("seed", 0)

    @property
    def dt_s(self) -> float:
        return float(self.data["rig"].get("dt_s", 0.001))

    @property
    def setpoint_period_s(self) -> float:
        return float(self.data["rig"].get("setpoint_period_s", 0.01))

    @property
    def capabilities(self) -> set[str]:
        """Declared capabilities, plus "virtual_clock" on a virtual clock (hour-long tests need it)."""
        declared = set(self.data["rig"].get("capabilities", []))
        if self.data.get("power_supply", {}).get("kind") == "none":
            declared.discard("lv_supply")   # the supply is there, but not the bench's to switch
        return declared | {"virtual_clock"} if self.clock == "virtual" else declared

    @property
    def buses(self) -> dict[str, dict]:
        return self.data.get("can", {})

    @property
    def emulate_in_process(self) -> bool:
        """True when the emulated boards run in this process (sim rig); False when `hil emulate` runs them."""
        return self.data["dut"]["kind"] == "emulated" and not self.data.get("emulate", {}).get("process", False)

    @property
    def startup_timeout_s(self) -> float:
        return float(self.data.get("emulate", {}).get("startup_timeout_s", 20.0))

    @property
    def spec_path(self) -> Path:
        return self.resolve(self.data["spec"]["file"])

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    def load_dut_map(self, db):
        """The rig's DUT map (`[dut] map`) checked against `db`, the DUT bus's DBC files; None without one."""
        if "map" not in self.data["dut"]:
            return None
        from hil.devices.dut_map import load_dut_map
        return load_dut_map(self.resolve(self.data["dut"]["map"]), db)

    def load_ce_map(self, db):
        """The rig's cell-emulator map (`[cell_emulator] map`) checked against `db`, its bus's DBC files, for its
        channels; None without one."""
        table = self.data["cell_emulator"]
        if "map" not in table:
            return None
        from hil.devices.ce_map import load_ce_map
        return load_ce_map(self.resolve(table["map"]), db, table["channels"])

    def dbc_paths(self, bus: str) -> list[Path]:
        return [self.resolve(p) for p in self.buses[bus]["dbc"]]

    def can_kwargs(self, bus: str) -> dict:
        """python-can keyword arguments for `can.Bus(**kwargs)`: the bus table less our own keys."""
        return {k: v for k, v in self.buses[bus].items() if k != "dbc"}


def _column(value):
    """A [pack] value as the model takes it: a list has one value per series cell, the same for each cell of a
    parallel block (a column); a number is the whole pack's."""
    return [[v] for v in value] if isinstance(value, list) else value


def _type_ok(value, expected) -> bool:
    if expected is PER_CELL:
        values = value if isinstance(value, list) else [value]
        return bool(values) and all(_type_ok(v, float) for v in values)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _unknown(where: str, key: str, known) -> ConfigError:
    return ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, known, n=2)}; expected one of {sorted(known)}")


def _non_finite(table: dict, prefix: str = ""):
    """The dotted key of the first NaN or infinity anywhere in `table` (TOML writes them `nan`, `inf`), or
    None. No setting means either, and NaN != NaN would break comparisons far from here."""
    for key, value in table.items():
        if isinstance(value, dict):
            found = _non_finite(value, f"{prefix}{key}.")
            if found:
                return found
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{prefix}{key}"
        elif isinstance(value, list) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
            return f"{prefix}{key}"
    return None


def _check_consistent(data: dict, where: str) -> None:
    """What single keys cannot say: one channel per series block, one SOC per series cell, setpoints on whole
    steps, capabilities."""
    n_series, channels = data["pack"]["n_series"], data["cell_emulator"]["channels"]
    if channels != n_series:
        raise ConfigError(f"{where}: key 'cell_emulator.channels' = {channels}, expected pack.n_series = {n_series} "
                          "(one cell-emulator channel per series block)")
    for key in ("soc0", "soh_capacity", "soh_resistance"):
        values = data["pack"].get(key)
        if isinstance(values, list) and len(values) != n_series:
            raise ConfigError(f"{where}: key 'pack.{key}' has {len(values)} values, expected one number or "
                              f"pack.n_series = {n_series} (one per series cell)")
    dut = data["dut"]
    if dut.get("debug_port") == "auto" and not (dut["kind"] == "emulated" and data.get("emulate", {}).get("process")):
        raise ConfigError(f"{where}: key 'dut.debug_port' = \"auto\" is the debug UART's pty that `hil emulate` "
                          "serves, but this rig's boards do not run in their own process ([emulate] process = true); "
                          "give the BMS's serial port (e.g. \"/dev/ttyUSB1\"), or drop the key")
    rig = data["rig"]
    dt_s, period_s = rig.get("dt_s", 0.001), rig.get("setpoint_period_s", 0.01)
    steps = period_s / dt_s
    if steps < 1 - 1e-9 or abs(steps - round(steps)) > 1e-6:
        raise ConfigError(f"{where}: key 'rig.setpoint_period_s' = {period_s:g}, expected a whole number of "
                          f"steps of rig.dt_s = {dt_s:g} s (e.g. {max(1, round(steps)) * dt_s:g})")
    supply = data.get("power_supply")
    if "lv_supply" in rig.get("capabilities", []) and supply is None:
        raise ConfigError(f"{where}: key 'rig.capabilities' holds 'lv_supply' but the rig has no [power_supply] table; "
                          "add one (kind = \"emulated\" or \"scpi\", nominal_v) or drop the capability")
    if supply is not None:
        if supply["kind"] == "scpi" and "port" not in supply:
            raise ConfigError(f"{where}: [power_supply] kind = \"scpi\" needs key 'power_supply.port', the supply's "
                              "serial port (e.g. \"/dev/ttyUSB0\" or \"socket://10.0.0.5:5025\")")
        if supply["kind"] == "emulated" and data["dut"]["kind"] != "emulated":
            raise ConfigError(f"{where}: [power_supply] kind = \"emulated\" feeds the emulated BMS, but dut.kind = "
                              f"{data['dut']['kind']!r}; a real BMS needs a real supply: kind = \"scpi\" and its port, "
                              "or kind = \"none\" where the bench does not switch it")
    for name in rig.get("capabilities", []):
        if not isinstance(name, str):
            raise ConfigError(f"{where}: key 'rig.capabilities' holds {name!r}, expected names (strings)")
        hint = did_you_mean(name, KNOWN_CAPABILITIES, cutoff=0.8)
        if name not in KNOWN_CAPABILITIES and hint:
            raise ConfigError(f"{where}: key 'rig.capabilities' holds {name!r}{hint}; a misspelt capability "
                              f"skips the tests that require it. Known: {sorted(KNOWN_CAPABILITIES)}")


def validate(data: dict, path: Path) -> None:
    where = str(path)
    bad = _non_finite(data)
    if bad:
        raise ConfigError(f"{where}: key '{bad}' is not a finite number; expected a number")
    for section in data:
        if section not in SCHEMA and section != "can":
            raise _unknown(where, section, list(SCHEMA) + ["can"])
    for section, keys in SCHEMA.items():
        table = data.get(section)
        if table is None:
            if section in ("rig", "pack", "dut", "cell_emulator", "spec"):
                raise ConfigError(f"{where}: missing table [{section}]")
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: '{section}' must be a table [{section}]")
        for key, value in table.items():
            if key not in keys:
                raise _unknown(f"{where} [{section}]", key, keys)
            expected, _, allowed = keys[key]
            if not _type_ok(value, expected):
                raise ConfigError(f"{where}: key '{section}.{key}' = {value!r}, expected {expected.__name__}")
            values = value if expected is PER_CELL and isinstance(value, list) else [value]
            if allowed is None or all(v in allowed for v in values):
                continue
            if isinstance(allowed, range):
                raise ConfigError(f"{where}: key '{section}.{key}' = {value!r}, expected an integer from "
                                  f"{allowed.start} to {allowed.stop - 1}")
            if isinstance(allowed, Between):
                raise ConfigError(f"{where}: key '{section}.{key}' = {value!r}, expected {allowed}")
            raise ConfigError(f"{where}: key '{section}.{key}' = {value!r}, expected one of {list(allowed)}")
        for key, (_, required, _) in keys.items():
            if required and key not in table:
                raise ConfigError(f"{where}: missing key '{section}.{key}'")
    buses = data.get("can")
    if not isinstance(buses, dict) or not buses:
        raise ConfigError(f"{where}: missing table [can.<name>] (at least one CAN bus)")
    for bus, table in buses.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: 'can.{bus}' must be a table [can.{bus}]")
        for key in CAN_REQUIRED:
            if key not in table:
                raise ConfigError(f"{where}: missing key 'can.{bus}.{key}'")
        interface = table["interface"]
        if interface not in can.interfaces.VALID_INTERFACES:
            hint = did_you_mean(interface, can.interfaces.VALID_INTERFACES, n=2)
            raise ConfigError(f"{where}: key 'can.{bus}.interface' = {interface!r} is not a python-can "
                              f"interface{hint}; expected one of {sorted(can.interfaces.VALID_INTERFACES)}")
        if not isinstance(table["dbc"], list) or not all(isinstance(p, str) for p in table["dbc"]):
            raise ConfigError(f"{where}: key 'can.{bus}.dbc' expected a list of DBC file paths")
    for section in ("dut", "cell_emulator"):
        if data[section]["bus"] not in buses:
            raise ConfigError(f"{where}: key '{section}.bus' = {data[section]['bus']!r}, expected one of the "
                              f"buses {sorted(buses)}")
    _check_consistent(data, where)


def parse_set(assignment: str) -> tuple[list[str], object]:
    """`dut.calibration.cell_ov_v=4.3` -> (["dut", "calibration", "cell_ov_v"], 4.3). Values are TOML."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. dut.calibration.cell_ov_v=4.3")
    key, _, text = assignment.partition("=")
    if not all(part.strip() for part in key.split(".")):
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key before '=', "
                          "e.g. dut.calibration.cell_ov_v=4.3")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word is a string: --set rig.clock=real
    return key.strip().split("."), value


def load_rig(path: str | Path | None = None, overrides=()) -> Rig:
    """Load, override (`--set KEY=VALUE` strings) and validate a rig file."""
    path = Path(path) if path is not None else DEFAULT_RIG
    if not path.is_file():
        raise ConfigError(f"{path}: rig file not found (rigs in {PROJECT_ROOT / 'rigs'}: "
                          f"{', '.join(sorted(p.name for p in (PROJECT_ROOT / 'rigs').glob('*.toml')))})")
    data = read_toml(path, "rig")
    for assignment in overrides:
        keys, value = parse_set(assignment)
        table = data
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {assignment}: '{key}' is not a table in {path}")
        table[keys[-1]] = value
    validate(data, path)
    return Rig(path.resolve(), data, tuple(overrides))


def _check_setpoints_fit(rig: Rig, db) -> None:
    """The cell emulator's DBC must have a setpoint signal for every channel, or the frames cannot be built."""
    from hil.devices.cell_emulator import setpoint_names
    signals = {signal.name for message in db.messages for signal in message.signals}
    channels = rig.data["cell_emulator"]["channels"]
    for kind in ("Cell", "Temp"):
        names = setpoint_names(kind, channels)
        missing = [name for name in names if name not in signals]
        if missing:
            fits = names.index(missing[0])
            raise ConfigError(f"{rig.path}: key 'cell_emulator.channels' = {channels}, but the bus's DBC files "
                              f"({', '.join(p.name for p in rig.dbc_paths(rig.data['cell_emulator']['bus']))}) "
                              f"have {kind} setpoints for {fits} channel(s): no {missing[0]}")


def _check_spec_messages(spec, db) -> None:
    """The messages a spec times must be the DUT's: a misspelt or another BMS's name would time nothing."""
    names = [message.name for message in db.messages]
    for name in spec.data["cycle_times"]:
        if name not in names:
            raise ConfigError(f"{spec.path} [cycle_times]: message '{name}' is not in the DUT bus's DBC files"
                              f"{did_you_mean(name, names)}; expected the BMS's periodic messages")


def preflight(rig: Rig) -> None:
    """Load every file the rig names (DBCs, cell, spec), check the emulated firmware's calibration and bugs,
    and make its clock, so a bad file, a misspelt key or a real-time priority this user may not use fails
    once, before any board starts, instead of in every test."""
    from hil.can.dbc import load_dbcs
    from hil.spec import load_spec
    for bus in rig.buses:
        db = load_dbcs(rig.dbc_paths(bus))
        if bus == rig.data["cell_emulator"]["bus"]:
            ce_map = rig.load_ce_map(db)
            if ce_map is None:
                _check_setpoints_fit(rig, db)
            else:
                from hil.devices.ce_map import check_capabilities
                check_capabilities(ce_map, rig.data["rig"].get("capabilities", []), f"{rig.path} [rig]")
        if bus == rig.data["dut"]["bus"]:
            dut_db = db
            if (dut_map := rig.load_dut_map(db)) is not None:
                dut_map.check_cells(rig.data["pack"]["n_series"], db)   # the map alone cannot know the count
    rig.make_pack()
    spec = load_spec(rig.spec_path)
    _check_spec_messages(spec, dut_db)
    if rig.data["dut"]["kind"] == "emulated":  # the emulated firmware's settings, checked once, here
        from hil.sim.bms_firmware import check_bugs
        from hil.sim.calibration import calibration_from
        calibration_from(rig.data["dut"].get("calibration", {}), f"{rig.path} [dut.calibration]")
        check_bugs(rig.data["dut"].get("bugs", []), f"{rig.path} [dut] bugs")
    rig.make_clock()
