"""index.html: verdict, margins, links to files that exist, plots embedded, nothing fetched from outside."""
import base64
import re

import pytest

from hil.report.artifacts import write_test_artifacts
from hil.report.html import write_index
from hil.report.measurements import Measurement
from hil.report.results import Results


def _results(*outcomes):
    results = Results()
    for name, outcome, details, props in outcomes:
        results.add(name, "call", outcome, 1.0, details, props)
    return results


def test_index_shows_verdict_measurements_and_failure_text(tmp_path):
    tight = Measurement("cell_ov_trip", 4.249, low=4.2, high=4.25, unit="V")
    failed = Measurement("oc_reaction", 130.0, high=120.0, unit="ms")
    results = _results(("tests/bms/test_a.py::test_ov", "passed", "", tight.properties()),
                       ("tests/bms/test_a.py::test_oc", "failed", "assert <b>130</b> < 120", failed.properties()))
    page = write_index(tmp_path, results, {"title": "run", "rig": "sim", "notes": ["plots not drawn: x"]}).read_text()
    assert ">FAIL<" in page and "1 failed, 1 passed" in page
    assert "cell_ov_trip" in page and "0.001" in page and ">tight<" in page
    assert "oc_reaction" in page and "-10" in page and ">FAIL<" in page
    assert "assert &lt;b&gt;130&lt;/b&gt; &lt; 120" in page      # failure text is escaped, not markup
    assert "plots not drawn: x" in page


def test_index_links_existing_files_and_embeds_the_plot(tmp_path, trace_file):
    pytest.importorskip("matplotlib")
    tests_dir = trace_file.parent
    write_test_artifacts(tests_dir, "demo", "tests/bms/test_a.py::test_demo")
    (tests_dir / "demo.blf").write_bytes(b"")
    timing = [("timing:ticks", 3000), ("timing:overruns", 2), ("timing:jitter_p99_us", 80.0),
              ("timing:jitter_max_us", 2400.0)]
    results = _results(("tests/bms/test_a.py::test_demo", "passed", "", [("hil:artifact", "demo"), *timing]))
    page = write_index(tests_dir.parent, results, {"title": "run"}).read_text()
    links = set(re.findall(r'href="([^"#]+)"', page))
    assert {"tests/demo.csv", "tests/demo.png", "tests/demo.blf", "tests/demo.events.csv"} <= links
    assert all((tests_dir.parent / link).is_file() for link in links)
    assert "p99 80 µs, max 2400 µs" in page and "overran in 1 of 1 tests" in page
    assert "realtime_priority" not in page  # nothing known of the rig's scheduling: no advice
    at_normal = write_index(tests_dir.parent, results, {"title": "run", "realtime_priority": 0}).read_text()
    assert "[rig] realtime_priority (e.g. 50) keeps other processes from delaying the loop" in at_normal
    raised = write_index(tests_dir.parent, results, {"title": "run", "realtime_priority": 50}).read_text()
    assert "overran in 1 of 1 tests" in raised and "keeps other processes" not in raised
    page = write_index(tests_dir.parent, results, {"title": "run"}).read_text()
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(embedded) == (tests_dir / "demo.png").read_bytes()
    # Readable offline: no scripts, no external stylesheets, images or links.
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)


def test_an_interrupted_test_is_marked_as_a_bad_outcome(tmp_path):
    results = Results()
    results.add("t::running", "setup", "passed", 0.3)
    page = write_index(tmp_path, results, {"title": "run"}).read_text()
    assert '<span class="bad">interrupted</span>' in page and "never reported" in page
