"""Security access (`[security]`, optional): a protected write only in the extended session with security unlocked,
and only inside its range, a tester locked out after a few wrong keys, and locked again once it has gone quiet.

A BMS whose protection thresholds a tester can write is one whose over-voltage trip an attacker on the bus (a
compromised telematics unit, a rogue device on a rack's CAN) can raise past the cell's limit. UDS guards such
writes with SecurityAccess (ISO 14229-1, 0x27): a seed from the BMS, a key from the tester by the maker's algorithm.
That guard is only as good as what surrounds it: a write that checks the session but not the key, or not the value;
a seed that never changes (a key sniffed once unlocks for ever); no limit on wrong keys (a 32-bit key falls to a
brute force); a lockout a power cycle clears; an unlocked session that outlives the workshop's tester. Runs where
the harness has UDS for the BMS with its security key and a protected DID (the reference BMS's, or a DUT map's
`[uds]`). Every write puts back the value it read, so the bench is left as it was found.
"""
import pytest
from udsoncan import Response

from hil.devices.uds import UdsRefused
from hil.protocol import DEFAULT_SESSION, EXTENDED_SESSION

from .observe import key_cycle

# Every test here checks what [security] states of the BMS's protected writes, lockout and session.
pytestmark = pytest.mark.verifies("security")

Code = Response.Code
POLL_S = 0.25   # between seed requests while locked out: the lockout's end is measured to this
DARK_S = 1.0    # the supply cut that tries to clear a lockout (a rig with "lv_supply")
KEEP_ALIVE_S = 2.0   # how often a tester sends TesterPresent to keep its session (ISO 14229-2's S3Client)


def _security(bench, spec):
    """The tester and the spec's [security]; a skip for a spec without it, a failure for a map that cannot check
    what the spec says."""
    if "security" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [security]: this BMS has no protected writes")
    uds = bench.uds
    if uds is None or uds.security_key is None or uds.security_level is None or uds.protected_did is None:
        pytest.fail(f"{spec.path.name} has [security], but the harness knows no security access for this BMS: give "
                    "its DUT map's [uds] security_level, security_key and protected_did (hil/devices/dut_map.py)",
                    pytrace=False)
    return uds, spec.section("security")


def _refusal(action) -> int | None:
    """The negative response code `action` met; None if the BMS took it."""
    try:
        action()
    except UdsRefused as refusal:
        return refusal.code
    return None


def _name(code: int | None) -> str:
    return "taken" if code is None else f"0x{code:02X} ({Response.Code.get_name(code)})"


def _wrong_key(uds) -> tuple[bytes, int | None]:
    """A seed, then a key that is not its key: the seed and the refusal's code."""
    seed = uds.request_seed()
    key = uds.key_for(seed)
    return seed, _refusal(lambda: uds.send_key(bytes(byte ^ 0xA5 for byte in key)))


def test_a_protected_write_needs_the_extended_session_and_the_key(bench, spec):
    """The protected DID's value written back: refused in the default session, refused while locked
    (securityAccessDenied) in the extended one, taken once the right key has unlocked it, and refused again after a
    session change. Unlocked, the BMS answers a zero seed (ISO 14229-1: nothing left to unlock)."""
    uds, _ = _security(bench, spec)
    did = uds.protected_did
    uds.session(DEFAULT_SESSION)
    value = uds.read_did(did)
    code = _refusal(lambda: uds.write_did(did, value))
    assert code is not None, f"DID 0x{did:04X} written in the default session, with no key"
    uds.session(EXTENDED_SESSION)
    code = _refusal(lambda: uds.write_did(did, value))
    assert code == Code.SecurityAccessDenied, (
        f"DID 0x{did:04X} written in the extended session without the key: {_name(code)}, expected "
        f"{_name(Code.SecurityAccessDenied)}")
    uds.unlock()
    uds.write_did(did, value)
    assert uds.read_did(did) == value
    seed = uds.request_seed()
    assert not any(seed), f"unlocked, the BMS still answers a seed ({seed.hex(' ')}): ISO 14229-1 says zeros"
    uds.session(EXTENDED_SESSION)   # a session change, even into the same session, locks again
    code = _refusal(lambda: uds.write_did(did, value))
    uds.session(DEFAULT_SESSION)
    assert code == Code.SecurityAccessDenied, (
        f"DID 0x{did:04X} written after the session was opened again, without the key: {_name(code)}")


def test_a_protected_write_out_of_range_is_refused(bench, spec):
    """Unlocked, the protected DID written with the largest value its bytes hold (all ones: 65.535 V for the
    reference BMS's OV trip, in mV): no cell survives such a threshold, so the BMS must refuse it (requestOutOfRange)
    and keep the value it had. The key guards who may write; the range check guards what, against a service tool's
    typo or a stolen key. A write it took is put back at once, so the bench is left as it was found."""
    uds, _ = _security(bench, spec)
    did = uds.protected_did
    value = uds.read_did(did)
    top = bytes([0xFF]) * len(value)
    with uds.unlocked():
        code = _refusal(lambda: uds.write_did(did, top))
        after = uds.read_did(did)
        if after != value:
            uds.write_did(did, value)
            assert uds.read_did(did) == value, f"DID 0x{did:04X} could not be put back to {value.hex(' ')}"
    assert code == Code.RequestOutOfRange, (
        f"DID 0x{did:04X} written with {top.hex(' ')}: {_name(code)}, expected {_name(Code.RequestOutOfRange)}")
    assert after == value, f"DID 0x{did:04X} was {value.hex(' ')}, refused {top.hex(' ')}, then read {after.hex(' ')}"


def test_wrong_keys_lock_the_tester_out_a_reset_included(bench, spec, rig, measure):
    """max_attempts wrong keys in a row, each on a fresh seed (no two seeds alike: a repeated seed lets a sniffed key
    be replayed): then seed requests are refused (requiredTimeDelayNotExpired), on rigs with `lv_supply` after a
    supply cut too, for at least min_lockout_s; within max_lockout_s the right key unlocks again."""
    uds, security = _security(bench, spec)
    bench.power_up()   # then parked in STANDBY, as on a workshop's bench: a supply cut then takes nothing down
    bench.bms.request("standby")
    bench.loop.run_until(lambda: not bench.bms.any_contactor_closed, 3.0,
                         lambda: f"contactors still closed after a STANDBY request: {bench.bms.describe()}")
    uds.session(EXTENDED_SESSION)
    seeds, codes = [], []
    for _ in range(security["max_attempts"]):
        started_s = bench.loop.t_s   # the last wrong key's: the lockout starts after it
        seed, code = _wrong_key(uds)
        seeds.append(seed.hex(" "))
        codes.append(_name(code))
        if code is None:
            pytest.fail(f"a wrong key unlocked the BMS (seed {seed.hex(' ')})")
    assert len(set(seeds)) == len(seeds), f"the BMS gave the same seed again: {seeds}"
    code = _refusal(uds.request_seed)
    assert code == Code.RequiredTimeDelayNotExpired, (
        f"after {security['max_attempts']} wrong keys (answered {codes}), a seed request was {_name(code)}, "
        f"expected {_name(Code.RequiredTimeDelayNotExpired)}")
    if "lv_supply" in rig.capabilities:
        key_cycle(bench, DARK_S)
        uds.session(EXTENDED_SESSION)
        code = _refusal(uds.request_seed)
        assert code == Code.RequiredTimeDelayNotExpired, (
            f"locked out, then a {DARK_S:g} s supply cut: a seed request was {_name(code)}; a reset must not clear "
            "a lockout, or a brute force goes on a power cycle at a time")
    while (code := _refusal(uds.request_seed)) == Code.RequiredTimeDelayNotExpired:
        if bench.loop.t_s - started_s > security["max_lockout_s"] + POLL_S:
            pytest.fail(f"seed requests still refused {bench.loop.t_s - started_s:.1f} s after the last wrong key; "
                        f"expected the lockout over within {security['max_lockout_s']:g} s")
        bench.loop.run_for(POLL_S)
    lockout_s = bench.loop.t_s - started_s
    assert code is None, f"{lockout_s:.1f} s after the lockout, a seed request was {_name(code)}"
    measure("security_lockout", lockout_s, low=security["min_lockout_s"], high=security["max_lockout_s"], unit="s")
    uds.session(EXTENDED_SESSION)
    uds.unlock()   # the right key: taken again, and the failed attempts forgotten
    uds.session(DEFAULT_SESSION)


def test_an_unlocked_session_ends_when_the_tester_goes_quiet(bench, spec):
    """Unlocked, then min_session_s without a request: the protected write is still taken. Then max_session_s
    without one: the session has ended (the write refused), and opening it again finds security locked."""
    uds, security = _security(bench, spec)
    did = uds.protected_did
    value = uds.read_did(did)
    uds.session(EXTENDED_SESSION)
    uds.unlock()
    bench.loop.run_for(security["min_session_s"])
    code = _refusal(lambda: uds.write_did(did, value))
    assert code is None, (f"{security['min_session_s']:g} s after the tester's last request, the unlocked write was "
                          f"{_name(code)}: the session ended too soon for a tester's pause")
    bench.loop.run_for(security["max_session_s"])
    code = _refusal(lambda: uds.write_did(did, value))
    assert code is not None, (f"{security['max_session_s']:g} s after the tester's last request, DID 0x{did:04X} was "
                              "still written: an unlocked session that outlives its tester is open to anybody")
    uds.session(EXTENDED_SESSION)
    code = _refusal(lambda: uds.write_did(did, value))
    uds.session(DEFAULT_SESSION)
    assert code == Code.SecurityAccessDenied, (
        f"the session timed out and was opened again: the write without a key was {_name(code)}")


@pytest.mark.parametrize("addressing", ["physical", "functional"])
def test_tester_present_keeps_an_unlocked_session_open(bench, spec, addressing):
    """A workshop tool between two jobs keeps its session with TesterPresent, its positive answer suppressed (0x3E
    0x80), every KEEP_ALIVE_S (or half min_session_s, if shorter): to the BMS alone, or to every ECU at once
    (functional addressing, 0x7DF, as a tool flashing a vehicle keeps all its sessions). Unlocked, then
    max_session_s of nothing else (by when a session not kept has ended): the BMS answers none of them, and the
    protected write is still taken. A BMS that lets the session lapse under a keep-alive breaks the tool's job
    halfway (a calibration written in part)."""
    uds, security = _security(bench, spec)
    functional = addressing == "functional"
    if functional and uds.functional_message is None:
        pytest.skip("the harness knows no functional request message for this BMS (a DUT map's [uds] "
                    "functional_request)")
    did = uds.protected_did
    value = uds.read_did(did)
    every_s = min(KEEP_ALIVE_S, security["min_session_s"] / 2)
    answered = []
    with uds.unlocked():
        started_s = next_s = bench.loop.t_s
        while bench.loop.t_s - started_s < security["max_session_s"]:   # past it, an unkept session has ended
            answer = uds.tester_present(suppress_response=True, functional=functional)
            if answer is not None:
                answered.append(answer.get_payload().hex(" "))
            next_s += every_s
            bench.loop.run_for(max(0.0, next_s - bench.loop.t_s))
        kept_s = bench.loop.t_s - started_s
        code = _refusal(lambda: uds.write_did(did, value))
    assert code is None, (f"unlocked, then {kept_s:.1f} s of TesterPresent (0x3E 0x80, {addressing}) every "
                          f"{every_s:g} s: the write was {_name(code)}; the keep-alive did not keep the session")
    assert not answered, f"the BMS answered TesterPresent with its positive response suppressed: {answered}"
