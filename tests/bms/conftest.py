import pytest

from hil.bench import Bench
from hil.rig import load_rig


@pytest.fixture
def custom_bench(rig, request):
    """Build a bench from the session's rig plus extra `--set`-style overrides (a pack with spread SOC,
    an accelerated calibration). Made safe and closed after the test, like `bench`."""
    benches = []

    def _make(*extra: str) -> Bench:
        overrides = list(request.config.getoption("hil_set")) + list(extra)
        bench = Bench(load_rig(rig.path, overrides))
        benches.append(bench)
        return bench

    yield _make
    for bench in benches:
        try:
            bench.make_safe()
        finally:
            bench.close()
