"""PJSIP endpoints, auths and AORs for every seat and service window of the configuration.

The output is the file ``config/asterisk/pjsip.conf`` pulls in with
``#include pjsip_seats.conf``: three templates, then one endpoint + auth + AOR per phone, all
three sections named after the SIP extension (Asterisk allows one name per object type; the
CTI addresses phones as ``PJSIP/<extension>``). The choices follow what worked on the
reference Asterisk 22:

- ``identify_by = username``: phones are matched by the user of their REGISTER/INVITE.
- ``max_contacts = 1`` + ``remove_existing = yes``: a phone that reboots or moves to another
  address replaces its old registration instead of being refused.
- ``qualify_frequency``: OPTIONS every few seconds, so a phone that loses power becomes
  ``Unreachable`` (and its logged-in agent gets no more calls) within seconds. A registered
  phone that does not answer OPTIONS is marked unavailable: keep qualify on for seat phones.
- ``direct_media = no``: the media must pass Asterisk, or MixMonitor, ChanSpy and the
  conference of the three-way call have nothing to work on.
- No ``language``: Atxfer plays the ``pbx-transfer`` prompt in the channel's language and is
  aborted when the sound file is missing; the stock English prompts are always there.

Passwords come from the secrets file (``SecretStore``), generated with ``secrets`` on first
use and reused afterwards, so regenerating the file keeps every phone registered.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cti.config import Settings

PLACEHOLDER_PASSWORD = "REGENERATE-with-hotline-seats-pjsip"
ENDPOINT_TEMPLATE = "hotline-phone"
AUTH_TEMPLATE = "hotline-phone-auth"
AOR_TEMPLATE = "hotline-phone-aor"

_CODEC = re.compile(r"^[a-z0-9_]{2,16}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EXTENSION = re.compile(r"^[0-9]{2,10}$")
_TRANSPORT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PASSWORD = re.compile(r"^[A-Za-z0-9_.~-]{8,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SecretsError(ValueError):
    """The secrets file is unreadable, malformed or readable by others."""


@dataclass(frozen=True, slots=True)
class PhoneAccount:
    """One SIP phone: a seat (agents, leaders, supervisors) or a service window."""

    extension: str
    id: str
    kind: str
    room: str = ""
    position: str = ""
    phone_model: str = ""
    mac: str = ""
    name: str = ""

    @property
    def label(self) -> str:
        """The caller-ID name the phone presents (ASCII: phone displays and SIP headers
        everywhere handle it)."""
        return {"window": "Window", "supervisor": "Supervisor"}.get(self.kind, "Seat") + (
            f" {self.id}"
        )

    @property
    def mac_hex(self) -> str:
        return self.mac.replace(":", "").replace("-", "").lower()


def accounts(settings: Settings) -> list[PhoneAccount]:
    """Seats in configuration order, then the windows whose extension is not a seat."""
    out: list[PhoneAccount] = []
    seen: set[str] = set()
    for s in settings.seats:
        out.append(
            PhoneAccount(
                extension=s.extension,
                id=s.id,
                kind=s.kind,
                room=s.room,
                position=s.position,
                phone_model=s.phone_model,
                mac=s.mac,
            )
        )
        seen.add(s.extension)
    for w in settings.windows:
        if w.extension and w.extension not in seen:
            out.append(
                PhoneAccount(
                    extension=w.extension,
                    id=w.id,
                    kind="window",
                    room=w.department,
                    position=w.name,
                    name=w.name,
                )
            )
            seen.add(w.extension)
    return out


@dataclass(frozen=True, slots=True)
class PjsipOptions:
    context: str = "from-seat"
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    qualify_frequency: int = 5
    transport: str = ""  # empty: Asterisk picks the transport matching the phone's address

    def check(self) -> None:
        if not _CONTEXT.match(self.context):
            raise ValueError(f"not a dialplan context: {self.context!r}")
        if not self.codecs or not all(_CODEC.match(c) for c in self.codecs):
            raise ValueError(f"bad codec list: {','.join(self.codecs)!r}")
        if not 0 <= self.qualify_frequency <= 3600:
            raise ValueError("qualify_frequency must be between 0 and 3600 seconds")
        if self.transport and not _TRANSPORT.match(self.transport):
            raise ValueError(f"bad transport name: {self.transport!r}")


# --- secrets --------------------------------------------------------------------------


class SecretStore:
    """SIP passwords by extension and the provisioning token, in a JSON file of mode 0600.

    The file is read once; ``password()`` creates what is missing; ``save()`` writes it back
    atomically (a temporary file in the same directory, then a rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.passwords: dict[str, str] = {}
        self.token = ""
        self.created: list[str] = []
        self._dirty = False
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            mode = self.path.stat().st_mode
            raw = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretsError(f"cannot read {self.path}: {exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretsError(
                f"{self.path} is accessible to other users (mode {stat.S_IMODE(mode):o}): "
                f"chmod 600 {self.path}"
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SecretsError(f"{self.path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("passwords", {}), dict):
            raise SecretsError(f"{self.path}: expected an object with a 'passwords' object")
        for ext, pw in data.get("passwords", {}).items():
            if not (isinstance(pw, str) and _PASSWORD.match(pw) and _EXTENSION.match(str(ext))):
                raise SecretsError(f"{self.path}: bad entry for extension {ext!r}")
            self.passwords[str(ext)] = pw
        token = data.get("provisioning_token", "")
        if not isinstance(token, str):
            raise SecretsError(f"{self.path}: provisioning_token must be a string")
        self.token = token

    def password(self, extension: str) -> str:
        if not _EXTENSION.match(extension):
            raise ValueError(f"not an extension: {extension!r}")
        pw = self.passwords.get(extension)
        if pw is None:
            pw = secrets.token_urlsafe(18)
            self.passwords[extension] = pw
            self.created.append(extension)
            self._dirty = True
        return pw

    def provisioning_token(self) -> str:
        if not self.token:
            self.token = secrets.token_urlsafe(24)
            self._dirty = True
        return self.token

    def save(self) -> bool:
        """Write the file if anything changed; True when written."""
        if not self._dirty and self.path.exists():
            return False
        data: dict[str, Any] = {
            "version": 1,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "passwords": dict(sorted(self.passwords.items())),
        }
        if self.token:
            data["provisioning_token"] = self.token
        write_private(self.path, json.dumps(data, indent=2) + "\n", 0o600)
        self._dirty = False
        return True


def write_private(path: Path, text: str, mode: int) -> None:
    """Atomically replace ``path`` with ``text``, created with ``mode`` from the start (no
    window in which the passwords are world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- rendering ----------------------------------------------------------------------


def _comment(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def render(
    phones: Iterable[PhoneAccount],
    password: Callable[[str], str],
    options: PjsipOptions | None = None,
    *,
    source: str = "",
    placeholder: bool = False,
) -> str:
    """The text of ``pjsip_seats.conf``."""
    opts = options or PjsipOptions()
    opts.check()
    phones = list(phones)
    lines = [
        "; PJSIP phones of the hotline: seats (agents, leaders, supervisors) and service windows.",
        "; Written by `hotline seats pjsip`; edit the configuration and regenerate, not this file.",
        f"; Source: {_comment(source) or 'built-in defaults'}; {len(phones)} phones.",
    ]
    if placeholder:
        lines += [
            ";",
            "; EXAMPLE ONLY: the passwords below are placeholders. On the PBX, run",
            ";   hotline seats pjsip --config /etc/hotline/hotline.toml \\",
            ";       --output /etc/asterisk/pjsip_seats.conf \\",
            ";       --secrets /etc/hotline/pjsip_secrets.json",
            "; which generates real passwords and keeps them in the secrets file.",
        ]
    else:
        lines += [
            "; Contains SIP passwords: keep it readable by Asterisk only (mode 0640).",
        ]
    lines += [
        "",
        "; --- templates ---------------------------------------------------------------",
        "",
        f"[{ENDPOINT_TEMPLATE}](!)",
        "type = endpoint",
        f"context = {opts.context}",
        "disallow = all",
        f"allow = {','.join(opts.codecs)}",
        "; media through Asterisk: recording, ChanSpy and the three-way conference need it",
        "direct_media = no",
        "identify_by = username",
        "dtmf_mode = rfc4733",
        "; phones behind NAT or with a wrong Contact still work",
        "rtp_symmetric = yes",
        "force_rport = yes",
        "rewrite_contact = yes",
    ]
    if opts.transport:
        lines.append(f"transport = {opts.transport}")
    lines += [
        "",
        f"[{AUTH_TEMPLATE}](!)",
        "type = auth",
        "auth_type = userpass",
        "",
        f"[{AOR_TEMPLATE}](!)",
        "type = aor",
        "; one phone per seat; a re-registering phone replaces its old contact",
        "max_contacts = 1",
        "remove_existing = yes",
        "; OPTIONS every few seconds: a phone that loses power is Unreachable within seconds",
        f"qualify_frequency = {opts.qualify_frequency}",
        "",
        "; --- phones ------------------------------------------------------------------",
    ]
    for p in phones:
        if not _EXTENSION.match(p.extension):
            raise ValueError(f"seat {p.id}: not an extension: {p.extension!r}")
        pw = PLACEHOLDER_PASSWORD if placeholder else password(p.extension)
        if not _PASSWORD.match(pw):
            raise ValueError(f"seat {p.id}: password has characters pjsip.conf cannot hold")
        where = " / ".join(x for x in (p.room, p.position) if x)
        details = [f"{p.kind} {p.id}"]
        if where:
            details.append(where)
        if p.phone_model:
            details.append(p.phone_model)
        if p.mac:
            details.append(f"MAC {p.mac}")
        ext = p.extension
        lines += [
            "",
            f"; {_comment(', '.join(details))}",
            f"[{ext}]({ENDPOINT_TEMPLATE})",
            f"auth = {ext}",
            f"aors = {ext}",
            f'callerid = "{p.label}" <{ext}>',
            f"[{ext}]({AUTH_TEMPLATE})",
            f"username = {ext}",
            f"password = {pw}",
            f"[{ext}]({AOR_TEMPLATE})",
        ]
    return "\n".join(lines) + "\n"


def generate(
    settings: Settings,
    store: SecretStore | None,
    options: PjsipOptions | None = None,
    *,
    source: str = "",
    placeholder: bool = False,
) -> str:
    """Render for ``settings``; missing passwords are created in ``store`` (saved by the
    caller once the output is written)."""
    if store is None and not placeholder:
        raise ValueError("a secrets store is needed unless placeholder passwords are asked for")

    def password(ext: str) -> str:
        assert store is not None
        return store.password(ext)

    return render(accounts(settings), password, options, source=source, placeholder=placeholder)
