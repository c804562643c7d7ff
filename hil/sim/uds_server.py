"""The reference BMS's diagnostic server: UDS (ISO 14229) over ISO-TP (ISO 15765-2) on its CAN bus.

It answers a tester's requests (UDS_BmsRequest, 0x7E0) on UDS_BmsResponse (0x7E8):

- DiagnosticSessionControl (0x10): the default (1) and extended (3) sessions, with its P2 and P2* times;
- TesterPresent (0x3E);
- ReadDataByIdentifier (0x22): 0xF189, the software version ("1.2.0", as BMS_Version says it);
- ReadDTCInformation (0x19): 0x01 the number of DTCs whose status matches a mask, 0x02 the DTCs themselves,
  0x04 a DTC's snapshot records (the first occurrence's and the latest's, `hil.protocol.SNAPSHOT_DIDS`), 0x06 its
  extended data record (0x01: how many times its error has latched since the last clear);
- ClearDiagnosticInformation (0x14), group 0xFFFFFF: every DTC.

Anything else gets the negative response ISO 14229-1 gives for it: serviceNotSupported,
subFunctionNotSupported, requestOutOfRange or incorrectMessageLengthOrInvalidFormat. can-isotp segments and
reassembles (a DTC list longer than one frame goes out as a first frame, waits for the tester's flow control,
then as consecutive frames), and udsoncan parses the requests and builds the responses. The server runs in the
firmware's 10 ms task, so an answer comes within a task or two (P2 is 50 ms).

The DTC memory (one status byte per DTC of `hil.protocol.DTCS`, its snapshots and occurrence counter) is the
firmware's to keep: see `BmsFirmware._update_dtcs`.
"""
from __future__ import annotations

import struct

from udsoncan import Request, Response, services

from hil.can.isotp_link import IsoTpLink
from hil.protocol import (DID_SOFTWARE_VERSION, DTC_LATCHED_STATUS, OCCURRENCE_RECORD, SNAPSHOT_DIDS, SNAPSHOT_FIRST,
                          SNAPSHOT_LATEST, UDS_ALL_DTCS, UDS_ALL_RECORDS, UDS_REQUEST_ID, UDS_RESPONSE_ID)

P2_MS = 50          # the server's answer time, as DiagnosticSessionControl reports it
P2_STAR_MS = 2000   # after a responsePending (never sent here)

Code = Response.Code


class UdsServer:
    """`on_frame` takes the tester's ISO-TP frames; `process()` answers them, from the firmware's task.
    `firmware` keeps the DTC memory (`dtcs`: DTC -> status byte; `clear_dtcs()`)."""

    def __init__(self, firmware, sender, version_text: str):
        self._firmware = firmware
        self._version = version_text.encode("ascii")
        self._link = IsoTpLink(UDS_RESPONSE_ID, UDS_REQUEST_ID,
                               lambda frame: sender.send_frame("UDS_BmsResponse", frame))

    def on_frame(self, msg) -> None:
        self._link.feed(msg)

    def reset(self) -> None:
        """A boot: whatever was half received or half sent is gone with the RAM."""
        self._link.reset()

    def process(self) -> None:
        self._link.process()
        while (payload := self._link.recv()) is not None:
            response = self._answer(payload)
            if response is not None:
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
                  services.ClearDiagnosticInformation: self._clear}.get(service)
        if answer is None:
            return _negative(service.request_id(), Code.ServiceNotSupported)
        response = answer(request)
        if request.suppress_positive_response and response.code == Code.PositiveResponse:
            return None
        return response

    def _session(self, request: Request) -> Response:
        if request.subfunction not in (1, 3):
            return Response(service=request.service, code=Code.SubFunctionNotSupported)
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
        if did != DID_SOFTWARE_VERSION:
            return Response(service=request.service, code=Code.RequestOutOfRange)
        return Response(service=request.service, code=Code.PositiveResponse,
                        data=data + self._version)

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
