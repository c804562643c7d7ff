"""The slcan command parser alone: every line is answered, garbage never raises, frames survive it."""

import can
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.serial.slcan import BEL, MAX_LINE_BYTES, OK, SlcanCommandParser, format_frame_line

FUZZ = settings(max_examples=200, deadline=None)


def opened_parser() -> SlcanCommandParser:
    parser = SlcanCommandParser()
    assert parser.feed(b"S6\rO\r") == (OK + OK, [])
    return parser


def reply_count(replies: bytes) -> int:
    return replies.count(OK) + replies.count(BEL)


frames = st.builds(
    lambda is_extended_id, is_remote, raw_id, data: can.Message(
        arbitration_id=raw_id & (0x1FFFFFFF if is_extended_id else 0x7FF),
        is_extended_id=is_extended_id,
        is_remote_frame=is_remote,
        dlc=len(data),
        data=None if is_remote else data,
    ),
    st.booleans(),
    st.booleans(),
    st.integers(0, 0x1FFFFFFF),
    st.binary(max_size=8),
)


@FUZZ
@given(st.binary(max_size=400))
def test_every_line_gets_exactly_one_reply(data):
    parser = opened_parser()
    replies, _ = parser.feed(data)
    assert reply_count(replies) == data.count(OK)


@FUZZ
@given(st.binary(max_size=200), frames)
def test_valid_frame_after_garbage_is_received(garbage, frame):
    parser = opened_parser()
    parser.feed(garbage + OK)
    # Garbage may have closed the channel or switched to listen-only; a host would reopen it.
    parser.feed(b"C\rO\r")
    replies, received = parser.feed(format_frame_line(frame))
    assert replies == (b"Z\r" if frame.is_extended_id else b"z\r")
    assert len(received) == 1 and received[0].equals(frame, timestamp_delta=None)


@FUZZ
@given(st.lists(frames, max_size=5), st.data())
def test_chunking_does_not_change_the_result(frame_list, data):
    stream = b"".join(format_frame_line(frame) for frame in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    whole_replies, whole_frames = opened_parser().feed(stream)
    chunked = opened_parser()
    chunk_replies, chunk_frames = b"", []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        replies, received = chunked.feed(stream[start:end])
        chunk_replies += replies
        chunk_frames += received
    assert chunk_replies == whole_replies
    assert [f.arbitration_id for f in chunk_frames] == [f.arbitration_id for f in whole_frames]


def test_overlong_line_is_one_bad_command_and_parsing_resumes():
    parser = opened_parser()
    replies, received = parser.feed(b"t" * (10 * MAX_LINE_BYTES) + b"\rt1230\r")
    assert replies == BEL + b"z\r"
    assert [msg.arbitration_id for msg in received] == [0x123]
    assert parser.counters["bad_commands"] == 1


def test_setup_commands_only_while_closed():
    parser = SlcanCommandParser()
    assert parser.feed(b"S4\rZ1\rs031C\r") == (OK * 3, [])
    assert (parser.bitrate_bps, parser.timestamps_on) == (125_000, True)
    assert parser.feed(b"O\rO\rS6\rZ0\r")[0] == OK + OK + BEL + BEL
    assert (parser.bitrate_bps, parser.timestamps_on) == (125_000, True)


def test_frames_are_rejected_while_closed_or_listen_only():
    parser = SlcanCommandParser()
    assert parser.feed(b"t1230\r") == (BEL, [])
    assert parser.feed(b"L\rt1230\r") == (OK + BEL, [])
    assert parser.counters["dropped_closed"] == 2
    assert parser.counters["bad_commands"] == 0


def test_malformed_frames_are_bad_commands():
    parser = opened_parser()
    malformed = [b"t8000", b"t12", b"t1239", b"t1232AA", b"t1231ZZ", b"T200000000", b"r1231AA", b"t+230"]
    replies, received = parser.feed(OK.join(malformed) + OK)
    assert replies == BEL * len(malformed) and received == []
    assert parser.counters["bad_commands"] == len(malformed)


def test_queries_and_fd_commands():
    parser = opened_parser()
    replies, _ = parser.feed(b"V\rv\rN\rF\r\rd1230\rY2\r")
    assert replies == b"V0101\r" + b"v0101\r" + b"NHIL0\r" + b"F00\r" + OK + BEL + BEL


def test_frame_line_carries_timestamp_when_asked():
    msg = can.Message(arbitration_id=0x12, is_extended_id=False, data=b"\x01")
    assert format_frame_line(msg) == b"t012101\r"
    assert format_frame_line(msg, timestamp_ms=60_001) == b"t0121010001\r"
