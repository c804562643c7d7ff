"""The BMS under test, as the harness sees it: decoded CAN status in, host requests out.

Works the same for the emulated firmware and for a real board with the same DBC. Waits run the bench
loop (see `hil.loop.Loop.run_until`), so they work on both clocks.
"""
from __future__ import annotations

import numpy as np

from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.protocol import BmsState, ModeRequest, fault_names


class Bms:
    def __init__(self, monitor: Monitor, sender: PeriodicSender, loop):
        self.monitor = monitor
        self.sender = sender
        self.loop = loop
        self._mask_bits = 0
        self._mask = np.zeros(0, dtype=bool)
        sender.add("VCU_Heartbeat")
        sender.add("VCU_Request", {"VCU_ModeRequest": int(ModeRequest.STANDBY), "VCU_ClearFaults": 0})

    # What the BMS reports ------------------------------------------------------------------------------
    @property
    def state(self) -> BmsState | None:
        value = self.monitor.values.get("BMS_State")
        return None if value is None else BmsState(value)

    @property
    def contactors_closed(self) -> bool:
        v = self.monitor.values
        return bool(v.get("BMS_ContactorPos") and v.get("BMS_ContactorNeg"))

    @property
    def faults(self) -> list[str]:
        return fault_names(int(self.monitor.values.get("BMS_FaultBits", 0)))

    @property
    def warnings(self) -> list[str]:
        return fault_names(int(self.monitor.values.get("BMS_WarningBits", 0)))

    @property
    def soc(self) -> float | None:
        value = self.monitor.values.get("BMS_SOC")
        return None if value is None else value / 100.0

    @property
    def discharge_limit_a(self) -> float | None:
        return self.monitor.values.get("BMS_DischargeCurrentLimit")

    @property
    def charge_limit_a(self) -> float | None:
        return self.monitor.values.get("BMS_ChargeCurrentLimit")

    def balancing_mask(self, n_cells: int) -> np.ndarray:
        """Which cells the BMS reports bleeding (BMS_BalancingMask), as a bool array."""
        v = self.monitor.values
        bits = int(v.get("BMS_Balancing_Cells01to48", 0)) | int(v.get("BMS_Balancing_Cells49to96", 0)) << 48
        if bits != self._mask_bits or self._mask.size != n_cells:
            self._mask_bits = bits
            self._mask = np.array([bool(bits >> i & 1) for i in range(n_cells)])
        return self._mask

    def describe(self) -> str:
        state = self.state.name if self.state is not None else "no BMS_Status received"
        return (f"state={state} contactors_closed={self.contactors_closed} faults={self.faults} "
                f"warnings={self.warnings} soc={'none' if self.soc is None else f'{self.soc:.4f}'}")

    # What the host asks --------------------------------------------------------------------------------
    def request(self, mode: str | ModeRequest) -> None:
        mode = ModeRequest[mode.upper()] if isinstance(mode, str) else mode
        self.sender.set("VCU_Request", VCU_ModeRequest=int(mode))

    def clear_faults(self, timeout_s: float = 1.0) -> None:
        """Send one request with ClearFaults set, as a host would, and wait until it has gone out."""
        self.sender.pulse("VCU_Request", timeout_s, self.loop, VCU_ClearFaults=1)

    def heartbeat(self, on: bool) -> None:
        """Start or stop the host heartbeat (and request frames), to test the BMS's timeout reaction."""
        for name in ("VCU_Heartbeat", "VCU_Request"):
            if on:
                self.sender.start(name, self.loop.t_s)
            else:
                self.sender.stop(name)

    # Waits ------------------------------------------------------------------------------------------
    def wait_state(self, state: str | BmsState, timeout_s: float) -> float:
        """Run the bench until the BMS reports `state`; return the bench time it did."""
        target = BmsState[state.upper()] if isinstance(state, str) else state
        return self.loop.run_until(lambda: self.state == target, timeout_s,
                                   lambda: f"waiting for BMS state {target.name}; {self.describe()}")

    def wait_contactors_open(self, timeout_s: float) -> float:
        return self.loop.run_until(lambda: not self.contactors_closed and self.state is not None, timeout_s,
                                   lambda: f"waiting for contactors to open; {self.describe()}")
