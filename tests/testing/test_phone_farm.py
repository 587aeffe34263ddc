"""The load bench's phone farm (``tests/asterisk/farm.py``): its SIP parsing and digest."""

from __future__ import annotations

from tests.asterisk.farm import Sip, challenge, digest, uri_of


def test_digest_matches_rfc_2617s_worked_example() -> None:
    # RFC 2617 section 3.5
    assert (
        digest("Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
               "dcd98b7102dd2f0e8b11d0f600bfb0c093", "0a4f113b", "00000001", "auth")
        == "6629fae49393a05397450978507c4ef1"
    )  # fmt: skip


def test_an_asterisk_challenge_is_read_with_its_quoted_commas() -> None:
    params = challenge(
        'Digest realm="asterisk",nonce="1733-abc,def",opaque="5f2e",algorithm=MD5,qop="auth"'
    )
    assert params == {
        "realm": "asterisk", "nonce": "1733-abc,def", "opaque": "5f2e", "algorithm": "MD5",
        "qop": "auth",
    }  # fmt: skip


def test_a_request_with_compact_and_folded_headers() -> None:
    raw = (
        b"INVITE sip:20001@127.0.0.3:5060 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK2\r\n"
        b'f: "12345" <sip:12345@127.0.0.1>;tag=a\r\n'
        b"To: <sip:20001@127.0.0.3>\r\n"
        b"Call-ID: x@y\r\nCSeq: 102 INVITE\r\n"
        b"Contact: <sip:asterisk@127.0.0.1:5060>\r\n Subject: folded\r\n"
        b"Content-Length: 3\r\n\r\nabc"
    )
    msg = Sip.parse(raw)
    assert msg is not None and msg.is_request and msg.method == "INVITE"
    assert msg.all("via") == ["SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1",
                              "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK2"]  # fmt: skip
    assert msg.get("from") == '"12345" <sip:12345@127.0.0.1>;tag=a'
    assert msg.cseq_method == "INVITE" and msg.body == b"abc"
    assert msg.get("contact") == "<sip:asterisk@127.0.0.1:5060> Subject: folded"
    assert uri_of(msg.get("contact")) == "sip:asterisk@127.0.0.1:5060"
    assert Sip.parse(b"SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\n\r\n").status == 401  # type: ignore[union-attr]
    assert Sip.parse(b"no end of headers") is None
