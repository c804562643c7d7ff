"""The emulated lab power supply feeding the BMS's low-voltage input (KL30): one output, spoken to in SCPI.

A BMS is an ECU on the vehicle's 12 V (or 24 V) system. Its supply sags when an engine cranks and vanishes
when the 12 V battery is disconnected, and the BMS must ride through the one and keep its state (SOC in
NVM) across the other. A HIL bench feeds it from a programmable lab supply; this is that supply.

It answers the SCPI subset that lab supplies share (Keysight E36xx and N67xx, R&S NGx, Rigol DP800 and
others), one command per line ("\\n"), several per line with ";", long or short forms in any case:
- `*IDN?`, `*RST`, `*CLS`, `*OPC?`, `SYST:ERR?` (the error queue: `-113,"Undefined header"`, `0,"No error"`);
- `[SOUR:]VOLT <V>|MIN|MAX` and `VOLT?`, `[SOUR:]CURR <A>` and `CURR?` (the current limit);
- `OUTP ON|OFF|1|0` and `OUTP?`; `MEAS:VOLT?` and `MEAS:CURR?`;
- a voltage list, as Keysight's LIST subsystem has it: `LIST:VOLT v1,v2,...` and `LIST:DWEL s1,s2,...` (each
  point held for its dwell), `VOLT:MODE LIST|FIX`, `INIT` (starts it), `ABOR` (stops it). Once the last
  point has held for its dwell the output returns to the `VOLT` setting. A step shorter than a serial
  round trip (a crank's 15-50 ms dip) can only be played this way, timed by the supply itself.

Limits, stated plainly: no constant-current mode (the load, the BMS's own draw, stays far below any limit
a bench sets); the output follows a setting at once (no slew, no overshoot); `MEAS:CURR?` reads what the
host board says the BMS draws.
"""
from __future__ import annotations

import math

IDN = "hil,Emulated lab supply,0,1.0"
MAX_V = 30.0            # a common 0-30 V bench supply
MAX_A = 5.0
MAX_LIST_POINTS = 512   # Keysight N6700's list length
MIN_DWELL_S = 0.001     # the boards' tick: a shorter point would never be output
MAX_DWELL_S = 3600.0
ERROR_QUEUE = 16        # SCPI's queue keeps the oldest errors and reports the overflow (-350) last

# SCPI keyword forms: each long form and its short form, both accepted (IEEE 488.2 / SCPI-99 7.1).
_LONG = {"VOLTAGE": "VOLT", "CURRENT": "CURR", "OUTPUT": "OUTP", "MEASURE": "MEAS", "SOURCE": "SOUR",
         "SYSTEM": "SYST", "ERROR": "ERR", "DWELL": "DWEL", "INITIATE": "INIT", "ABORT": "ABOR",
         "STATE": "STAT", "IMMEDIATE": "IMM", "LEVEL": "LEV", "AMPLITUDE": "AMPL", "LIST": "LIST",
         "MODE": "MODE", "NEXT": "NEXT", "SCALAR": "SCAL"}
_SHORT = set(_LONG.values()) | {"DC"}
# Optional nodes SCPI lets a command leave out: [SOUR:]VOLT[:LEV][:IMM][:AMPL], OUTP[:STAT], MEAS[:SCAL]:VOLT[:DC]?
_OPTIONAL = {"SOUR", "LEV", "IMM", "AMPL", "STAT", "SCAL", "DC"}
_ON = {"ON": True, "1": True, "OFF": False, "0": False}


class ScpiError(Exception):
    """A command refused: a SCPI error code and its standard text."""

    def __init__(self, code: int, text: str, detail: str = ""):
        super().__init__(f'{code},"{text}{"; " + detail if detail else ""}"')
        self.code = code


class LabSupply:
    """`answer(line, now_s)` for a line-based serial port (`hil.sim.serial_device.SerialDevice`), and
    `output_v(now_s)`, the voltage at its terminals, for the board it feeds."""

    def __init__(self, nominal_v: float = 12.0, current_limit_a: float = 2.0):
        self.nominal_v = nominal_v
        self.current_limit_a = current_limit_a
        self.load_a = lambda: 0.0    # what the board it feeds draws now, A: that board's host sets it
        self._reset()

    def _reset(self) -> None:
        """The state a supply powers up in, with its output on at the bench's nominal voltage: the BMS is
        powered from the start of a run, as a vehicle's ECUs are."""
        self.voltage_v = self.nominal_v
        self.limit_a = self.current_limit_a
        self.output_on = True
        self.list_v: list[float] = []
        self.list_dwell_s: list[float] = []
        self.list_mode = False
        self._list_start_s: float | None = None
        self._list_ends_s: list[float] = []
        self.errors: list[str] = []

    # What the supply outputs ------------------------------------------------------------------------------
    def output_v(self, now_s: float) -> float:
        if not self.output_on:
            return 0.0
        if self._list_start_s is not None:
            elapsed_s = now_s - self._list_start_s
            for end_s, point_v in zip(self._list_ends_s, self.list_v):
                if elapsed_s < end_s - 1e-9:
                    return point_v
            self._list_start_s = None   # the list has run out: back to the VOLT setting
        return self.voltage_v

    def list_running(self, now_s: float) -> bool:
        self.output_v(now_s)
        return self._list_start_s is not None

    # SCPI ----------------------------------------------------------------------------------------------------
    def answer(self, line: bytes, now_s: float) -> bytes | None:
        """One line from the host: its answers (queries), joined with ";" as SCPI does, or None."""
        replies = []
        for command in line.decode("ascii", "replace").strip().split(";"):
            if not command.strip():
                continue
            try:
                reply = self._command(command.strip(), now_s)
            except ScpiError as error:
                if len(self.errors) < ERROR_QUEUE:
                    self.errors.append(str(error))
                else:
                    self.errors[-1] = '-350,"Queue overflow"'
                continue
            if reply is not None:
                replies.append(reply)
        return (";".join(replies) + "\n").encode() if replies else None

    def _command(self, command: str, now_s: float) -> str | None:
        header, _, argument = command.partition(" ")
        header, argument = _canonical(header), argument.strip()
        query = header.endswith("?")
        if header in _QUERIES:
            if argument:
                raise ScpiError(-108, "Parameter not allowed", command)
            return _QUERIES[header](self, now_s)
        if query or header not in _SETTINGS:
            raise ScpiError(-113, "Undefined header", command)
        _SETTINGS[header](self, argument, now_s)
        return None

    def _error(self, _now_s: float) -> str:
        return self.errors.pop(0) if self.errors else '0,"No error"'

    def _set_voltage(self, argument: str, _now_s: float) -> None:
        self.voltage_v = _number(argument, 0.0, MAX_V, "V")

    def _set_current(self, argument: str, _now_s: float) -> None:
        self.limit_a = _number(argument, 0.0, MAX_A, "A")

    def _set_output(self, argument: str, _now_s: float) -> None:
        state = _ON.get(argument.upper())
        if state is None:
            raise ScpiError(-224 if argument else -109, "Illegal parameter value" if argument else
                            "Missing parameter", f"OUTP takes ON, OFF, 1 or 0, got {argument!r}")
        self.output_on = state
        if not state:
            self._list_start_s = None   # a list is aborted with the output, as on a real supply

    def _set_list(self, argument: str, low: float, high: float, unit: str) -> list[float]:
        values = [_number(part, low, high, unit) for part in argument.split(",")]
        if len(values) > MAX_LIST_POINTS:
            raise ScpiError(-223, "Too much data", f"{len(values)} points, at most {MAX_LIST_POINTS}")
        self._list_start_s = None
        return values

    def _set_list_voltage(self, argument: str, _now_s: float) -> None:
        self.list_v = self._set_list(argument, 0.0, MAX_V, "V")

    def _set_list_dwell(self, argument: str, _now_s: float) -> None:
        self.list_dwell_s = self._set_list(argument, MIN_DWELL_S, MAX_DWELL_S, "s")

    def _set_mode(self, argument: str, _now_s: float) -> None:
        mode = _canonical(argument)
        if mode not in ("LIST", "FIX", "FIXED"):
            raise ScpiError(-224, "Illegal parameter value", f"VOLT:MODE takes FIX or LIST, got {argument!r}")
        self.list_mode = mode == "LIST"
        if not self.list_mode:
            self._list_start_s = None

    def _initiate(self, argument: str, now_s: float) -> None:
        if not self.list_mode:
            raise ScpiError(-221, "Settings conflict", "INIT needs VOLT:MODE LIST")
        if not self.list_v or len(self.list_v) != len(self.list_dwell_s):
            raise ScpiError(-221, "Settings conflict", f"LIST:VOLT has {len(self.list_v)} points and LIST:DWEL "
                            f"{len(self.list_dwell_s)}; give both, the same number")
        self._list_ends_s = [sum(self.list_dwell_s[:i + 1]) for i in range(len(self.list_dwell_s))]
        self._list_start_s = now_s

    def _abort(self, _argument: str, _now_s: float) -> None:
        self._list_start_s = None

    def _rst(self, _argument: str, _now_s: float) -> None:
        self._reset()

    def _cls(self, _argument: str, _now_s: float) -> None:
        self.errors.clear()


def _canonical(header: str) -> str:
    """A header in its short forms, optional nodes dropped: 'SOURce:VOLTage:LEVel:IMMediate' -> 'VOLT'.
    An unknown keyword is kept as written, upper case, so the error shows it."""
    query = header.endswith("?")
    nodes = []
    for node in header.rstrip("?").lstrip(":").upper().split(":"):
        if node.startswith("*"):
            nodes.append(node)
            continue
        node = node.rstrip("1") if node[:-1] in _SHORT or node[:-1] in _LONG else node  # channel suffix 1
        node = _LONG.get(node, node)
        if node in _OPTIONAL and nodes != [] or node == "SOUR" and not nodes:
            continue
        nodes.append(node)
    return ":".join(nodes) + ("?" if query else "")


def _number(text: str, low: float, high: float, unit: str) -> float:
    word = text.strip().upper()
    if word in ("MIN", "MINIMUM"):
        return low
    if word in ("MAX", "MAXIMUM"):
        return high
    if word.endswith(unit.upper()):
        word = word[:-len(unit)].strip()
    if not word:
        raise ScpiError(-109, "Missing parameter")
    try:
        value = float(word)
    except ValueError:
        raise ScpiError(-104, "Data type error", f"expected a number in {unit}, got {text.strip()!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ScpiError(-222, "Data out of range", f"{text.strip()} {unit}, expected {low:g} to {high:g} {unit}")
    return value


_QUERIES = {
    "*IDN?": lambda s, now_s: IDN,
    "*OPC?": lambda s, now_s: "1",
    "SYST:ERR?": LabSupply._error,
    "VOLT?": lambda s, now_s: f"{s.voltage_v:.4f}",
    "CURR?": lambda s, now_s: f"{s.limit_a:.4f}",
    "OUTP?": lambda s, now_s: "1" if s.output_on else "0",
    "MEAS:VOLT?": lambda s, now_s: f"{s.output_v(now_s):.4f}",
    "MEAS:CURR?": lambda s, now_s: f"{s.load_a() if s.output_v(now_s) > 0 else 0.0:.4f}",
    "VOLT:MODE?": lambda s, now_s: "LIST" if s.list_mode else "FIX",
    "LIST:VOLT?": lambda s, now_s: ",".join(f"{v:.4f}" for v in s.list_v),
    "LIST:DWEL?": lambda s, now_s: ",".join(f"{d:.4f}" for d in s.list_dwell_s),
}
_SETTINGS = {
    "VOLT": LabSupply._set_voltage, "CURR": LabSupply._set_current, "OUTP": LabSupply._set_output,
    "LIST:VOLT": LabSupply._set_list_voltage, "LIST:DWEL": LabSupply._set_list_dwell,
    "VOLT:MODE": LabSupply._set_mode, "INIT": LabSupply._initiate, "ABOR": LabSupply._abort,
    "*RST": LabSupply._rst, "*CLS": LabSupply._cls,
}
