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

The reference BMS answers on UDS_BmsRequest / UDS_BmsResponse (0x7E0 / 0x7E8) with the DTCs of
`hil.protocol.DTCS`; a DUT map's `[uds]` names a BMS's own messages and DTCs. A negative response raises
`UdsRefused` naming the service and ISO 14229-1's name for the code; no response within `timeout_s` of bench
time raises `HilTimeout` saying what came.
"""
from __future__ import annotations

import struct

from udsoncan import Dtc, Request, Response, services

from hil.can.isotp_link import IsoTpLink
from hil.errors import HilError
from hil.protocol import DID_SOFTWARE_VERSION, DTCS, UDS_ALL_DTCS

DEFAULT_TIMEOUT_S = 1.0   # bench time for an answer: P2 (50 ms) many times over, for a slow adapter
ALL_STATUS_BITS = 0xFF
REFERENCE = {"request_message": "UDS_BmsRequest", "response_message": "UDS_BmsResponse",
             "software_version_did": DID_SOFTWARE_VERSION, "dtcs": DTCS}


def make_uds_client(dut_map, monitor, sender, loop) -> UdsClient | None:
    """The tester for the rig's BMS: a DUT map's `[uds]`, or the reference BMS's where the rig's DBCs have its
    diagnostic messages; None for a BMS the harness has no UDS for."""
    if dut_map is not None:
        return UdsClient(monitor, sender, loop, **dut_map.uds) if dut_map.uds is not None else None
    names = {message.name for message in sender.db.messages}
    if not {REFERENCE["request_message"], REFERENCE["response_message"]} <= names:
        return None
    return UdsClient(monitor, sender, loop, **REFERENCE)


class UdsRefused(HilError):
    """The BMS answered a UDS request with a negative response."""


class UdsClient:
    """A tester on the bench's bus: requests go out as `request_message`'s frames (through `sender`, so the CAN
    log has them), answers come as `response_message`'s (through `monitor`'s tap), while `loop` runs."""

    def __init__(self, monitor, sender, loop, request_message: str, response_message: str, *,
                 software_version_did: int, dtcs: dict[str, int]):
        self._sender, self._loop = sender, loop
        self.request_message, self.response_message = request_message, response_message
        self.software_version_did = software_version_did
        self.dtcs = dict(dtcs)   # fault name -> DTC, as the BMS numbers them
        self._names = {code: name for name, code in self.dtcs.items()}
        db = sender.db
        self._link = IsoTpLink(db.get_message_by_name(request_message).frame_id,
                               db.get_message_by_name(response_message).frame_id,
                               lambda frame: sender.send_frame(request_message, frame))
        monitor.tap(response_message, self._link.feed)

    # UDS ----------------------------------------------------------------------------------------------------
    def request(self, request: Request, timeout_s: float = DEFAULT_TIMEOUT_S) -> Response:
        """Send `request` and wait for its positive response; a responsePending answer waits again."""
        name = request.service.get_name() if request.service else "request"
        link = self._link
        link.reset()   # a half-received answer to an earlier request that timed out is not this one's
        link.send(request.get_payload())
        answers: list[bytes] = []

        def answered() -> bool:   # on each loop tick while the request waits
            link.process()
            if (payload := link.recv()) is not None:
                answers.append(payload)
            return bool(answers)

        while True:
            heard = link.frames_in
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
                                 f"({response.code_name})")

    def session(self, session: int) -> None:
        """DiagnosticSessionControl: 1 default, 3 extended."""
        self.request(services.DiagnosticSessionControl.make_request(session))

    def tester_present(self) -> None:
        self.request(services.TesterPresent.make_request())

    def read_did(self, did: int) -> bytes:
        """ReadDataByIdentifier of one DID: its value's bytes."""
        response = self.request(Request(service=services.ReadDataByIdentifier, data=struct.pack(">H", did)))
        data = response.data or b""
        if data[:2] != struct.pack(">H", did):
            raise UdsRefused(f"ReadDataByIdentifier 0x{did:04X}: the BMS answered for "
                             f"0x{int.from_bytes(data[:2], 'big'):04X}")
        return data[2:]

    def software_version(self) -> str:
        """The build the BMS says it runs, from its software-version DID (0xF189 by default), as text."""
        return self.read_did(self.software_version_did).decode("ascii", "replace").strip("\x00 ")

    def read_dtcs(self, status_mask: int = ALL_STATUS_BITS) -> dict[int, int]:
        """ReadDTCInformation 0x02: every stored DTC whose status has a bit of `status_mask`, with its status."""
        response = self.request(services.ReadDTCInformation.make_request(subfunction=0x02, status_mask=status_mask))
        services.ReadDTCInformation.interpret_response(response, subfunction=0x02)
        return {dtc.id: dtc.status.get_byte_as_int() for dtc in response.service_data.dtcs}

    def clear_dtcs(self) -> None:
        """ClearDiagnosticInformation of every group."""
        self.request(services.ClearDiagnosticInformation.make_request(UDS_ALL_DTCS))

    def describe(self, code: int, status: int | None = None) -> str:
        """'cell_ov (P1A00-00)', or the code alone for a DTC the map does not name; with its status if given."""
        text = Dtc(code).id_iso()
        text = f"{self._names[code]} ({text})" if code in self._names else text
        return text if status is None else f"{text} status 0x{status:02X}"
