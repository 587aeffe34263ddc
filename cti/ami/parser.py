"""AMI framing with no I/O: ``feed(bytes)`` then iterate the complete messages.

Frames are split on ``\\r\\n\\r\\n`` at the byte level *before* decoding, so a multi-byte UTF-8
character cut by a TCP read boundary is never lost (panoramisk 1.4 decodes each read on its
own with errors ignored: "张伟" arrived as "伟"). A frame is decoded once it is whole; bytes that
are not UTF-8 become U+FFFD instead of vanishing.

Events that carry no state we need (``VarSet``, ``Newexten``, ``AGIExec*``, RTCP and security
noise: most of the traffic) are dropped before they are decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)

EOL = b"\r\n"
EOM = b"\r\n\r\n"
BANNER = b"Asterisk Call Manager/"
MAX_FRAME = 256 * 1024  # a CoreShowChannel event is < 1 KiB; anything this big is garbage

Message = dict[str, str]

DEFAULT_DROP = frozenset(
    {
        b"VarSet",
        b"Newexten",
        b"AGIExecStart",
        b"AGIExecEnd",
        b"RTCPSent",
        b"RTCPReceived",
        b"ChallengeSent",
        b"SuccessfulAuth",
        b"NewConnectedLine",
        b"NewCallerid",
        b"DTMFBegin",
        b"DTMFEnd",
        b"NewAccountCode",
        b"LocalBridge",
        b"LocalOptimizationBegin",
        b"LocalOptimizationEnd",
    }
)


class FrameTooLarge(ValueError):
    pass


def parse_frame(text: str) -> Message:
    """Parse one decoded AMI message (without its closing blank line) into a dict.

    Repeated keys (``ChanVariable``, ``Output``) are joined with a newline, keeping all
    values. Lines without a colon are kept under ``""`` (command output of old versions).
    Raises ``ValueError`` for text that is not an AMI message at all.
    """
    msg: Message = {}
    for line in text.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            msg[""] = msg[""] + "\n" + line if "" in msg else line
            continue
        if value.startswith(" "):
            value = value[1:]
        if key in msg:
            msg[key] = msg[key] + "\n" + value
        else:
            msg[key] = value
    if "Event" not in msg and "Response" not in msg:
        raise ValueError(f"not an AMI event or response: {text[:80]!r}")
    return msg


class AmiParser:
    """Incremental AMI parser.

    ``drop`` is a set of event names (bytes) skipped without decoding. Malformed frames are
    logged, counted in ``errors`` and skipped; the stream goes on.
    """

    __slots__ = ("_buf", "_drop", "banner", "dropped", "errors", "max_frame", "_pending")

    def __init__(self, drop: frozenset[bytes] = DEFAULT_DROP, max_frame: int = MAX_FRAME) -> None:
        self._buf = b""
        self._drop = drop
        self.max_frame = max_frame
        self.banner: str | None = None
        self.dropped = 0
        self.errors = 0
        self._pending: list[Message] = []

    def feed(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if self.banner is None and buf:
            if not BANNER.startswith(buf[: len(BANNER)]):
                # Not an Asterisk banner: treat the stream as headerless (tests, proxies).
                self.banner = ""
            else:
                end = buf.find(EOL)
                if end < 0:
                    self._buf = buf
                    return
                self.banner = buf[:end].decode("utf-8", "replace")
                buf = buf[end + 2 :]
        start = 0
        drop = self._drop
        pending = self._pending
        while True:
            end = buf.find(EOM, start)
            if end < 0:
                break
            frame = buf[start:end]
            start = end + 4
            if frame.startswith(b"Event: "):
                nl = frame.find(EOL)
                name = frame[7:nl] if nl > 0 else frame[7:]
                if name in drop:
                    self.dropped += 1
                    continue
            if not frame.strip():
                continue
            try:
                pending.append(parse_frame(frame.decode("utf-8", "replace")))
            except ValueError as exc:
                self.errors += 1
                log.warning("dropping malformed AMI frame: %s", exc)
        rest = buf[start:]
        if len(rest) > self.max_frame:
            # An unterminated frame this large is not AMI: drop it rather than grow forever.
            self.errors += 1
            log.error("dropping %d bytes of unterminated AMI data", len(rest))
            rest = b""
        self._buf = rest

    def __iter__(self) -> Iterator[Message]:
        return self.messages()

    def messages(self) -> Iterator[Message]:
        pending = self._pending
        while pending:
            batch = pending[:]
            pending.clear()
            yield from batch

    def take(self) -> list[Message]:
        """All complete messages so far (cheaper than iterating for the hot path)."""
        batch = self._pending
        self._pending = []
        return batch
