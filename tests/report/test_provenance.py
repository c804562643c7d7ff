"""What a run tested (hil/provenance.py): every file the rig reads, with its SHA-256, and the testbench's own
version, from its git checkout when it is one."""
import hashlib
import subprocess

from hil import provenance
from hil.provenance import describe_run, digest
from hil.rig import PROJECT_ROOT, load_rig

RIGS = PROJECT_ROOT / "rigs"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_every_file_a_mapped_rig_reads_is_named_with_its_digest():
    rig = load_rig(RIGS / "sim.toml", ['dut.map="../fixtures/duts/reference-bms.toml"', 'dut.firmware="1.2.0"',
                                       'dut.bugs=["ov_off_by_one", "stale_crc"]'])
    facts = describe_run(rig)
    dut_map = PROJECT_ROOT / "fixtures" / "duts" / "reference-bms.toml"
    assert facts["hil:run:file:dut_map"] == f"fixtures/duts/reference-bms.toml sha256:{_sha(dut_map)}"
    assert facts["hil:run:file:rig"] == f"rigs/sim.toml sha256:{_sha(RIGS / 'sim.toml')}"
    assert facts["hil:run:firmware_expected"] == "1.2.0"
    assert facts["hil:run:bugs"] == "ov_off_by_one, stale_crc"
    assert facts["hil:run:set"].startswith('dut.map="../fixtures/duts/reference-bms.toml" dut.firmware="1.2.0"')
    assert "hil:run:file:ce_map" not in facts


def test_the_dbc_files_of_every_bus_are_listed_once_each():
    facts = describe_run(load_rig(RIGS / "slcan-ce-bus.toml"))   # the cell emulator on a bus of its own
    names = [entry.split(" sha256:")[0] for entry in facts["hil:run:file:dbc"].split(", ")]
    assert names == ["dbc/bms.dbc", "dbc/vcu.dbc", "dbc/cell_emulator.dbc"]


def test_a_changed_file_has_another_digest_and_a_missing_one_says_so(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text("[protections]\n")
    before = digest(path)
    path.write_text("[protections]\n# one comment more\n")
    assert digest(path) != before and len(before) == provenance.DIGEST_HEX
    assert digest(tmp_path / "gone.toml") == "missing"


def test_the_testbench_names_its_commit_and_local_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)
    assert provenance.testbench_version() == "hil-bms 0.1.0"   # not a checkout: the package's version alone

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       check=True, capture_output=True)
    (tmp_path / "a.txt").write_text("one\n")
    git("init", "-q")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    commit = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short=12", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    assert provenance.testbench_version() == f"hil-bms 0.1.0, git {commit}"
    (tmp_path / "a.txt").write_text("two\n")
    assert provenance.testbench_version() == f"hil-bms 0.1.0, git {commit} + local changes"
