"""A floor of SIP phones in one process, for loads the rig's baresip phones cannot carry.

    python -m tests.asterisk.farm --accounts FILE --pbx HOST:PORT --bind IP:PORT
                                  --talk MIN,MAX [--answer-delay 0.2]

``FILE`` is JSON ``{"8001": "password", ...}``. Every account registers (digest auth, one UDP
socket for all of them, so Asterisk's ``rewrite_contact`` points every seat here), answers
Asterisk's qualify (OPTIONS), and answers each INVITE after ``--answer-delay`` with a
200 OK offering PCMU; once the ACK comes, it talks a time drawn uniformly from ``--talk`` and
hangs up with a BYE, as an agent ending the call would. A BYE or CANCEL from Asterisk ends
the call first. No media is sent (the load is signalling and the CTI), and RTP that arrives
is read and dropped.

It prints one JSON line when every account is registered (``{"registered": n}``) and, on
SIGTERM or when its stdin closes, one with its counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass, field

COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
}


@dataclass
class Sip:
    """One SIP message: the first line, the headers in order (lower-case names) and the body."""

    first: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> Sip | None:
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.decode("utf-8", "replace").split("\r\n")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:  # folded
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())
                continue
            name, colon, value = line.partition(":")
            if colon:
                key = name.strip().lower()
                headers.append((COMPACT.get(key, key), value.strip()))
        return cls(lines[0], headers, body)

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def is_request(self) -> bool:
        return not self.first.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0]

    @property
    def status(self) -> int:
        return int(self.first.split(" ", 2)[1])

    @property
    def cseq_method(self) -> str:
        return self.get("cseq").split()[-1]


def digest(
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    cnonce: str = "",
    nc: str = "",
    qop: str = "",
) -> str:
    """RFC 2617's response (MD5), with ``qop=auth`` when given."""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest is MD5

    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if qop:
        return md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5(f"{ha1}:{nonce}:{ha2}")


def challenge(header: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` challenge."""
    _, _, rest = header.partition(" ")
    out: dict[str, str] = {}
    for part in _split_params(rest):
        key, _, value = part.partition("=")
        out[key.strip().lower()] = value.strip().strip('"')
    return out


def _split_params(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return parts


def uri_of(header: str) -> str:
    """The URI in a From/To/Contact header value."""
    if "<" in header:
        return header.split("<", 1)[1].split(">", 1)[0]
    return header.split(";", 1)[0].strip()


@dataclass
class Dialog:
    call_id: str
    ext: str
    invite: Sip
    local_tag: str
    remote: str  # the Contact of Asterisk's INVITE: where in-dialog requests go
    state: str = "ringing"  # ringing, answered, talking, ending, over
    last_response: bytes = b""
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class Farm(asyncio.DatagramProtocol):
    def __init__(
        self,
        accounts: dict[str, str],
        pbx: tuple[str, int],
        talk: tuple[float, float],
        answer_delay: float,
        seed: int,
    ) -> None:
        self.accounts = accounts
        self.pbx = pbx
        self.talk = talk
        self.answer_delay = answer_delay
        self.rng = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.local = ("127.0.0.1", 0)
        self.dialogs: dict[str, Dialog] = {}
        self.media_port = 0  # the phones' RTP port, in every answer's SDP
        self.registering: dict[str, asyncio.Future[Sip]] = {}  # REGISTER's call-id -> answer
        self.byes: dict[str, asyncio.TimerHandle] = {}  # call-id of our BYE -> retransmit
        self.counts = {
            "registered": 0,
            "options": 0,
            "invites": 0,
            "answered": 0,
            "byes_sent": 0,
            "byes_received": 0,
            "cancelled": 0,
            "bye_unanswered": 0,
            "malformed": 0,
        }
        self.loop = asyncio.get_event_loop()

    # --- transport ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.local = transport.get_extra_info("sockname")[:2]

    def send(self, text: str, body: bytes = b"") -> bytes:
        data = text.replace("\n", "\r\n").encode() + body
        assert self.transport is not None
        self.transport.sendto(data, self.pbx)
        return data

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data in (b"\r\n\r\n", b"\r\n"):  # keep-alive
            return
        msg = Sip.parse(data)
        if msg is None:
            self.counts["malformed"] += 1
            return
        try:
            if msg.is_request:
                self.request(msg)
            else:
                self.response(msg)
        except (IndexError, ValueError, KeyError):
            self.counts["malformed"] += 1

    def branch(self) -> str:
        return f"z9hG4bK-{os.urandom(6).hex()}"

    def via(self) -> str:
        return f"SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch={self.branch()};rport"

    def reply(
        self,
        req: Sip,
        code: int,
        reason: str,
        *,
        to_tag: str = "",
        sdp: bool = False,
        ext: str = "",
    ) -> bytes:
        to = req.get("to")
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in req.all("via")]
        lines += [
            f"From: {req.get('from')}",
            f"To: {to}",
            f"Call-ID: {req.get('call-id')}",
            f"CSeq: {req.get('cseq')}",
        ]
        if ext:
            lines.append(f"Contact: <sip:{ext}@{self.local[0]}:{self.local[1]}>")
        body = b""
        if sdp:
            body = self.sdp()
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return self.send("\n".join(lines) + "\n\n", body)

    def sdp(self) -> bytes:
        ip = self.local[0]
        return (
            f"v=0\r\no=seat 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {self.media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        ).encode()

    # --- registration ---------------------------------------------------------------------

    async def register_all(self, at_once: int = 50) -> None:
        gate = asyncio.Semaphore(at_once)

        async def one(ext: str) -> None:
            async with gate:
                for attempt in range(5):
                    if await self.register(ext):
                        self.counts["registered"] += 1
                        return
                    await asyncio.sleep(0.5 * (attempt + 1))
                raise RuntimeError(f"{ext} could not register")

        await asyncio.gather(*(one(ext) for ext in self.accounts))

    async def register(self, ext: str) -> bool:
        call_id = f"reg-{ext}-{os.urandom(4).hex()}"
        tag = os.urandom(4).hex()
        uri = f"sip:{self.pbx[0]}:{self.pbx[1]}"
        auth = ""
        for cseq in (1, 2):
            fut: asyncio.Future[Sip] = self.loop.create_future()
            self.registering[call_id] = fut
            self.send(
                f"REGISTER {uri} SIP/2.0\nVia: {self.via()}\nMax-Forwards: 70\n"
                f"From: <sip:{ext}@{self.pbx[0]}>;tag={tag}\nTo: <sip:{ext}@{self.pbx[0]}>\n"
                f"Call-ID: {call_id}\nCSeq: {cseq} REGISTER\n"
                f"Contact: <sip:{ext}@{self.local[0]}:{self.local[1]}>\nExpires: 3600\n"
                f"{auth}Content-Length: 0\n\n"
            )
            try:
                answer = await asyncio.wait_for(fut, 5)
            except TimeoutError:
                return False
            finally:
                self.registering.pop(call_id, None)
            if answer.status == 200:
                return True
            if answer.status != 401 or cseq == 2:
                return False
            params = challenge(answer.get("www-authenticate"))
            cnonce, nc = os.urandom(4).hex(), "00000001"
            qop = "auth" if "auth" in params.get("qop", "").split(",") else ""
            response = digest(
                ext,
                params["realm"],
                self.accounts[ext],
                "REGISTER",
                uri,
                params["nonce"],
                cnonce,
                nc,
                qop,
            )
            auth = (
                f'Authorization: Digest username="{ext}", realm="{params["realm"]}", '
                f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", algorithm=MD5'
                + (f', cnonce="{cnonce}", qop={qop}, nc={nc}' if qop else "")
                + (f', opaque="{params["opaque"]}"' if "opaque" in params else "")
                + "\n"
            )
        return False

    def response(self, msg: Sip) -> None:
        call_id = msg.get("call-id")
        if msg.cseq_method == "REGISTER":
            pending = self.registering.get(call_id)
            if pending is not None and msg.status >= 200 and not pending.done():
                pending.set_result(msg)
        elif msg.cseq_method == "BYE" and msg.status >= 200:
            timer = self.byes.pop(call_id, None)
            if timer is not None:
                timer.cancel()

    # --- calls ----------------------------------------------------------------------------

    def request(self, req: Sip) -> None:
        method, call_id = req.method, req.get("call-id")
        dialog = self.dialogs.get(call_id)
        if method == "OPTIONS":
            self.counts["options"] += 1
            self.reply(req, 200, "OK", to_tag=os.urandom(4).hex())
        elif method == "INVITE" and dialog is None:
            self.invite(req)
        elif method == "INVITE" and dialog is not None:
            if ";tag=" in req.get("to"):  # a re-INVITE: the same offer again
                self.reply(req, 200, "OK", to_tag=dialog.local_tag, sdp=True, ext=dialog.ext)
            elif dialog.last_response:  # Asterisk's retransmission: our last answer again
                assert self.transport is not None
                self.transport.sendto(dialog.last_response, self.pbx)
        elif method == "ACK":
            if dialog is not None and dialog.state == "answered":
                dialog.state = "talking"
                for t in dialog.timers:
                    t.cancel()
                dialog.timers = [
                    self.loop.call_later(self.rng.uniform(*self.talk), self.bye, dialog)
                ]
            elif dialog is not None and dialog.state == "over":
                self.dialogs.pop(call_id, None)  # the ACK of our 487
        elif method == "BYE":
            self.reply(req, 200, "OK")
            if dialog is not None:
                self.counts["byes_received"] += 1
                self.end(dialog)
        elif method == "CANCEL":
            self.reply(req, 200, "OK")
            if dialog is not None and dialog.state == "ringing":
                self.counts["cancelled"] += 1
                dialog.last_response = self.reply(
                    dialog.invite, 487, "Request Terminated", to_tag=dialog.local_tag
                )
                self.end(dialog, keep=True)
        else:
            self.reply(req, 200, "OK")

    def invite(self, req: Sip) -> None:
        self.counts["invites"] += 1
        ext = uri_of(req.first.split(" ")[1]).removeprefix("sip:").split("@")[0]
        dialog = Dialog(
            req.get("call-id"), ext, req, os.urandom(4).hex(), uri_of(req.get("contact"))
        )
        self.dialogs[dialog.call_id] = dialog
        dialog.last_response = self.reply(req, 180, "Ringing", to_tag=dialog.local_tag, ext=ext)
        dialog.timers.append(self.loop.call_later(self.answer_delay, self.answer, dialog))

    def answer(self, dialog: Dialog) -> None:
        if dialog.state != "ringing":
            return
        dialog.state = "answered"
        self.counts["answered"] += 1
        dialog.last_response = self.reply(
            dialog.invite, 200, "OK", to_tag=dialog.local_tag, sdp=True, ext=dialog.ext
        )
        # the 200 OK again until the ACK (RFC 3261 13.3.1.4)
        dialog.timers = [
            self.loop.call_later(t, self.resend, dialog, "answered") for t in (0.5, 1.5, 3.5)
        ]

    def resend(self, dialog: Dialog, state: str) -> None:
        if dialog.state == state and self.transport is not None:
            self.transport.sendto(dialog.last_response, self.pbx)

    def bye(self, dialog: Dialog) -> None:
        if dialog.state != "talking":
            return
        self.counts["byes_sent"] += 1
        inv = dialog.invite
        data = self.send(
            f"BYE {dialog.remote} SIP/2.0\nVia: {self.via()}\nMax-Forwards: 70\n"
            f"From: {inv.get('to')};tag={dialog.local_tag}\nTo: {inv.get('from')}\n"
            f"Call-ID: {dialog.call_id}\nCSeq: 1 BYE\nContact: <sip:{dialog.ext}@"
            f"{self.local[0]}:{self.local[1]}>\nContent-Length: 0\n\n"
        )
        self.end(dialog)

        def again(n: int) -> None:
            if dialog.call_id not in self.byes or self.transport is None:
                return
            if n >= 6:
                self.byes.pop(dialog.call_id, None)
                self.counts["bye_unanswered"] += 1
                return
            self.transport.sendto(data, self.pbx)
            self.byes[dialog.call_id] = self.loop.call_later(0.5 * 2**n, again, n + 1)

        self.byes[dialog.call_id] = self.loop.call_later(0.5, again, 0)

    def end(self, dialog: Dialog, keep: bool = False) -> None:
        for t in dialog.timers:
            t.cancel()
        dialog.timers = []
        dialog.state = "over"
        if not keep:
            self.dialogs.pop(dialog.call_id, None)
        else:  # until the 487's ACK, or a while
            self.loop.call_later(32, self.dialogs.pop, dialog.call_id, None)


class Drop(asyncio.DatagramProtocol):
    """The phones' RTP port: whatever comes is read and dropped."""


async def main(args: argparse.Namespace) -> None:
    accounts = json.loads(open(args.accounts, encoding="utf-8").read())
    host, port = args.pbx.rsplit(":", 1)
    bind_ip, bind_port = args.bind.rsplit(":", 1)
    tmin, tmax = (float(x) for x in args.talk.split(","))
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind((bind_ip, int(bind_port)))
    transport, farm = await loop.create_datagram_endpoint(
        lambda: Farm(accounts, (host, int(port)), (tmin, tmax), args.answer_delay, args.seed),
        sock=sock,
    )
    media, _ = await loop.create_datagram_endpoint(Drop, local_addr=(bind_ip, 0))
    farm.media_port = media.get_extra_info("sockname")[1]
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)

    def stdin_closed() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            done.set()

    loop.add_reader(sys.stdin.fileno(), stdin_closed)
    try:
        await farm.register_all()
    except RuntimeError as exc:
        print(json.dumps({"error": str(exc), **farm.counts}), flush=True)
        raise SystemExit(1) from None
    print(json.dumps({"registered": farm.counts["registered"]}), flush=True)
    await done.wait()
    print(json.dumps(farm.counts), flush=True)
    with contextlib.suppress(Exception):
        transport.close()
        media.close()


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", required=True)
    ap.add_argument("--pbx", required=True, help="Asterisk's SIP address, HOST:PORT")
    ap.add_argument("--bind", required=True, help="the phones' address, IP:PORT")
    ap.add_argument("--talk", default="20,40", help="talk time range in seconds, MIN,MAX")
    ap.add_argument("--answer-delay", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    asyncio.run(main(ap.parse_args()))


if __name__ == "__main__":
    cli()
