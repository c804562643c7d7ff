"""The reference BMS's diagnostic server: UDS (ISO 14229) over ISO-TP (ISO 15765-2) on its CAN bus.

It answers a tester's requests (UDS_BmsRequest, 0x7E0, and single-frame ones addressed to every ECU at once,
UDS_FunctionalRequest, 0x7DF) on UDS_BmsResponse (0x7E8):

- DiagnosticSessionControl (0x10): the default (1) and extended (3) sessions, with its P2 and P2* times;
- TesterPresent (0x3E);
- ReadDataByIdentifier (0x22): 0xF189, the software version ("1.2.0", as BMS_Version says it);
- ReadDTCInformation (0x19): 0x01 the number of DTCs whose status matches a mask, 0x02 the DTCs themselves,
  0x04 a DTC's snapshot records (the first occurrence's and the latest's, `hil.protocol.SNAPSHOT_DIDS`), 0x06 its
  extended data record (0x01: how many times its error has latched since the last clear);
- ClearDiagnosticInformation (0x14), group 0xFFFFFF: every DTC;
- SecurityAccess (0x27), level 1 (requestSeed 0x01, sendKey 0x02), in the extended session only: a 4-byte random
  seed (all zeros once unlocked), the key `hil.protocol.reference_security_key`'s. A wrong key answers invalidKey;
  the SECURITY_MAX_ATTEMPTS-th in a row exceededNumberOfAttempts, and for SECURITY_DELAY_S from then every seed
  request requiredTimeDelayNotExpired; after the delay one more try is allowed before the next. The failed attempts
  are kept in NVM (as AUTOSAR's Dcm can keep its attempt counter), so a reset is no way round the delay: a lockout
  pending at a reset runs again, in full, from the boot;
- WriteDataByIdentifier (0x2E) of DID_CELL_OV_TRIP_MV, the cell over-voltage trip, unlocked only: a service tool
  may lower it (an aged or derated pack), never raise it above the calibration the board was built with
  (requestOutOfRange). ReadDataByIdentifier reads it in any session.

Sessions: the extended one ends after S3_SERVER_S without a request (ISO 14229-2's S3Server; TesterPresent is a
request, with its positive answer suppressed (0x3E 0x80) too, the way workshop tools send it), and every session
change, that timeout's too, locks security access again.

Anything else gets the negative response ISO 14229-1 gives for it: serviceNotSupported,
subFunctionNotSupported, requestOutOfRange or incorrectMessageLengthOrInvalidFormat; addressed functionally, the
first three (and their "in active session" forms) are not sent. can-isotp segments and reassembles (a DTC list
longer than one frame goes out as a first frame, waits for the tester's flow control, then as consecutive frames),
and udsoncan parses the requests and builds the responses. The server runs in the
firmware's 10 ms task, so an answer comes within a task or two (P2 is 50 ms).

The DTC memory (one status byte per DTC of `hil.protocol.DTCS`, its snapshots and occurrence counter) is the
firmware's to keep: see `BmsFirmware._update_dtcs`.
"""
from __future__ import annotations

import random
import struct

from udsoncan import Request, Response, services

from hil.can.isotp_link import IsoTpLink
from hil.protocol import (DEFAULT_SESSION, DID_CELL_OV_TRIP_MV, DID_SOFTWARE_VERSION, DTC_LATCHED_STATUS,
                          EXTENDED_SESSION, OCCURRENCE_RECORD, SECURITY_LEVEL, SNAPSHOT_DIDS, SNAPSHOT_FIRST,
                          SNAPSHOT_LATEST, UDS_ALL_DTCS, UDS_ALL_RECORDS, UDS_FUNCTIONAL_ID, UDS_REQUEST_ID,
                          UDS_RESPONSE_ID, reference_security_key)

P2_MS = 50          # the server's answer time, as DiagnosticSessionControl reports it
P2_STAR_MS = 2000   # after a responsePending (never sent here)
S3_SERVER_S = 5.0   # ISO 14229-2: a non-default session ends this long after the last request
SUPPRESSED_TESTER_PRESENT = bytes([0x3E, 0x80])   # TesterPresent, zeroSubFunction, its positive answer suppressed
SECURITY_MAX_ATTEMPTS = 3
SECURITY_DELAY_S = 10.0   # ISO 14229-1 leaves it to the maker; 10 s is the common figure
SEED_BYTES = 4
CONSTANT_SEED = bytes.fromhex("12345678")   # (security_seed_constant)

Code = Response.Code
# Refusals a functionally addressed request never gets (ISO 14229-1, 7.5): of the many ECUs that hear it, those
# without the service, subfunction or DID stay silent, or the tester would hear a refusal from each of them.
FUNCTIONAL_SILENT_CODES = frozenset({Code.ServiceNotSupported, Code.SubFunctionNotSupported, Code.RequestOutOfRange,
                                     Code.SubFunctionNotSupportedInActiveSession,
                                     Code.ServiceNotSupportedInActiveSession})


class UdsServer:
    """`on_frame` takes the tester's ISO-TP frames; `process()` answers them, from the firmware's task.
    `firmware` keeps the DTC memory (`dtcs`: DTC -> status byte; `clear_dtcs()`)."""

    def __init__(self, firmware, sender, version_text: str, seed: int = 0):
        self._firmware = firmware
        self._version = version_text.encode("ascii")
        self._link = IsoTpLink(UDS_RESPONSE_ID, UDS_REQUEST_ID,
                               lambda frame: sender.send_frame("UDS_BmsResponse", frame))
        # Functional requests are single frames (ISO 15765-2): that link sends nothing, not even a flow control.
        # Their answers go out on the physical link.
        self._functional = IsoTpLink(UDS_RESPONSE_ID, UDS_FUNCTIONAL_ID, lambda frame: None)
        self._functional_seen = 0   # its frames_in when last processed
        self._seeds = random.Random(seed)   # its own stream: a tester's seed requests move no other random draw
        self._now_s = 0.0
        self.reset(0.0)

    def on_frame(self, msg) -> None:
        """A tester's frame, on the physical or the functional request ID."""
        (self._functional if msg.arbitration_id == UDS_FUNCTIONAL_ID else self._link).feed(msg)

    def reset(self, now_s: float) -> None:
        """A boot at `now_s`: whatever was half received or half sent is gone with the RAM, the session is the
        default one and security access locked; a lockout the failed attempts in NVM call for starts afresh."""
        self._link.reset()
        self._functional.reset()
        self._ram_attempts = 0   # (security_lockout_in_ram)
        self._enter(DEFAULT_SESSION, now_s)
        self._locked_until_s = now_s + SECURITY_DELAY_S if self._attempts() >= SECURITY_MAX_ATTEMPTS else None

    def _enter(self, session: int, now_s: float) -> None:
        self.session, self.unlocked, self._seed, self._last_request_s = session, False, None, now_s

    def process(self, now_s: float) -> None:
        self._now_s = now_s
        if (self.session != DEFAULT_SESSION and now_s - self._last_request_s >= S3_SERVER_S
                and "session_timeout_ignored" not in self._firmware.bugs):
            self._enter(DEFAULT_SESSION, now_s)
        # A functional request is one single frame, with no timer to run: that link is looked at only when fed
        # (a process() of an idle link costs microseconds in every task, a few percent of a SIL run).
        fed = self._functional.frames_in != self._functional_seen
        self._functional_seen = self._functional.frames_in
        for link in (self._link, self._functional) if fed else (self._link,):
            link.process()
            while (payload := link.recv()) is not None:
                if (payload != SUPPRESSED_TESTER_PRESENT
                        or "tester_present_suppressed_ignored" not in self._firmware.bugs):
                    self._last_request_s = now_s   # any request restarts S3: TesterPresent is there for that
                response = self._answer(payload)
                if response is None or (link is self._functional and response.code in FUNCTIONAL_SILENT_CODES):
                    continue
                self._link.send(response.get_payload())   # the single frame, or a long answer's first, goes now

    def _answer(self, payload: bytes) -> Response | None:
        """The response to one request; None for one that asks for none (suppressPosRspMsgIndicationBit)."""
        if not payload:
            return None   # ISO-TP delivers no empty message; nothing to answer
        request = Request.from_payload(payload)
        service = request.service
        if service is None:   # a service ID udsoncan does not know: the tester still gets an answer
            return _negative(payload[0], Code.ServiceNotSupported)
        answer = {services.DiagnosticSessionControl: self._session, services.TesterPresent: self._tester_present,
                  services.ReadDataByIdentifier: self._read_did, services.ReadDTCInformation: self._read_dtcs,
                  services.ClearDiagnosticInformation: self._clear, services.SecurityAccess: self._security,
                  services.WriteDataByIdentifier: self._write_did}.get(service)
        if answer is None:
            return _negative(service.request_id(), Code.ServiceNotSupported)
        response = answer(request)
        if request.suppress_positive_response and response.code == Code.PositiveResponse:
            return None
        return response

    def _session(self, request: Request) -> Response:
        if request.subfunction not in (DEFAULT_SESSION, EXTENDED_SESSION):
            return Response(service=request.service, code=Code.SubFunctionNotSupported)
        self._enter(request.subfunction, self._now_s)
        timing = struct.pack(">HH", P2_MS, P2_STAR_MS // 10)
        return Response(service=request.service, code=Code.PositiveResponse,
                        data=bytes([request.subfunction]) + timing)

    def _tester_present(self, request: Request) -> Response:
        if request.subfunction != 0:
            return Response(service=request.service, code=Code.SubFunctionNotSupported)
        return Response(service=request.service, code=Code.PositiveResponse, data=b"\x00")

    def _read_did(self, request: Request) -> Response:
        data = request.data or b""
        if len(data) != 2:   # one DID at a time: that is all this server reads
            return Response(service=request.service, code=Code.IncorrectMessageLengthOrInvalidFormat)
        (did,) = struct.unpack(">H", data)
        if did == DID_CELL_OV_TRIP_MV:
            value = struct.pack(">H", round(self._firmware.cal["cell_ov_v"] * 1000.0))
        elif did == DID_SOFTWARE_VERSION:
            value = self._version
        else:
            return Response(service=request.service, code=Code.RequestOutOfRange)
        return Response(service=request.service, code=Code.PositiveResponse, data=data + value)

    def _security(self, request: Request) -> Response:
        """requestSeed or sendKey (SECURITY_LEVEL, SECURITY_LEVEL + 1), in the extended session."""
        level, data = request.subfunction, request.data or b""
        if level not in (SECURITY_LEVEL, SECURITY_LEVEL + 1):
            return Response(service=request.service, code=Code.SubFunctionNotSupported)
        if self.session == DEFAULT_SESSION:
            return Response(service=request.service, code=Code.ServiceNotSupportedInActiveSession)
        if level == SECURITY_LEVEL:
            return self._request_seed(request)
        if self._seed is None:   # a key with no seed asked for, or the seed's one key already sent
            return Response(service=request.service, code=Code.RequestSequenceError)
        if len(data) != SEED_BYTES:
            return Response(service=request.service, code=Code.IncorrectMessageLengthOrInvalidFormat)
        expected, self._seed = reference_security_key(self._seed, SECURITY_LEVEL), None
        if data == expected:
            self.unlocked = True
            self._save_attempts(0)
            return Response(service=request.service, code=Code.PositiveResponse, data=bytes([level]))
        attempts = self._attempts() + 1
        self._save_attempts(attempts)
        if attempts >= SECURITY_MAX_ATTEMPTS and "security_attempts_unlimited" not in self._firmware.bugs:
            self._locked_until_s = self._now_s + SECURITY_DELAY_S
            return Response(service=request.service, code=Code.ExceedNumberOfAttempts)
        return Response(service=request.service, code=Code.InvalidKey)

    def _request_seed(self, request: Request) -> Response:
        if request.data:
            return Response(service=request.service, code=Code.IncorrectMessageLengthOrInvalidFormat)
        if self._locked_until_s is not None:
            if self._now_s < self._locked_until_s:
                return Response(service=request.service, code=Code.RequiredTimeDelayNotExpired)
            self._locked_until_s = None
            self._save_attempts(SECURITY_MAX_ATTEMPTS - 1)   # one more try, then the next delay
        if self.unlocked:   # ISO 14229-1: an unlocked server answers a zero seed
            return Response(service=request.service, code=Code.PositiveResponse,
                            data=bytes([request.subfunction]) + bytes(SEED_BYTES))
        if "security_seed_constant" in self._firmware.bugs:
            self._seed = CONSTANT_SEED
        else:
            self._seed = self._seeds.randrange(1, 1 << 8 * SEED_BYTES).to_bytes(SEED_BYTES, "big")
        return Response(service=request.service, code=Code.PositiveResponse,
                        data=bytes([request.subfunction]) + self._seed)

    def _attempts(self) -> int:
        """Failed keys in a row: in NVM (RAM with security_lockout_in_ram, where a reset forgets them)."""
        if "security_lockout_in_ram" in self._firmware.bugs:
            return self._ram_attempts
        return int(self._firmware.nvm.get("security_attempts", 0))

    def _save_attempts(self, attempts: int) -> None:
        if "security_lockout_in_ram" in self._firmware.bugs:
            self._ram_attempts = attempts
        elif attempts != self._attempts():   # a data-flash write only when it changes
            self._firmware.nvm["security_attempts"] = attempts

    def _write_did(self, request: Request) -> Response:
        data = request.data or b""
        if len(data) < 3:
            return Response(service=request.service, code=Code.IncorrectMessageLengthOrInvalidFormat)
        (did,) = struct.unpack(">H", data[:2])
        if did != DID_CELL_OV_TRIP_MV:
            return Response(service=request.service, code=Code.RequestOutOfRange)
        if self.session == DEFAULT_SESSION:
            return Response(service=request.service, code=Code.ServiceNotSupportedInActiveSession)
        if not self.unlocked and "write_checks_session_only" not in self._firmware.bugs:
            return Response(service=request.service, code=Code.SecurityAccessDenied)
        if len(data) != 4:
            return Response(service=request.service, code=Code.IncorrectMessageLengthOrInvalidFormat)
        if not self._firmware.set_cell_ov_trip(struct.unpack(">H", data[2:])[0] / 1000.0):
            return Response(service=request.service, code=Code.RequestOutOfRange)
        return Response(service=request.service, code=Code.PositiveResponse, data=data[:2])

    def _read_dtcs(self, request: Request) -> Response:
        data, subfunction = request.data or b"", request.subfunction
        if subfunction not in (0x01, 0x02, 0x04, 0x06):
            return Response(service=request.service, code=Code.SubFunctionNotSupported)
        if len(data) != (1 if subfunction in (0x01, 0x02) else 4):   # a status mask; a DTC and a record number
            return Response(service=request.service, code=Code.IncorrectMessageLengthOrInvalidFormat)
        if subfunction in (0x04, 0x06):
            return self._dtc_records(request, int.from_bytes(data[:3], "big"), data[3])
        matching = sorted((code, status) for code, status in self._firmware.dtcs.items() if status & data[0])
        head = bytes([subfunction, DTC_LATCHED_STATUS])   # the status bits this server ever sets
        if subfunction == 0x01:   # format 0x01: ISO 14229-1's own DTC format (ISO_14229-1_DTCFormat)
            return Response(service=request.service, code=Code.PositiveResponse,
                            data=head + struct.pack(">BH", 0x01, len(matching)))
        records = b"".join(code.to_bytes(3, "big") + bytes([status]) for code, status in matching)
        return Response(service=request.service, code=Code.PositiveResponse, data=head + records)

    def _dtc_records(self, request: Request, code: int, record: int) -> Response:
        """0x04: the DTC's snapshot records (each: its number, how many DIDs, each DID and its value); 0x06: its
        extended data record (the occurrence counter). A DTC that never failed has none: its DTC and status only."""
        firmware, snapshots = self._firmware, request.subfunction == 0x04
        known = (SNAPSHOT_FIRST, SNAPSHOT_LATEST) if snapshots else (OCCURRENCE_RECORD,)
        if code not in firmware.dtc_table.values() or record not in (*known, UDS_ALL_RECORDS):
            return Response(service=request.service, code=Code.RequestOutOfRange)
        body = bytearray([request.subfunction, *code.to_bytes(3, "big"), firmware.dtcs.get(code, 0)])
        if snapshots:
            for number, values in sorted(firmware.snapshot_records(code).items()):
                if record in (number, UDS_ALL_RECORDS):
                    body += bytes([number, len(SNAPSHOT_DIDS)])
                    for name, did in SNAPSHOT_DIDS.items():
                        body += did.did.to_bytes(2, "big") + did.encode(values[name])
        elif count := firmware.dtc_occurrences.get(code, 0):
            body += bytes([OCCURRENCE_RECORD, count])
        return Response(service=request.service, code=Code.PositiveResponse, data=bytes(body))

    def _clear(self, request: Request) -> Response:
        data = request.data or b""
        if len(data) != 3:
            return Response(service=request.service, code=Code.IncorrectMessageLengthOrInvalidFormat)
        if int.from_bytes(data, "big") != UDS_ALL_DTCS:
            return Response(service=request.service, code=Code.RequestOutOfRange)
        self._firmware.clear_dtcs()
        return Response(service=request.service, code=Code.PositiveResponse)


def _negative(service_id: int, code: int) -> Response:
    """7F <service> <code>, for a service this server does not know by udsoncan's classes."""
    return _Raw(bytes([0x7F, service_id, code]))


class _Raw:
    """A response given as its bytes."""

    def __init__(self, payload: bytes):
        self.payload, self.code = payload, payload[2]

    def get_payload(self) -> bytes:
        return self.payload
