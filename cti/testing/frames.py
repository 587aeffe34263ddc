"""AMI framing for the simulator and the replay server: bytes in, messages out, no I/O.

An AMI message is a block of ``Key: Value`` lines ended by CRLF and closed by an empty line
(``\\r\\n\\r\\n``). The one exception is the banner (``Asterisk Call Manager/11.0.0\\r\\n``), a
single line sent on connect. Headers may repeat (``Variable:`` in Originate), so a message is an
ordered list of pairs, not a dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Pairs = list[tuple[str, str]]

BANNER_PREFIX = b"Asterisk Call Manager/"
TERMINATOR = b"\r\n\r\n"


class AmiFrameParser:
    """Split a byte stream into whole AMI messages (bytes, terminator included).

    UTF-8 is only decoded by the caller once a message is whole, so a multi-byte character cut
    in half by TCP never reaches a decoder.
    """

    def __init__(self, *, expect_banner: bool = False) -> None:
        self._buffer = bytearray()
        self._expect_banner = expect_banner

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        if self._expect_banner:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return
            self._expect_banner = False
            banner = bytes(self._buffer[: end + 2])
            del self._buffer[: end + 2]
            yield banner
        while True:
            end = self._buffer.find(TERMINATOR)
            if end < 0:
                return
            message = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            # Clients may send stray CRLFs between actions; Asterisk skips them too.
            if message.strip():
                yield message

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)


def parse_message(raw: bytes | str) -> Pairs:
    """Return the ``(key, value)`` pairs of one message, in order.

    A line without ``": "`` (Asterisk accepts ``Key:Value``) is split at the first colon; a line
    without a colon is dropped, as manager.c does.
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    pairs: Pairs = []
    for line in text.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        pairs.append((key.strip(), value[1:] if value.startswith(" ") else value))
    return pairs


def format_message(pairs: Iterable[tuple[str, object]]) -> bytes:
    """Render pairs the way Asterisk writes them: ``Key: Value\\r\\n`` ... ``\\r\\n``."""
    out = "".join(f"{key}: {value}\r\n" for key, value in pairs)
    return (out + "\r\n").encode("utf-8")


def header(pairs: Pairs, name: str, default: str | None = None) -> str | None:
    """First value of a header, matched case-insensitively like manager.c's astman_get_header."""
    lowered = name.lower()
    for key, value in pairs:
        if key.lower() == lowered:
            return value
    return default


def headers_all(pairs: Pairs, name: str) -> list[str]:
    lowered = name.lower()
    return [value for key, value in pairs if key.lower() == lowered]


def event_name(pairs: Pairs) -> str | None:
    return header(pairs, "Event")
