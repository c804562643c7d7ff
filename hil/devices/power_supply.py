"""The lab supply on the BMS's low-voltage input (KL30), as the harness drives it: SCPI over serial.

A rig's `[power_supply]` says which: `kind = "emulated"` is the emulated boards' own supply
(`hil.sim.lab_supply`: in-process on the sim rig, a pty of `hil emulate` on the others), `kind = "scpi"` a
real one on `port`. Either way the same SCPI goes out, and each setting is checked against the
instrument's error queue.

Voltage steps shorter than a serial round trip (a crank's dip is 15-50 ms) are played as the supply's own
voltage list (`play`), timed by the supply; the harness runs its loop meanwhile.
"""
from __future__ import annotations

from collections.abc import Sequence

from hil.errors import ConfigError
from hil.serial.scpi import LoopbackScpi, ScpiPort, checked

# A measured output within this of its setting confirms it (lab supplies read back to ~0.1 %, plus the
# emulated one's 4 decimals).
READBACK_TOLERANCE_V = 0.05


class PowerSupply:
    def __init__(self, port: ScpiPort | LoopbackScpi, nominal_v: float, current_limit_a: float):
        self.port = port
        self.nominal_v = nominal_v
        self.current_limit_a = current_limit_a
        self.where = port.where
        self.identity = port.query("*IDN?")
        self.note = lambda text: None   # the bench points this at its trace's events

    def set_voltage(self, voltage_v: float) -> None:
        """Stop any list and hold `voltage_v`."""
        checked(self.port, "ABOR", "VOLT:MODE FIX", f"VOLT {voltage_v:.4f}")
        self.note(f"LV supply {voltage_v:g} V")

    def output(self, on: bool) -> None:
        checked(self.port, f"OUTP {'ON' if on else 'OFF'}")
        self.note(f"LV supply output {'on' if on else 'off'}")

    def setting_v(self) -> float:
        return self._number("VOLT?")

    def output_on(self) -> bool:
        answer = self.port.query("OUTP?")
        if answer not in ("0", "1", "ON", "OFF"):
            raise ConfigError(f"{self.where} on {self.port.url}: OUTP? answered {answer!r}, expected 1 or 0")
        return answer in ("1", "ON")

    def measure_voltage_v(self) -> float:
        return self._number("MEAS:VOLT?")

    def measure_current_a(self) -> float:
        return self._number("MEAS:CURR?")

    def play(self, steps: Sequence[tuple[float, float]]) -> float:
        """Start the voltage list `steps`, (volts, seconds held) each, after which the output returns to its
        voltage setting. Returns the list's duration in seconds: run the bench that long to play it out."""
        if not steps:
            raise ConfigError(f"{self.where}: an empty voltage list; give (volts, seconds) steps")
        volts = ",".join(f"{v:.4f}" for v, _ in steps)
        dwells = ",".join(f"{s:.4f}" for _, s in steps)
        checked(self.port, f"LIST:VOLT {volts}", f"LIST:DWEL {dwells}", "VOLT:MODE LIST", "INIT")
        self.note("LV supply list " + ", ".join(f"{v:g} V {s * 1000:g} ms" for v, s in steps))
        return sum(s for _, s in steps)

    def restore(self) -> float:
        """The supply's part of the safe state: any list stopped, nominal voltage and current limit, output on
        (the BMS needs its supply to open its contactors on request and report them open). Returns the
        voltage measured at the output afterwards."""
        checked(self.port, "ABOR", "VOLT:MODE FIX", f"VOLT {self.nominal_v:.4f}", f"CURR {self.current_limit_a:.4f}",
                "OUTP ON")
        self.note(f"LV supply restored: {self.nominal_v:g} V, output on")
        return self.measure_voltage_v()

    def close(self) -> None:
        self.port.close()

    def _number(self, query: str) -> float:
        answer = self.port.query(query)
        try:
            return float(answer)
        except ValueError:
            raise ConfigError(f"{self.where} on {self.port.url}: {query} answered {answer!r}, expected a number; "
                              "is this a SCPI power supply?") from None


def open_power_supply(rig, *, emulated_answer=None, now_s=None, emulated_port: str | None = None) -> PowerSupply | None:
    """The rig's supply, or None without `[power_supply]` (or with kind "none"). An emulated one is reached
    in-process through `emulated_answer` (with the bench clock `now_s`), or through `emulated_port`, the pty
    `hil emulate` serves."""
    table = rig.data.get("power_supply")
    if table is None or table["kind"] == "none":
        return None
    where = f"{rig.path} [power_supply]"
    if table["kind"] == "scpi":
        port = scpi_port(table, where)
    elif emulated_answer is not None:
        port = LoopbackScpi(emulated_answer, now_s, where)
    else:
        port = scpi_port(table, where, emulated_port)
    # a run starts from a known supply, whatever the last one left
    return connect(port, table, restore=True)


def scpi_port(table: dict, where: str, url: str | None = None) -> ScpiPort:
    """The serial port of a `[power_supply]` table: its `port`, or `url` instead."""
    return ScpiPort(url or table["port"], where=where, baudrate=table.get("baudrate", 9600),
                    timeout_s=table.get("timeout_s", 1.0))


def connect(port: ScpiPort | LoopbackScpi, table: dict, *, restore: bool = False) -> PowerSupply:
    """The driver on `port` with the table's nominal voltage and current limit (`restore`: set them now). The
    port is closed if the supply does not answer."""
    try:
        supply = PowerSupply(port, table.get("nominal_v", 12.0), table.get("current_limit_a", 2.0))
        if restore:
            supply.restore()
    except BaseException:
        port.close()
        raise
    return supply
