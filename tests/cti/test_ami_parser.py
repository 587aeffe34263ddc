"""AMI framing: byte-level splitting, UTF-8 across reads, bad frames, size limits."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from cti.ami.parser import AmiParser, parse_frame
from cti.testing import fixture_path

NEWCHANNEL = (
    "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-00000019\r\n"
    "CallerIDNum: 13800000001\r\nCallerIDName: 张三\r\nUniqueid: 1795317420.29\r\n"
    "Linkedid: 1795317420.29\r\n\r\n"
).encode()


def test_banner_then_messages() -> None:
    p = AmiParser()
    p.feed(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: 1\r\n\r\n")
    assert p.banner == "Asterisk Call Manager/11.0.0"
    assert p.take() == [{"Response": "Success", "ActionID": "1"}]


def test_every_split_point_keeps_the_chinese_name() -> None:
    """panoramisk 1.4 decodes each TCP read alone with errors ignored: a read boundary inside
    "张" lost the character. Framing bytes first makes every split harmless."""
    for cut in range(1, len(NEWCHANNEL)):
        p = AmiParser(drop=frozenset())
        p.feed(NEWCHANNEL[:cut])
        p.feed(NEWCHANNEL[cut:])
        (msg,) = p.take()
        assert msg["CallerIDName"] == "张三", cut


def test_panoramisk_stock_protocol_loses_split_characters() -> None:
    """The defect we work around, reproduced on panoramisk's own protocol."""
    from panoramisk.ami_protocol import AMIProtocol

    got = []

    class Factory:
        def dispatch(self, message):  # noqa: ANN001
            got.append(message)

    proto = AMIProtocol()
    proto.connection_made(transport=None)
    proto.factory = Factory()
    proto.encoding = "utf8"
    cut = NEWCHANNEL.index("张".encode()) + 1
    proto.data_received(NEWCHANNEL[:cut])
    proto.data_received(NEWCHANNEL[cut:])
    assert got and got[0]["CallerIDName"] != "张三"


def test_malformed_frame_is_dropped_and_stream_goes_on() -> None:
    p = AmiParser()
    p.feed(b"garbage without colon\r\nmore\r\n\r\n" + NEWCHANNEL)
    msgs = p.take()
    assert len(msgs) == 1 and msgs[0]["Event"] == "Newchannel"
    assert p.errors == 1


def test_oversized_unterminated_data_is_refused() -> None:
    p = AmiParser(max_frame=1024)
    p.feed(b"Event: X\r\n" + b"A: " + b"x" * 5000)
    assert p.errors == 1
    p.feed(b"\r\n\r\n" + NEWCHANNEL)
    # The tail of the oversized frame is garbage without an Event/Response: dropped too.
    assert [m["Event"] for m in p.take()] == ["Newchannel"]


def test_noise_events_are_dropped_before_decoding() -> None:
    p = AmiParser()
    p.feed(b"Event: VarSet\r\nVariable: X\r\n\r\n" + NEWCHANNEL)
    assert [m["Event"] for m in p.take()] == ["Newchannel"]
    assert p.dropped == 1


def test_repeated_headers_are_kept() -> None:
    msg = parse_frame("Event: X\r\nChanVariable: A=1\r\nChanVariable: B=2")
    assert msg["ChanVariable"] == "A=1\nB=2"


def test_whole_transcripts_parse_like_the_recording() -> None:
    """Every `in` message of every transcript comes out of the parser as recorded."""
    for path in sorted(fixture_path("").glob("*.ami.jsonl")):
        p = AmiParser(drop=frozenset())
        expected = []
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            entry = json.loads(line)
            if entry["dir"] == "in" and entry["data"]:
                p.feed(entry["data"].encode())
                if entry["data"].startswith(("Event:", "Response:")):
                    expected.append(entry["data"].split("\r\n", 1)[0].split(": ", 1)[1])
        got = [m.get("Event") or m.get("Response") for m in p.take()]
        assert got == expected, path.name
        assert p.errors == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_never_raises(chunks: list[bytes]) -> None:
    p = AmiParser(max_frame=4096)
    for c in chunks:
        p.feed(c)
    for msg in p.take():
        assert "Event" in msg or "Response" in msg
