"""Boundaries: rig, cell and spec files are data, never executed; and nothing the harness or its emulated
boards start listens on the network beyond this machine (127.0.0.1 or ::1) unless a rig says so."""
import ipaddress
import os
import socket
import sys
from pathlib import Path

import pytest
from .safety_harness import RIGS, ROOT, Harness

from hil.bench import Bench
from hil.errors import ConfigError
from hil.model.cell import load_cell
from hil.rig import load_rig
from hil.spec import load_spec

LOOKS_LIKE_CODE = "__import__('os').system('touch {marker}') or {{0.__class__}}"


def test_python_looking_strings_in_rig_cell_and_spec_stay_strings(tmp_path):
    marker = tmp_path / "executed"
    code = LOOKS_LIKE_CODE.format(marker=marker)
    cell_path = tmp_path / "cell.toml"
    cell_path.write_text((ROOT / "fixtures" / "cells" / "lg_m50.toml").read_text()
                         .replace('name = "', f'name = "{code} ', 1))
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text((ROOT / "fixtures" / "specs" / "reference-bms.toml").read_text()
                         .replace('name = "', f'name = "{code} ', 1))   # units are checked: V, A, degC
    rig_path = tmp_path / "rig.toml"
    rig_path.write_text(RIGS["sim"].read_text().replace('"../', f'"{ROOT}/')
                        .replace('description = "', f'description = "{code} ', 1)
                        .replace(f'"{ROOT}/fixtures/cells/lg_m50.toml"', f'"{cell_path}"')
                        .replace(f'"{ROOT}/fixtures/specs/reference-bms.toml"', f'"{spec_path}"'))
    rig = load_rig(rig_path, [f"rig.name={code}"])   # a bare --set value is a string too
    assert rig.name == code and rig.data["rig"]["description"].startswith(code)
    assert load_cell(cell_path).name.startswith(code)
    assert load_spec(spec_path).data["bms"]["name"].startswith(code)
    with Bench(rig) as bench:   # and a bench built from them runs as usual
        bench.power_up()
    assert not marker.exists()


def test_an_expression_where_a_number_belongs_is_refused_not_evaluated(tmp_path):
    path = tmp_path / "cell.toml"
    path.write_text((ROOT / "fixtures" / "cells" / "lg_m50.toml").read_text()
                    .replace("capacity_ah = 5.0", 'capacity_ah = "2.5 * 2"'))
    with pytest.raises(ConfigError, match="capacity_ah"):
        load_cell(path)
    with pytest.raises(ConfigError, match=r"key 'pack.n_series' = '8 \* 2', expected int"):
        load_rig(RIGS["sim"], ['pack.n_series="8 * 2"'])


HARNESS = """
import sys
from hil.bench import Bench
from hil.rig import load_rig
with Bench(load_rig(sys.argv[1])) as bench:
    bench.power_up()
    print("powered", flush=True)
    bench.loop.run_for(60.0)
"""


def socketcand_rig(tmp_path: Path) -> Path:
    """rigs/slcan.toml with its bus served by `hil emulate` as socketcand on a free TCP port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = RIGS["slcan"].read_text().replace('"../', f'"{ROOT}/')
    start = text.index("[can.main]\n")
    end = text.index("\n\n", start)
    bus = f'[can.main]\ninterface = "socketcand"\nhost = "127.0.0.1"\nport = {port}\nchannel = "vcan0"\n'
    dbc = next(line for line in text[start:end].splitlines() if line.startswith("dbc"))
    path = tmp_path / "socketcand.toml"
    path.write_text(text[:start] + bus + dbc + text[end:])
    return path


def listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets `pid` listens on and the UDP sockets it has bound."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("udp", 8), ("tcp6", 32), ("udp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address_hex, state, inode = fields[1].split(":")[0], fields[3], fields[9]
            if inode in inodes and (table.startswith("udp") or state == "0A"):   # 0A: LISTEN
                # /proc prints each 32-bit word of the address in host (little-endian) byte order.
                words = [bytes.fromhex(address_hex[k:k + 8])[::-1] for k in range(0, width, 8)]
                found.append(str(ipaddress.ip_address(b"".join(words))))
    return found


@pytest.mark.wire
@pytest.mark.parametrize("transport", ["slcan", "socketcand"])
def test_harness_and_emulated_boards_listen_on_loopback_only(tmp_path, transport):
    rig_path = RIGS["slcan"] if transport == "slcan" else socketcand_rig(tmp_path)
    harness = Harness([sys.executable, "-c", HARNESS, str(rig_path)])
    try:
        harness.wait_for(lambda line: line == "powered")
        processes = [harness.proc.pid, *harness.children()]
        assert len(processes) == 2, "expected the harness and its `hil emulate` process"
        for pid in processes:
            exposed = [a for a in listening_addresses(pid) if not ipaddress.ip_address(a).is_loopback]
            assert exposed == [], f"process {pid} listens on {exposed}"
    finally:
        harness.proc.terminate()
        harness.finish()
