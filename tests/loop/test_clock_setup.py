"""What RealClock sets up for a 1 ms loop: setup's objects frozen out of the run's garbage collections, and
precise sleeps (1 ns timer slack) for the thread that sleeps. Asserts the setup, never speed."""
import ctypes
import gc
import sys
import threading
import weakref

import pytest

from hil.clock import RealClock, VirtualClock

PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30  # linux/prctl.h


class _Node:
    pass


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()  # leave the rest of the test session's objects to the collector


def test_restart_freezes_what_setup_left_and_frees_its_garbage_at_the_next_restart(unfrozen):
    clock = RealClock()
    keep = [_Node() for _ in range(10)]
    clock.restart()
    assert gc.get_freeze_count() > len(keep)  # setup's survivors sit out the run's collections
    frozen_garbage = _make_frozen_garbage()
    gc.collect()
    assert frozen_garbage() is not None  # frozen: even a full collection leaves it
    clock.restart()
    assert frozen_garbage() is None  # the next run's restart collects it before freezing again


def _make_frozen_garbage() -> weakref.ref:
    """A reference cycle that is frozen while referenced, then dropped: garbage the collector cannot see."""
    holder = [_Node()]
    holder[0].self = holder[0]
    ref = weakref.ref(holder[0])
    gc.freeze()
    holder.clear()
    return ref


def test_a_virtual_clock_leaves_the_collector_alone(unfrozen):
    gc.unfreeze()
    VirtualClock().restart()
    assert gc.get_freeze_count() == 0


@pytest.mark.skipif(sys.platform != "linux", reason="timer slack is a Linux thread attribute")
def test_the_sleeping_thread_gets_1_ns_timer_slack():
    seen = {}

    def sleeper():  # a thread of its own: timer slack is per thread, and this one ends with the test
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_TIMERSLACK, 50_000, 0, 0, 0)  # Linux's default; a new thread inherits its creator's
        seen["before"] = libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
        clock = RealClock(spin_s=0.0)
        clock.sleep_until(0.001)
        seen["after"] = libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)

    thread = threading.Thread(target=sleeper)
    thread.start()
    thread.join()
    assert (seen["before"], seen["after"]) == (50_000, 1)
