"""A signal during a tick waits for the tick's end, so it never lands inside a frame send or a held lock."""
import os
import signal

import pytest

from hil.clock import VirtualClock
from hil.loop import Loop
from hil.safety import TickGuard, sigterm_interrupts


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_tick_is_raised_when_the_tick_ends(signum):
    finished = []

    def tick(t_s):
        os.kill(os.getpid(), signum)
        finished.append(t_s)  # the rest of the tick still runs

    loop = Loop(VirtualClock(), 0.001, tick)
    with sigterm_interrupts(), pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
        loop.run_for(1.0)
    assert finished == [0.0] and loop.ticks == 1 and TickGuard.pending is None and not TickGuard.active


def test_a_second_signal_during_one_tick_raises_at_once():
    reached = []

    def tick(_t_s):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # a hung tick can still be stopped
        reached.append(True)

    loop = Loop(VirtualClock(), 0.001, tick)
    with sigterm_interrupts(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        loop.step()
    assert reached == [] and TickGuard.pending is None and not TickGuard.active
