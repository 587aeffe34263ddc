"""The Asterisk side of (Fast)AGI as pure functions: environment block, command parsing, replies.

Used by the live simulator's FastAGI client and by the transcript replay client, which both have
to answer whatever our FastAGI server sends "like a real Asterisk" (res_agi.c).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

# res_agi.c sends these keys in this order (see the agi transcripts); agi_arg_N follow.
ENV_KEYS = (
    "agi_network",
    "agi_network_script",
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
    "agi_calleridname",
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
)

RESULT_INVALID = "510 Invalid or unknown command"
RESULT_DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


class AgiChannel(Protocol):
    """What the AGI commands may touch on the channel running the AGI."""

    def agi_get(self, name: str) -> str | None: ...

    def agi_set(self, name: str, value: str) -> None: ...

    def agi_db_get(self, family: str, key: str) -> str | None: ...

    def agi_db_put(self, family: str, key: str, value: str) -> None: ...

    def agi_db_del(self, family: str, key: str) -> bool: ...

    def agi_hangup(self) -> None: ...

    @property
    def agi_alive(self) -> bool: ...


def env_block(env: Mapping[str, str], args: list[str]) -> bytes:
    """The ``agi_*`` block that opens a session, ended by an empty line."""
    lines = [f"{key}: {env.get(key, '')}\n" for key in ENV_KEYS]
    lines += [f"agi_arg_{n}: {arg}\n" for n, arg in enumerate(args, 1)]
    return ("".join(lines) + "\n").encode("utf-8")


def parse_env_lines(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    args: list[str] = []
    for line in lines:
        key, _, value = line.rstrip("\n").partition(": ")
        if key.startswith("agi_arg_"):
            args.append(value)
        elif key:
            env[key] = value
    return env, args


def split_args(line: str) -> list[str]:
    """Split a command line like res_agi's parse_args: double quotes group, backslash escapes."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = False
    started = False
    escaped = False
    for ch in line.strip("\r\n"):
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            started = True
            continue
        if ch == '"':
            in_quotes = not in_quotes
            started = True
            continue
        if ch in " \t" and not in_quotes:
            if started:
                args.append("".join(current))
                current, started = [], False
            continue
        current.append(ch)
        started = True
    if started:
        args.append("".join(current))
    return args


_VAR_REF = re.compile(r"\$\{([^}]+)\}")

# res_agi's read buffer: glibc gives a FILE* on a socket a buffer of st_blksize (4096) bytes.
STDIO_CHUNK = 4096


class StdioLineReader:
    """How res_agi reads a FastAGI socket, with no I/O: ``fgets()`` on a buffered ``FILE*``.

    run_agi waits until the socket is readable (poll), then calls fgets once, which takes a
    line from the stdio buffer, refilling the buffer with one read() of what the kernel holds
    when it has no whole line. Lines that came in with that read stay in the stdio buffer,
    invisible to poll: they are run only when the socket is readable again (more bytes
    arrive, or the peer closes). ``kernel`` is what the socket holds, ``buffered`` what stdio
    has already taken from it.
    """

    def __init__(self, chunk: int = STDIO_CHUNK) -> None:
        self.chunk = chunk
        self.kernel = bytearray()
        self.buffered = bytearray()
        self.eof = False

    def feed(self, data: bytes) -> None:
        self.kernel += data

    def feed_eof(self) -> None:
        self.eof = True

    @property
    def readable(self) -> bool:
        """What poll() reports: bytes in the socket, or its end. Not the stdio buffer."""
        return bool(self.kernel) or self.eof

    def fgets(self) -> bytes | None:
        """One fgets(): a whole line; ``b""`` at the end with nothing left; None when a
        partial line waits for more bytes (the real read() blocks there)."""
        while True:
            end = self.buffered.find(b"\n")
            if end >= 0:
                line = bytes(self.buffered[: end + 1])
                del self.buffered[: end + 1]
                return line
            if self.kernel:
                take = bytes(self.kernel[: self.chunk])
                del self.kernel[: len(take)]
                self.buffered += take
                continue
            if self.eof:
                rest = bytes(self.buffered)
                self.buffered.clear()
                return rest
            return None


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One command's answer: what goes on the socket, and AGIExecEnd's ResultCode/Result."""

    text: str
    code: str
    result: str


# Commands and whether res_agi runs them on a dead channel (the "Dead" column of
# ``agi show commands``); the others answer 511 once the channel has hung up.
DEAD_OK = {
    ("ANSWER",): False,
    ("CHANNEL", "STATUS"): False,
    ("DATABASE", "DEL"): True,
    ("DATABASE", "DELTREE"): True,
    ("DATABASE", "GET"): True,
    ("DATABASE", "PUT"): True,
    ("EXEC",): True,
    ("GET", "DATA"): False,
    ("GET", "FULL", "VARIABLE"): True,
    ("GET", "OPTION"): False,
    ("GET", "VARIABLE"): True,
    ("HANGUP",): False,
    ("NOOP",): True,
    ("SET", "CALLERID"): False,
    ("SET", "CONTEXT"): False,
    ("SET", "EXTENSION"): False,
    ("SET", "MUSIC"): False,
    ("SET", "PRIORITY"): False,
    ("SET", "VARIABLE"): True,
    ("STREAM", "FILE"): False,
    ("CONTROL", "STREAM", "FILE"): False,
    ("VERBOSE",): True,
    ("WAIT", "FOR", "DIGIT"): False,
}
RESULT_TEXT = {"200": "Success", "510": RESULT_INVALID[4:], "511": RESULT_DEAD[4:]}


def find_command(words: list[str]) -> tuple[str, ...] | None:
    """The longest known command the words start with (res_agi's find_command)."""
    for size in (3, 2, 1):
        key = tuple(words[:size])
        if len(key) == size and key in DEAD_OK:
            return key
    return None


@dataclass(slots=True)
class AgiExchange:
    command: str
    response: str


@dataclass(slots=True)
class AgiResponder:
    """Answers AGI command lines against a channel; keeps the dialogue."""

    channel: AgiChannel
    dialogue: list[AgiExchange] = field(default_factory=list)
    variables_set: dict[str, str] = field(default_factory=dict)

    def answer(self, line: str, *, dead: bool = False) -> str:
        """Return the full reply (with trailing newline) for one command line."""
        return self.reply(line, dead=dead).text + "\n"

    def reply(self, line: str, *, dead: bool = False) -> AgiReply:
        """The answer to one line; ``dead``: the channel has hung up (res_agi's dead mode)."""
        command = line.rstrip("\r\n")
        args = split_args(command)
        known = find_command([a.upper() for a in args])
        if known is None:
            text, result = RESULT_INVALID, RESULT_TEXT["510"]
        elif dead and not DEAD_OK[known]:
            text, result = RESULT_DEAD, RESULT_TEXT["511"]
        else:
            text = self._reply(args)
            result = "Usage" if text.startswith("520") else "Success"
        self.dialogue.append(AgiExchange(command, text))
        return AgiReply(text, text[:3], result)

    def _reply(self, args: list[str]) -> str:
        if not args:
            return RESULT_INVALID
        words = [a.upper() for a in args]
        ch = self.channel
        if words[:2] == ["GET", "VARIABLE"]:
            if len(args) < 3:
                return _usage()
            value = ch.agi_get(args[2])
            return "200 result=0" if value is None else f"200 result=1 ({value})"
        if words[:3] == ["GET", "FULL", "VARIABLE"]:
            if len(args) < 4:
                return _usage()
            expanded = _VAR_REF.sub(lambda m: ch.agi_get(m.group(1)) or "", args[3])
            return f"200 result=1 ({expanded})"
        if words[:2] == ["SET", "VARIABLE"]:
            if len(args) < 4:
                return _usage()
            ch.agi_set(args[2], args[3])
            self.variables_set[args[2]] = args[3]
            return "200 result=1"
        if words[0] == "VERBOSE":
            return "200 result=1" if len(args) >= 2 else _usage()
        if words[0] in ("NOOP", "ANSWER"):
            return "200 result=0"
        if words[0] == "HANGUP":
            if not ch.agi_alive:
                return "200 result=-1"
            ch.agi_hangup()
            return "200 result=1"
        if words[:2] == ["CHANNEL", "STATUS"]:
            return "200 result=6" if ch.agi_alive else "200 result=-1"
        if words[0] == "DATABASE" and len(args) >= 2:
            return self._database(words[1], args[2:])
        if words[0] == "EXEC":
            return "200 result=0" if len(args) >= 2 else _usage()
        if words[:2] == ["SET", "CALLERID"] or words[:2] in (
            ["SET", "CONTEXT"],
            ["SET", "EXTENSION"],
            ["SET", "PRIORITY"],
        ):
            return "200 result=0"
        if words[0] in ("STREAM", "CONTROL") or words[:2] == ["GET", "OPTION"]:
            return "200 result=0 endpos=0"
        if words[:3] == ["WAIT", "FOR", "DIGIT"]:
            return "200 result=0"
        return RESULT_INVALID

    def _database(self, verb: str, rest: list[str]) -> str:
        ch = self.channel
        if verb == "GET" and len(rest) >= 2:
            value = ch.agi_db_get(rest[0], rest[1])
            return "200 result=0" if value is None else f"200 result=1 ({value})"
        if verb == "PUT" and len(rest) >= 3:
            ch.agi_db_put(rest[0], rest[1], rest[2])
            return "200 result=1"
        if verb == "DEL" and len(rest) >= 2:
            return "200 result=1" if ch.agi_db_del(rest[0], rest[1]) else "200 result=0"
        return _usage()


def _usage() -> str:
    # res_agi answers a syntax error with a multi-line 520 block around the usage text.
    return (
        "520-Invalid command syntax.  Proper usage follows:\n"
        "Usage: see 'agi show commands'\n"
        "520 End of proper usage."
    )


@dataclass(slots=True)
class DictChannel:
    """A stand-alone channel for replay: variables in a dict, AstDB in a dict."""

    variables: dict[str, str] = field(default_factory=dict)
    db: dict[tuple[str, str], str] = field(default_factory=dict)
    alive: bool = True

    def agi_get(self, name: str) -> str | None:
        return self.variables.get(name)

    def agi_set(self, name: str, value: str) -> None:
        self.variables[name] = value

    def agi_db_get(self, family: str, key: str) -> str | None:
        return self.db.get((family, key))

    def agi_db_put(self, family: str, key: str, value: str) -> None:
        self.db[(family, key)] = value

    def agi_db_del(self, family: str, key: str) -> bool:
        return self.db.pop((family, key), None) is not None

    def agi_hangup(self) -> None:
        self.alive = False

    @property
    def agi_alive(self) -> bool:
        return self.alive
