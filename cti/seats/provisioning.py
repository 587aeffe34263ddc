"""Auto-provisioning files for seat phones, and the HTTP route that serves them to phones.

Files (written by ``hotline seats provisioning`` into one directory, mode 0600):

- Yealink: ``y000000000000.cfg``, the site-wide common file (time zone, NTP, language), and
  ``<mac>.cfg`` per phone (its SIP account). A Yealink phone asks for ``y000000000NNN.cfg``
  (NNN: its model's code, e.g. ``y000000000108.cfg``), then ``<mac>.cfg``; the route answers
  every such name with the common file, so no per-model copy is needed.
- Grandstream: ``cfg<mac>.xml`` per phone (``gs_provision`` XML with P-value codes).

Who may fetch them. The files hold SIP passwords and phones cannot log in to the console, so
the route has its own check, both of:

1. a per-site token in the URL path (``/provision/<token>/<file>``), 32 random characters
   kept in the secrets file next to the SIP passwords; the provisioning server URL set on
   the phones (DHCP option 66 or the phone's web page) carries it. A wrong token answers 404,
   like a missing file, so the route cannot be probed for valid names.
2. optionally an IP allow-list (``allow=["10.20.0.0/16"]``): the phones' VLAN. A client
   outside it gets 404 as well.

A phone's file is served only to the phone with that MAC by the phone's own request, which
carries no proof of the MAC: the token and the network are the protection. Serve over HTTPS
(a reverse proxy in front of the console) where the phone VLAN is shared with other devices.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cti.seats.pjsip import PhoneAccount, SecretStore, write_private

log = logging.getLogger(__name__)

YEALINK_COMMON = "y000000000000.cfg"
_YEALINK_COMMON_RE = re.compile(r"^y0{6}[0-9]{6}\.cfg$")
_YEALINK_MAC_RE = re.compile(r"^[0-9a-f]{12}\.cfg$")
_GRANDSTREAM_RE = re.compile(r"^cfg[0-9a-f]{12}\.xml$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ProvisioningOptions:
    sip_server: str  # host or host:port of Asterisk as the phones reach it
    ntp_server: str = "cn.pool.ntp.org"
    auto_answer: bool = False
    register_expires: int = 300

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.sip_server.rpartition(":")
        if host and port.isdigit():
            return host, int(port)
        return self.sip_server, 5060

    def check(self) -> None:
        host, port = self.host_port
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host) or not 0 < port < 65536:
            raise ValueError(f"not a SIP server address: {self.sip_server!r}")
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", self.ntp_server):
            raise ValueError(f"not an NTP server name: {self.ntp_server!r}")


def vendor(phone_model: str) -> str:
    """``yealink``, ``grandstream``, or ``""`` when the model does not say."""
    model = phone_model.lower()
    if "yealink" in model or re.match(r"^(sip-)?t[2-5]\d", model):
        return "yealink"
    if "grandstream" in model or re.match(r"^(gxp|grp|gxv|wp8)", model):
        return "grandstream"
    return ""


def _text(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def yealink_common(opts: ProvisioningOptions) -> str:
    return "\n".join(
        [
            "#!version:1.0.0.1",
            "## Site-wide settings for every Yealink seat phone of the hotline.",
            "local_time.time_zone = +8",
            "local_time.time_zone_name = China(Beijing)",
            f"local_time.ntp_server1 = {opts.ntp_server}",
            "local_time.summer_time = 0",
            "lang.gui = Chinese_S",
            "lang.wui = Chinese_S",
            "## Transfers and conferences are driven by the CTI, not by the phone's keys.",
            "features.dnd.enable = 0",
            "",
        ]
    )


def yealink_phone(p: PhoneAccount, password: str, opts: ProvisioningOptions) -> str:
    host, port = opts.host_port
    label = _text(p.position or p.id)
    return "\n".join(
        [
            "#!version:1.0.0.1",
            f"## {_text(p.kind)} {_text(p.id)} {_text(p.room)}".rstrip(),
            "account.1.enable = 1",
            f"account.1.label = {label}",
            f"account.1.display_name = {_text(p.label)}",
            f"account.1.auth_name = {p.extension}",
            f"account.1.user_name = {p.extension}",
            f"account.1.password = {password}",
            f"account.1.sip_server.1.address = {host}",
            f"account.1.sip_server.1.port = {port}",
            "account.1.sip_server.1.transport_type = 0",
            f"account.1.sip_server.1.expires = {opts.register_expires}",
            f"account.1.auto_answer = {1 if opts.auto_answer else 0}",
            "",
        ]
    )


def grandstream_phone(p: PhoneAccount, password: str, opts: ProvisioningOptions) -> str:
    host, port = opts.host_port
    server = host if port == 5060 else f"{host}:{port}"
    values = {
        "P271": "1",  # account 1 active
        "P270": p.position or p.id,  # account name
        "P47": server,  # SIP server
        "P35": p.extension,  # SIP user ID
        "P36": p.extension,  # authenticate ID
        "P34": password,  # authenticate password
        "P3": p.label,  # display name
        "P30": opts.ntp_server,  # NTP server
    }
    body = "\n".join(f"    <{key}>{escape(_text(value))}</{key}>" for key, value in values.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gs_provision version="1">\n'
        f"  <mac>{p.mac_hex}</mac>\n"
        '  <config version="1">\n'
        f"{body}\n"
        "  </config>\n"
        "</gs_provision>\n"
    )


@dataclass(slots=True)
class ProvisioningResult:
    written: list[str]
    skipped: list[str]  # seats without a MAC
    unknown_vendor: list[str]  # both formats written


def write_files(
    phones: Sequence[PhoneAccount],
    store: SecretStore,
    directory: Path,
    opts: ProvisioningOptions,
) -> ProvisioningResult:
    """Write the files of every phone with a MAC. The SIP password must already exist in
    the secrets file (``hotline seats pjsip`` creates it), else the phone would get a
    password Asterisk does not know."""
    opts.check()
    missing = [p.extension for p in phones if p.mac and p.extension not in store.passwords]
    if missing:
        raise LookupError(
            "no SIP password yet for " + ", ".join(missing) + ": run `hotline seats pjsip` first"
        )
    result = ProvisioningResult([], [], [])
    any_yealink = False
    for p in phones:
        if not p.mac:
            result.skipped.append(p.id)
            continue
        pw = store.passwords[p.extension]
        kind = vendor(p.phone_model)
        if not kind:
            result.unknown_vendor.append(p.id)
        if kind in ("yealink", ""):
            name = f"{p.mac_hex}.cfg"
            write_private(directory / name, yealink_phone(p, pw, opts), 0o600)
            result.written.append(name)
            any_yealink = True
        if kind in ("grandstream", ""):
            name = f"cfg{p.mac_hex}.xml"
            write_private(directory / name, grandstream_phone(p, pw, opts), 0o600)
            result.written.append(name)
    if any_yealink:
        write_private(directory / YEALINK_COMMON, yealink_common(opts), 0o600)
        result.written.append(YEALINK_COMMON)
    return result


# --- serving ------------------------------------------------------------------------


def served_name(filename: str) -> str | None:
    """The file to answer ``filename`` with, or None if it is no provisioning file name."""
    name = filename.lower()
    if _YEALINK_COMMON_RE.match(name):
        return YEALINK_COMMON
    if _YEALINK_MAC_RE.match(name) or _GRANDSTREAM_RE.match(name):
        return name
    return None


class PhoneAccess:
    """The check in front of the files: token in the path and, if set, the client's network."""

    def __init__(self, token: str, allow: Sequence[str] = ()) -> None:
        if len(token) < 16:
            raise ValueError("the provisioning token must be at least 16 characters")
        self.token = token
        self.networks = [ipaddress.ip_network(n, strict=False) for n in allow]

    def permits(self, token: str, client: str | None) -> bool:
        if not secrets.compare_digest(token.encode(), self.token.encode()):
            return False
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        return any(address in net for net in self.networks)


def router(
    directory: Path,
    *,
    token: str,
    allow: Sequence[str] = (),
    prefix: str = "/provision",
) -> APIRouter:
    """A FastAPI router serving ``GET {prefix}/{token}/{filename}`` from ``directory``."""
    access = PhoneAccess(token, allow)
    api = APIRouter()

    def not_found() -> Response:
        return Response("not found\n", status_code=404, media_type="text/plain")

    def phone_access(request: Request) -> Callable[[str], bool]:
        client = request.client.host if request.client is not None else None
        return lambda supplied: access.permits(supplied, client)

    # Phones have no console session: this dependency is their authentication (token in
    # the path, optional network allow-list), in place of console.security.require_roles.
    phone_access.required_roles = ()  # type: ignore[attr-defined]
    phone_access.authentication = "provisioning-token"  # type: ignore[attr-defined]

    @api.get(prefix + "/{supplied}/{filename}", include_in_schema=False)
    def provision(
        supplied: str,
        filename: str,
        request: Request,
        check: Callable[[str], bool] = Depends(phone_access),  # noqa: B008
    ) -> Response:
        client = request.client.host if request.client is not None else "?"
        if not check(supplied):
            log.warning("provisioning: refused %s from %s", filename[:40], client)
            return not_found()
        name = served_name(filename)
        if name is None:
            return not_found()
        path = directory / name
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return not_found()
        log.info("provisioning: %s to %s", name, client)
        media = "application/xml" if name.endswith(".xml") else "text/plain"
        return Response(body, media_type=media, headers={"Cache-Control": "no-store"})

    return api


def load_token(secrets_path: Path) -> str:
    """The site's provisioning token from the secrets file (created there if missing)."""
    store = SecretStore(secrets_path)
    token = store.provisioning_token()
    store.save()
    return token
