"""The harness as a diagnostic tester: UDS (ISO 14229) requests to the BMS over ISO-TP (ISO 15765-2).

A workshop, an end-of-line station and a CI job that flashed a board all ask a production BMS the same things
over UDS: which build it runs (ReadDataByIdentifier 0xF189) and which faults it has stored (ReadDTCInformation),
and they clear them (ClearDiagnosticInformation). A fault the BMS acted on but did not store leaves no trace
for any of them. `bench.uds` asks the same, on the DUT's bus, while the bench's loop runs (both clocks):
can-isotp segments and reassembles the frames, without a thread of its own (`hil.can.isotp_link`, processed on
each loop tick while a request waits), and udsoncan builds the requests and reads the responses.

    bench.uds.software_version()      # "1.2.0"
    bench.uds.read_dtcs()             # {0x1A0000: 0x2F}: DTC -> its status byte
    bench.uds.clear_dtcs()
    bench.uds.read_snapshots(0x1A0300)  # {1: {"pack_current_a": 412.3, ...}, 2: {...}}: as it was at each trip
    bench.uds.occurrences(0x1A0300)     # 2: how many times the error latched since the last clear
    with bench.uds.unlocked():   # the extended session, SecurityAccess (seed, key); the default one after
        bench.uds.write_did(bench.uds.protected_did, value)   # a write only an unlocked tester may make
        bench.uds.tester_present(suppress_response=True, functional=True)   # 0x3E 0x80 to 0x7DF: keeps sessions

The reference BMS answers on UDS_BmsRequest / UDS_BmsResponse (0x7E0 / 0x7E8) with the DTCs of
`hil.protocol.DTCS`, their snapshots' DIDs of `hil.protocol.SNAPSHOT_DIDS`; a DUT map's `[uds]` names a BMS's own
messages, DTCs and snapshot DIDs, and its security access (`security_level`, the `security_key` function that
turns a seed into its key, and a `protected_did` a tester may write only unlocked). A negative response raises
`UdsRefused` (its `code`) naming the service and ISO 14229-1's name for the code; no response within `timeout_s`
of bench time raises `HilTimeout` saying what came.
"""
from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable

from udsoncan import Dtc, Request, Response, services
from udsoncan.exceptions import ConfigError as UdsConfigError
from udsoncan.exceptions import InvalidResponseException

from hil.can.isotp_link import IsoTpLink
from hil.errors import HilError
from hil.protocol import (DEFAULT_SESSION, DID_CELL_OV_TRIP_MV, DID_SOFTWARE_VERSION, DTCS, EXTENDED_SESSION,
                          OCCURRENCE_RECORD, SECURITY_LEVEL, SNAPSHOT_DIDS, SNAPSHOT_FIRST, SNAPSHOT_LATEST,
                          UDS_ALL_DTCS, UDS_ALL_RECORDS, ScaledDid, reference_security_key)

DEFAULT_TIMEOUT_S = 1.0   # bench time for an answer: P2 (50 ms) many times over, for a slow adapter
SUPPRESSED_WAIT_S = 0.2   # after a request whose positive answer is suppressed: a refusal comes within P2 (50 ms)
ALL_STATUS_BITS = 0xFF
REFERENCE = {"request_message": "UDS_BmsRequest", "response_message": "UDS_BmsResponse",
             "functional_message": "UDS_FunctionalRequest",
             "software_version_did": DID_SOFTWARE_VERSION, "dtcs": DTCS, "snapshot": SNAPSHOT_DIDS,
             "snapshot_records": {"first": SNAPSHOT_FIRST, "latest": SNAPSHOT_LATEST},
             "occurrence_record": OCCURRENCE_RECORD, "security_level": SECURITY_LEVEL,
             "security_key": reference_security_key, "protected_did": DID_CELL_OV_TRIP_MV}


def make_uds_client(dut_map, monitor, sender, loop) -> UdsClient | None:
    """The tester for the rig's BMS: a DUT map's `[uds]`, or the reference BMS's where the rig's DBCs have its
    diagnostic messages; None for a BMS the harness has no UDS for."""
    if dut_map is not None:
        return UdsClient(monitor, sender, loop, **dut_map.uds) if dut_map.uds is not None else None
    names = {message.name for message in sender.db.messages}
    if not {REFERENCE["request_message"], REFERENCE["response_message"]} <= names:
        return None
    functional = REFERENCE["functional_message"] if REFERENCE["functional_message"] in names else None
    return UdsClient(monitor, sender, loop, **dict(REFERENCE, functional_message=functional))


class UdsRefused(HilError):
    """The BMS answered a UDS request with a negative response: `code`, ISO 14229-1's negative response code
    (None for an answer that is no UDS response at all)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class UdsClient:
    """A tester on the bench's bus: requests go out as `request_message`'s frames (through `sender`, so the CAN
    log has them), answers come as `response_message`'s (through `monitor`'s tap), while `loop` runs."""

    def __init__(self, monitor, sender, loop, request_message: str, response_message: str, *,
                 functional_message: str | None = None, software_version_did: int, dtcs: dict[str, int],
                 snapshot: dict[str, ScaledDid] | None = None,
                 snapshot_records: dict[str, int] | None = None, occurrence_record: int | None = None,
                 security_level: int | None = None, security_key: Callable[[bytes, int], bytes] | None = None,
                 protected_did: int | None = None):
        self._sender, self._loop = sender, loop
        self.request_message, self.response_message = request_message, response_message
        self.software_version_did = software_version_did
        self.dtcs = dict(dtcs)   # fault name -> DTC, as the BMS numbers them
        self._names = {code: name for name, code in self.dtcs.items()}
        self.snapshot = dict(snapshot or {})                  # name -> the snapshot DID that holds it
        self.snapshot_records = dict(snapshot_records or {})  # "first", "latest" -> its record number
        self.occurrence_record = occurrence_record            # the extended data record of the occurrence counter
        self._snapshot_dids = {did.did: (name, did) for name, did in self.snapshot.items()}
        self.security_level = security_level   # SecurityAccess's requestSeed subfunction (odd); sendKey is one more
        self.security_key = security_key       # seed, level -> key: the BMS maker's algorithm
        self.protected_did = protected_did     # a DID written only with security access unlocked
        self.status_availability: int | None = None   # the status bits the BMS supports, once read_dtcs has run
        db = sender.db
        self._link = IsoTpLink(db.get_message_by_name(request_message).frame_id,
                               db.get_message_by_name(response_message).frame_id,
                               lambda frame: sender.send_frame(request_message, frame))
        monitor.tap(response_message, self._link.feed)
        # Requests to every ECU at once go out as single frames on their own ID; answers come on the response ID.
        self.functional_message = functional_message
        self._functional_link = None if functional_message is None else IsoTpLink(
            db.get_message_by_name(functional_message).frame_id, db.get_message_by_name(response_message).frame_id,
            lambda frame: sender.send_frame(functional_message, frame))

    # UDS ----------------------------------------------------------------------------------------------------
    def request(self, request: Request, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                silence_ok: bool = False, functional: bool = False) -> Response | None:
        """Send `request` and wait for its positive response; a responsePending answer waits again. With
        `silence_ok` (a request whose positive response is suppressed), no answer within `timeout_s` is None.
        `functional` sends it to every ECU at once (a single frame on `functional_message`)."""
        name = request.service.get_name() if request.service else "request"
        payload = request.get_payload()
        if functional:
            self._check_functional(name, payload)
        link = self._link
        link.reset()   # a half-received answer to an earlier request that timed out is not this one's
        (self._functional_link if functional else link).send(payload)
        answers: list[bytes] = []

        def answered() -> bool:   # on each loop tick while the request waits
            link.process()
            if (payload := link.recv()) is not None:
                answers.append(payload)
            return bool(answers)

        while True:
            heard = link.frames_in
            if silence_ok:
                if self._loop.first_time(answered, timeout_s) is None:
                    return None
            else:
                self._loop.run_until(answered, timeout_s,
                                     lambda: f"{name} to the BMS ({self.request_message}): no answer on "
                                             f"{self.response_message} ({link.frames_in - heard} frame(s) came)")
            response = Response.from_payload(answers.pop())
            if not response.valid:
                raise UdsRefused(f"{name}: the BMS's answer is not a UDS response: {response.invalid_reason}")
            if response.positive:
                return response
            if response.code != Response.Code.RequestCorrectlyReceived_ResponsePending:
                raise UdsRefused(f"{name} refused by the BMS: negative response 0x{response.code:02X} "
                                 f"({response.code_name})", response.code)

    def _check_functional(self, name: str, payload: bytes) -> None:
        if self._functional_link is None:
            raise HilError(f"{name} to every ECU at once: the harness knows no functional request message for this "
                           "BMS; give its DUT map's [uds] functional_request (hil/devices/dut_map.py)")
        if len(payload) > 7:
            raise HilError(f"{name} to every ECU at once: {len(payload)} bytes; a functional request is one ISO-TP "
                           "single frame, 7 bytes at most (ISO 15765-2)")

    def session(self, session: int) -> None:
        """DiagnosticSessionControl: 1 default, 3 extended."""
        self.request(services.DiagnosticSessionControl.make_request(session))

    def tester_present(self, suppress_response: bool = False, functional: bool = False) -> Response | None:
        """TesterPresent (0x3E): a request that keeps a non-default session from timing out. With
        `suppress_response` (0x3E 0x80, the way workshop tools send it, every 2 s) the BMS answers only a refusal:
        that raises UdsRefused; silence for SUPPRESSED_WAIT_S is None, and a positive answer it should not have
        sent is returned. `functional`: addressed to every ECU at once (0x7DF), as a tool keeping a vehicle's
        sessions does."""
        request = services.TesterPresent.make_request()
        request.suppress_positive_response = suppress_response
        return self.request(request, SUPPRESSED_WAIT_S if suppress_response else DEFAULT_TIMEOUT_S,
                            silence_ok=suppress_response, functional=functional)

    def read_did(self, did: int) -> bytes:
        """ReadDataByIdentifier of one DID: its value's bytes."""
        response = self.request(Request(service=services.ReadDataByIdentifier, data=struct.pack(">H", did)))
        data = response.data or b""
        if data[:2] != struct.pack(">H", did):
            raise UdsRefused(f"ReadDataByIdentifier 0x{did:04X}: the BMS answered for "
                             f"0x{int.from_bytes(data[:2], 'big'):04X}")
        return data[2:]

    def write_did(self, did: int, value: bytes) -> None:
        """WriteDataByIdentifier of one DID's raw bytes."""
        self.request(Request(service=services.WriteDataByIdentifier, data=struct.pack(">H", did) + value))

    def request_seed(self) -> bytes:
        """SecurityAccess requestSeed at `security_level`: the seed (all zeros where the BMS is unlocked already)."""
        level = self._level()
        response = self.request(services.SecurityAccess.make_request(level, services.SecurityAccess.Mode.RequestSeed))
        data = response.data or b""
        if data[:1] != bytes([level]) or len(data) < 2:
            raise UdsRefused(f"SecurityAccess requestSeed 0x{level:02X}: the BMS answered {data.hex(' ')}, expected "
                             f"0x{level:02X} and a seed")
        return data[1:]

    def send_key(self, key: bytes) -> None:
        """SecurityAccess sendKey, one more than `security_level`."""
        self.request(services.SecurityAccess.make_request(self._level(), services.SecurityAccess.Mode.SendKey,
                                                          data=key))

    def unlock(self) -> bytes:
        """Seed, key by `security_key`, and sendKey; the seed it was asked (no key is sent for a zero seed: the BMS
        is unlocked already). In the extended session (`session(3)`) first, as most BMSes want."""
        self._key_function()   # none known: said before a seed is spent
        seed = self.request_seed()
        if any(seed):
            self.send_key(self.key_for(seed))
        return seed

    @contextlib.contextmanager
    def unlocked(self):
        """The extended session with security access unlocked for the `with` body; the default session (locked
        again) after it, whatever ends it."""
        self.session(EXTENDED_SESSION)
        try:
            self.unlock()
            yield self
        finally:
            self.session(DEFAULT_SESSION)

    def key_for(self, seed: bytes) -> bytes:
        """The key `security_key` makes of `seed` at `security_level`. A key function of a lab's own that fails, or
        gives no bytes, is named with the seed it was given."""
        function = self._key_function()
        name = getattr(function, "__qualname__", repr(function))
        try:
            key = function(seed, self._level())
        except HilError:
            raise
        except Exception as error:   # the lab's own code
            raise HilError(f"the security key function ([uds] security_key, {name}) failed for seed "
                           f"{seed.hex(' ')}: {type(error).__name__}: {error}") from None
        if not isinstance(key, (bytes, bytearray)) or not key:
            raise HilError(f"the security key function ([uds] security_key, {name}) gave {key!r} for seed "
                           f"{seed.hex(' ')}; expected the key's bytes")
        return bytes(key)

    def _key_function(self):
        if self.security_key is None:
            raise HilError("no security key is known for this BMS: give [uds] security_key in its DUT map "
                           "(hil/devices/dut_map.py)")
        return self.security_key

    def _level(self) -> int:
        if self.security_level is None:
            raise HilError("no security access level is known for this BMS: give [uds] security_level in its DUT "
                           "map (hil/devices/dut_map.py)")
        return self.security_level

    def software_version(self) -> str:
        """The build the BMS says it runs, from its software-version DID (0xF189 by default), as text."""
        return self.read_did(self.software_version_did).decode("ascii", "replace").strip("\x00 ")

    def read_dtcs(self, status_mask: int = ALL_STATUS_BITS) -> dict[int, int]:
        """ReadDTCInformation 0x02: every stored DTC whose status has a bit of `status_mask`, with its status. The
        status bits the BMS supports (its DTCStatusAvailabilityMask) are kept in `status_availability`."""
        response = self.request(services.ReadDTCInformation.make_request(subfunction=0x02, status_mask=status_mask))
        services.ReadDTCInformation.interpret_response(response, subfunction=0x02)
        self.status_availability = response.service_data.status_availability.get_byte_as_int()
        return {dtc.id: dtc.status.get_byte_as_int() for dtc in response.service_data.dtcs}

    def read_snapshots(self, code: int) -> dict[int, dict[str, float]]:
        """ReadDTCInformation 0x04, every record of one DTC: record number -> name -> value, by the names and
        scales of the snapshot DIDs (`snapshot`). A DTC that never failed has none: {}."""
        if not self.snapshot:
            raise HilError(f"no snapshot DIDs are known for this BMS: give [uds.snapshot] in its DUT map "
                           f"(hil/devices/dut_map.py) to read {self.describe(code)}'s")
        response = self.request(services.ReadDTCInformation.make_request(
            subfunction=0x04, dtc=code, snapshot_record_number=UDS_ALL_RECORDS))
        formats = {did: codec.TYPES[codec.type] for did, (_, codec) in self._snapshot_dids.items()}
        try:
            services.ReadDTCInformation.interpret_response(response, subfunction=0x04, didconfig=formats,
                                                           dtc_snapshot_did_size=2)
        except (UdsConfigError, InvalidResponseException) as error:   # a DID the map lacks: its size is unknown
            raise UdsRefused(f"the snapshot of {self.describe(code)} cannot be read by [uds.snapshot] "
                             f"({', '.join(f'0x{did:04X}' for did in formats)}): {error}") from None
        records: dict[int, dict[str, float]] = {}
        for dtc in response.service_data.dtcs:
            for snapshot in dtc.snapshots:
                name, codec = self._snapshot_dids[snapshot.did]
                records.setdefault(snapshot.record_number, {})[name] = codec.decode(snapshot.raw_data)
        return records

    def occurrences(self, code: int) -> int:
        """How many times the DTC's error has occurred, by the first byte of its extended data record
        `occurrence_record` (ReadDTCInformation 0x06); 0 where the BMS keeps no such record for it."""
        if self.occurrence_record is None:
            raise HilError("no occurrence counter is known for this BMS: give [uds] occurrence_record in its DUT "
                           "map (hil/devices/dut_map.py)")
        response = self.request(services.ReadDTCInformation.make_request(
            subfunction=0x06, dtc=code, extended_data_record_number=self.occurrence_record))
        # One record was asked for: all that follows the DTC and its status is that record (number, then data).
        size = max(0, len(response.data or b"") - 6)
        try:
            services.ReadDTCInformation.interpret_response(response, subfunction=0x06, extended_data_size=size)
        except InvalidResponseException as error:
            raise UdsRefused(f"the extended data of {self.describe(code)}: {error}") from None
        for dtc in response.service_data.dtcs:
            for record in dtc.extended_data:
                if record.record_number == self.occurrence_record and record.raw_data:
                    return record.raw_data[0]
        return 0

    def clear_dtcs(self) -> None:
        """ClearDiagnosticInformation of every group."""
        self.request(services.ClearDiagnosticInformation.make_request(UDS_ALL_DTCS))

    def describe(self, code: int, status: int | None = None) -> str:
        """'cell_ov (P1A00-00)', or the code alone for a DTC the map does not name; with its status if given."""
        text = Dtc(code).id_iso()
        text = f"{self._names[code]} ({text})" if code in self._names else text
        return text if status is None else f"{text} status 0x{status:02X}"
