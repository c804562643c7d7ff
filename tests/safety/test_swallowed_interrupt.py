"""A Ctrl-C that lands where Python can only print it (a `__del__`, a garbage-collector callback) still stops
the run: it is kept, and the loop raises it at the end of its next tick."""
import os
import signal
import time

import pytest

from hil.clock import VirtualClock
from hil.loop import Loop
from hil.safety import TickGuard, sigterm_interrupts


class _InterruptedWhileCollected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside __del__, where its KeyboardInterrupt can only be printed


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_in_a_finaliser_is_raised_by_the_loop():
    ticks = []
    loop = Loop(VirtualClock(), 0.001, ticks.append)
    try:
        with sigterm_interrupts():
            _InterruptedWhileCollected()  # no reference kept: collected, and interrupted, at once
            assert TickGuard.pending == signal.SIGINT
            with pytest.raises(KeyboardInterrupt, match="SIGINT received"):
                loop.step()
    finally:
        TickGuard.pending = None
    assert ticks == [0.0]  # the tick ran whole, then the interrupt came
