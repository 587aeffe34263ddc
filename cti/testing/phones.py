"""PJSIP registrations: ContactStatus/PeerStatus/DeviceStateChange as chan_pjsip reports them."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cti.testing.model import Phone

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator


def event_tv(moment: float | None = None) -> str:
    """Security events' time stamp: ``2026-11-22T03:18:40.537+0000``."""
    dt = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def _sip_security(sim: AsteriskSimulator, phone: Phone) -> None:
    """A REGISTER is challenged, then accepted (both security events, as in the rig)."""
    common = [
        ("EventTV", event_tv()),
        ("Severity", "Informational"),
        ("Service", "PJSIP"),
        ("EventVersion", "1"),
        ("AccountID", phone.ext),
        ("SessionID", phone.call_id),
        ("LocalAddress", "IPV4/UDP/127.0.0.1/5060"),
        ("RemoteAddress", f"IPV4/UDP/{phone.ip}/{phone.port}"),
    ]
    sim.emit("ChallengeSent", "security,all", [*common, ("Challenge", "")])
    sim.emit("SuccessfulAuth", "security,all", [*common, ("UsingPassword", "1")])


def contact_status(sim: AsteriskSimulator, phone: Phone, status: str, rtt: int) -> None:
    sim.emit(
        "ContactStatus",
        "system,all",
        [
            ("URI", phone.uri),
            ("ContactStatus", status),
            ("AOR", phone.ext),
            ("EndpointName", phone.ext),
            ("RoundtripUsec", str(rtt)),
        ],
    )


def peer_status(sim: AsteriskSimulator, phone: Phone, status: str) -> None:
    sim.emit(
        "PeerStatus",
        "system,all",
        [("ChannelType", "PJSIP"), ("Peer", f"PJSIP/{phone.ext}"), ("PeerStatus", status)],
    )


def register(
    sim: AsteriskSimulator,
    ext: str,
    ip: str,
    answer_delay: float,
    auto_answer: bool,
    on_ring: Any,
) -> Phone:
    if ext not in sim.endpoints:
        sim.endpoints[ext] = f"Seat {ext}"
        sim.devices.setdefault(f"PJSIP/{ext}", "UNAVAILABLE")
    phone = sim.phones.get(ext)
    if phone is None or phone.ip != ip:
        phone = Phone(ext, ip=ip, answer_delay=answer_delay, auto_answer=auto_answer)
        sim.phones[ext] = phone
    phone.answer_delay, phone.auto_answer, phone.on_ring = answer_delay, auto_answer, on_ring
    phone.registered = True
    phone.expires_at = int(time.time()) + 3600
    _sip_security(sim, phone)
    # New contact: not yet qualified, then the first OPTIONS answers (rig order).
    contact_status(sim, phone, "NonQualified", 0)
    peer_status(sim, phone, "Reachable")
    phone.reachable = phone.qualified = True
    sim.update_device(f"PJSIP/{ext}")
    contact_status(sim, phone, "Reachable", phone.roundtrip_usec)
    return phone


def qualified(sim: AsteriskSimulator, phone: Phone) -> None:
    """A contact known from AstDB answers its first OPTIONS after a restart (rig order)."""
    phone.reachable = phone.qualified = True
    peer_status(sim, phone, "Reachable")
    contact_status(sim, phone, "Reachable", phone.roundtrip_usec)
    sim.update_device(f"PJSIP/{phone.ext}")


def trunk_status(sim: AsteriskSimulator, answers: bool, *, first: bool = False) -> None:
    """The carrier starts or stops answering the trunk's qualify OPTIONS (rig order). After a
    restart (``first``) an unanswered qualify only reports the contact Unreachable."""
    sim.carrier_answers = answers
    uri = sim.config.trunk_contact
    fields = [("URI", uri), ("AOR", "trunk"), ("EndpointName", "trunk")]
    if answers:
        sim.update_device("PJSIP/trunk")
        sim.emit(
            "PeerStatus",
            "system,all",
            [("ChannelType", "PJSIP"), ("Peer", "PJSIP/trunk"), ("PeerStatus", "Reachable")],
        )
        status, rtt = "Reachable", "1144"
    else:
        if not first:
            sim.emit(
                "PeerStatus",
                "system,all",
                [("ChannelType", "PJSIP"), ("Peer", "PJSIP/trunk"), ("PeerStatus", "Unreachable")],
            )
        status, rtt = "Unreachable", "0"
    sim.emit(
        "ContactStatus",
        "system,all",
        [fields[0], ("ContactStatus", status), *fields[1:], ("RoundtripUsec", rtt)],
    )
    if not answers:
        sim.update_device("PJSIP/trunk")


def unregister(sim: AsteriskSimulator, ext: str, clean: bool = True) -> None:
    """``clean``: REGISTER with Expires: 0 (Removed at once). Otherwise the phone lost power:
    nothing happens until qualify gives up, then Unreachable and the contact stays."""
    phone = sim.phones.get(ext)
    if phone is None or not phone.registered:
        return
    if clean:
        _sip_security(sim, phone)
        phone.registered = phone.reachable = False
        peer_status(sim, phone, "Unreachable")
        contact_status(sim, phone, "Removed", 0)
        sim.update_device(f"PJSIP/{ext}")
        del sim.phones[ext]
        return

    async def qualify_fails() -> None:
        await sim.sleep(sim.config.qualify_timeout_s)
        if sim.phones.get(ext) is not phone or not phone.reachable:
            return
        phone.reachable = False
        phone.qualified = True
        peer_status(sim, phone, "Unreachable")
        sim.update_device(f"PJSIP/{ext}")
        contact_status(sim, phone, "Unreachable", 0)

    phone.call_id = secrets.token_hex(8)
    sim.spawn(qualify_fails(), name=f"qualify-{ext}")
