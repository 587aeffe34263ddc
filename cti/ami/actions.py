"""Building AMI actions safely, and the typed errors Asterisk answers with.

AMI is a line protocol: a CR or LF inside a value ends the header and lets the rest of the
value inject headers or whole actions ("Action: Originate" smuggled in a caller name). Every
value is checked here before anything is written to the socket.
"""

from __future__ import annotations

import re
from typing import Any

from cti.errors import HotlineError

MAX_VALUE = 1024
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
# PJSIP/8001, PJSIP/8001-0000001a, Local/9001@cti-window-00000003;1, /^PJSIP\/8001-.*$/
CHANNEL_RE = re.compile(r"^(?:[A-Za-z]+/[A-Za-z0-9_.@;:+\-]{1,120}|/\^?[^\s]{1,120}\$?/)$")
EXTEN_RE = re.compile(r"^[0-9A-Za-z_*#+\-]{1,64}$")
CONTEXT_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class UnsafeValue(HotlineError, ValueError):
    """A value would break the AMI framing (CR/LF/NUL) or is not of the expected shape."""


class AmiError(HotlineError):
    """Asterisk answered ``Response: Error``; ``raw`` is the whole response."""

    def __init__(self, action: str, message: str, raw: dict[str, str]) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message
        self.raw = raw


class NoSuchChannel(AmiError):
    pass


class PermissionDenied(AmiError):
    pass


class ChannelNotUp(AmiError):
    """``Redirect failed, channel not up.``: the channel is hanging up (the caller left)."""


class ShuttingDown(AmiError):
    """``Asterisk is shutting down``: every action is refused until the socket closes."""


class AmiUnavailable(HotlineError):
    """The node is not connected (or the action timed out): nothing was done, or it is unknown."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"Asterisk node {node!r} unavailable: {reason}")
        self.node = node
        self.reason = reason


# A list action with nothing to list may answer an error instead of an empty list:
# "No Contacts found", "No endpoints found", "No AORs found", "No active conferences.".
_EMPTY_LIST = re.compile(r"^No .*(?:found|configured|active conferences)\.?$", re.IGNORECASE)


def is_empty_list(message: str) -> bool:
    """Whether an error answered to a list action means "nothing to list"."""
    return bool(_EMPTY_LIST.match(message.strip()))


def error_for(action: str, response: dict[str, str]) -> AmiError:
    message = response.get("Message", "").strip()
    low = message.lower()
    if "no such channel" in low or "channel does not exist" in low:
        return NoSuchChannel(action, message, response)
    if low.startswith("redirect failed, channel not up"):
        return ChannelNotUp(action, message, response)
    if low.startswith("asterisk is shutting down"):
        return ShuttingDown(action, message, response)
    if "permission denied" in low:
        return PermissionDenied(action, message, response)
    return AmiError(action, message, response)


def check_value(key: str, value: object) -> str:
    text = str(value)
    if _FORBIDDEN.search(text):
        raise UnsafeValue(f"{key}: CR, LF or NUL not allowed in an AMI value")
    if len(text) > MAX_VALUE:
        raise UnsafeValue(f"{key}: value longer than {MAX_VALUE} characters")
    return text


def build(action: str, **fields: Any) -> dict[str, Any]:
    """An action as an ordered dict of checked strings; lists become repeated headers
    (``Variable``). ``None`` values are left out."""
    out: dict[str, Any] = {"Action": check_value("Action", action)}
    for key, value in fields.items():
        if value is None:
            continue
        if not _KEY.match(key):
            raise UnsafeValue(f"bad AMI header name {key!r}")
        if isinstance(value, (list, tuple)):
            out[key] = [check_value(key, v) for v in value]
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = check_value(key, value)
    return out


def check_channel(name: str) -> str:
    check_value("Channel", name)
    if not CHANNEL_RE.match(name):
        raise UnsafeValue(f"not a channel name: {name!r}")
    return name


def check_exten(exten: str) -> str:
    check_value("Exten", exten)
    if not EXTEN_RE.match(exten):
        raise UnsafeValue(f"not a dialplan extension: {exten!r}")
    return exten


def check_context(context: str) -> str:
    check_value("Context", context)
    if not CONTEXT_RE.match(context):
        raise UnsafeValue(f"not a dialplan context: {context!r}")
    return context


def callerid(name: str, number: str) -> str:
    """``"name" <number>`` with the name stripped of quotes and angle brackets."""
    check_value("CallerID", name)
    check_exten(number)
    clean = name.replace('"', "").replace("<", "").replace(">", "")
    return f"{clean} <{number}>"
