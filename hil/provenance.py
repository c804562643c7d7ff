"""What a run tested: the testbench's own version, the build the rig expects of the BMS, the seed, the
`--set` overrides, and every file the rig reads (rig, spec, cell, DBCs, device maps), each with its SHA-256.

A report that cannot say which limits it judged, against which build, cannot be trusted a week later, and
`hil compare` cannot tell a regression of the firmware from a changed spec. The plugin writes these as the
JUnit file's run-wide properties and in the report's header; the build the BMS itself says it runs is
recorded per test (`hil.report.results.FIRMWARE_PROPERTY`), since a real BMS can be reflashed mid-run.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import shlex
import subprocess
from pathlib import Path

from hil.rig import PROJECT_ROOT, Rig

PREFIX = "hil:run:"          # the run-wide JUnit properties' names start with it
FILE_PREFIX = PREFIX + "file:"
DIGEST_HEX = 12              # of SHA-256: enough to tell two versions of a file apart
GIT_TIMEOUT_S = 5.0
# Run-wide facts in the order a report shows them: property suffix -> label.
LABELS = {"testbench": "testbench", "rig": "rig", "seed": "seed", "set": "--set", "firmware_expected":
          "firmware the rig expects", "bugs": "seeded bugs"}
# The files a rig reads, by role: role -> label.
FILE_LABELS = {"rig": "rig file", "spec": "spec", "cell": "cell", "dbc": "DBC files", "dut_map": "DUT map",
               "ce_map": "cell-emulator map"}


def describe_run(rig: Rig) -> dict[str, str]:
    """The run-wide properties, by name (`PREFIX` + a key of `LABELS`, or `FILE_PREFIX` + a file's role)."""
    facts = {"testbench": testbench_version(), "rig": f"{rig.name} ({shown(rig.path)})", "seed": str(rig.seed)}
    if rig.overrides:
        facts["set"] = " ".join(rig.overrides)
    if rig.expected_firmware is not None:
        facts["firmware_expected"] = rig.expected_firmware
    if rig.data["dut"]["kind"] == "emulated" and rig.data["dut"].get("bugs"):
        facts["bugs"] = ", ".join(rig.data["dut"]["bugs"])
    properties = {PREFIX + key: value for key, value in facts.items()}
    for role, paths in input_files(rig).items():
        properties[FILE_PREFIX + role] = ", ".join(f"{shown(path)} sha256:{digest(path)}" for path in paths)
    return properties


def rerun_command(rig: Rig, test: str, seed: int | None = None) -> str:
    """The shell command that runs one test of the suite again, on this rig with these overrides: `test` is
    its function's name (every parameter of it runs), `seed` a repetition's (`--hil-repeat`)."""
    words = ["hil", "run", "--rig", shown(rig.path)]
    for assignment in rig.overrides:
        words += ["--set", assignment]
    if seed is not None:
        words += ["--set", f"rig.seed={seed}"]
    return shlex.join([*words, "-k", test])


def input_files(rig: Rig) -> dict[str, list[Path]]:
    """Every file the rig reads, by role: rig, spec, cell, dbc (all buses'), dut_map and ce_map if any."""
    files = {"rig": [rig.path], "spec": [rig.spec_path], "cell": [rig.resolve(rig.data["pack"]["cell"])]}
    dbcs = [path for bus in rig.buses for path in rig.dbc_paths(bus)]
    files["dbc"] = list(dict.fromkeys(dbcs))   # a file two buses share, once
    for role, table in (("dut_map", "dut"), ("ce_map", "cell_emulator")):
        if "map" in rig.data[table]:
            files[role] = [rig.resolve(rig.data[table]["map"])]
    return files


def digest(path: Path) -> str:
    """The first DIGEST_HEX hex digits of the file's SHA-256, or "missing" for a file that is not there."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:DIGEST_HEX]
    except OSError:
        return "missing"


def shown(path: Path) -> str:
    """A path as a report shows it: relative to the project when inside it (the same on every clone)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def testbench_version() -> str:
    """"hil-bms 0.1.0", with the git commit of a checkout ("git 98bc69a1b2c3") and "+ local changes" when
    its tracked files differ from that commit."""
    try:
        text = f"hil-bms {importlib.metadata.version('hil-bms')}"
    except importlib.metadata.PackageNotFoundError:
        text = "hil-bms (not installed)"
    if not (PROJECT_ROOT / ".git").exists():
        return text
    try:
        commit = _git("rev-parse", f"--short={DIGEST_HEX}", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return text   # no git on this machine: the package version is all there is
    return f"{text}, git {commit}" + (" + local changes" if changed else "")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, check=True,
                          timeout=GIT_TIMEOUT_S).stdout.strip()
