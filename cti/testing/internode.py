"""Inter-node trunks: simulators wired together as the Asterisk nodes of one floor.

config/asterisk/pjsip.conf gives each node one endpoint per other node, named
``node-<name>`` (``cti.calls.nodes``); a seat registered on the other node is dialled as
``PJSIP/<seat>@node-<name>`` ([cti-deliver-remote], or the route's target), and the other
node takes the call in [from-node] and Dials ``PJSIP/<seat>`` there. Here the SIP between the
two is replaced by the two legs knowing each other (``Channel.twin``):

- the INVITE: on the calling node the outgoing leg ``PJSIP/node-b-...``; on the called node a
  new channel ``PJSIP/node-a-...`` in [from-node], the seat as its extension and the caller's
  caller id (chan_pjsip takes the From user and display name);
- 180 Ringing when the called node's Dial rings the seat (app_dial indicates ringing to its
  caller), 200 OK when the seat answers (app_dial answers its caller then);
- BYE and failure responses either way: a leg that goes away requests the hangup of its twin.
  A cause crosses SIP as chan_pjsip maps it (hangup_cause2sip one way, ast_sip_hangup_sip2cause
  back: 17 -> 486 -> 17, 19 and 20 -> 480 -> 19, 3 -> 404 -> 1, 34 -> 503 -> 34), and app_dial
  turns the cause of a leg that hung up unanswered into its DIALSTATUS
  (ast_hangup_cause_to_dial_status in main/dial.c, handle_cause in apps/app_dial.c);
- a node that is stopped answers neither calls nor the trunk's qualify OPTIONS: chan_pjsip
  refuses to dial an endpoint whose only contact is unavailable (CHANUNAVAIL, no channel), as
  the rig showed for the carrier trunk (shared/asterisk/in_loop/README.md, fact 8).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cti.calls.nodes import trunk_to
from cti.testing.model import RING, RINGING, Channel, dial_fields

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

# hangup_cause2sip then ast_sip_hangup_sip2cause, for the causes our dialplans hang up with.
_OVER_SIP = {1: 1, 2: 1, 3: 1, 17: 17, 19: 19, 20: 19, 31: 19, 34: 34}


@dataclass(slots=True)
class PeerLink:
    sim: AsteriskSimulator  # the other node
    endpoint: str  # the endpoint our calls arrive on over there (node-<our name>)
    # The other node answers our qualify OPTIONS (a firewall between the nodes says no).
    answers_options: bool = True


def link(a: AsteriskSimulator, a_name: str, b: AsteriskSimulator, b_name: str) -> None:
    """Wire two simulators as nodes ``a_name`` and ``b_name`` with a trunk both ways."""
    a.peers[trunk_to(b_name)] = PeerLink(b, trunk_to(a_name))
    b.peers[trunk_to(a_name)] = PeerLink(a, trunk_to(b_name))


async def site_of(sims: dict[str, AsteriskSimulator], db_url: str, rec_dir: str) -> dict[str, Any]:
    """The demo's site on the started simulators, one ``[[asterisk]]`` node each (named as in
    ``sims``): the configuration a two-node floor's tests start a ``Hotline`` with."""
    from cti.config import default_data

    data: dict[str, Any] = default_data()
    template = data["asterisk"][0]
    data["asterisk"] = [
        {**template, "name": name, "port": await sim.start(), "backoff_max_s": 0.5}
        for name, sim in sims.items()
    ]
    data["database"] = {"url": db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": rec_dir}
    data["control"] = {"wrapup_s": 0}
    return data


def reachable(sim: AsteriskSimulator, endpoint: str) -> bool:
    peer = sim.peers.get(endpoint)
    return peer is not None and peer.sim.running and peer.answers_options


def set_qualify(sim: AsteriskSimulator, endpoint: str, answers: bool) -> None:
    """The other node starts or stops answering the trunk's qualify: the contact's status
    changes as res_pjsip reports it (ContactStatus, as for the carrier trunk in the rig), and
    while it is Unreachable chan_pjsip dials nothing through the trunk."""
    peer = sim.peers[endpoint]
    if peer.answers_options == answers:
        return
    peer.answers_options = answers
    sim.emit(
        "ContactStatus",
        "system,all",
        [
            ("URI", f"sip:{peer.endpoint}@{peer.sim.config.host}:5060"),
            ("ContactStatus", "Reachable" if answers else "Unreachable"),
            ("AOR", endpoint),
            ("EndpointName", endpoint),
            ("RoundtripUsec", "1144" if answers else "0"),
        ],
    )
    sim.update_device(f"PJSIP/{endpoint}")


def dial_status(cause: int) -> str:
    """DIALSTATUS of a Dial whose only leg hung up unanswered with ``cause``."""
    return {17: "BUSY", 34: "CONGESTION", 1: "CHANUNAVAIL", 3: "CHANUNAVAIL"}.get(cause, "NOANSWER")


def signal(channel: Channel, what: str) -> None:
    """The called node tells the calling one: ``ringing`` (180) or ``answer`` (200)."""
    twin = channel.twin
    if twin is not None and not twin.hungup:
        twin.remote = what
        twin.remote_changed.set()


def hangup_twin(channel: Channel, cause: int) -> None:
    """``channel`` is going away: its twin on the other node receives the BYE (or, unanswered,
    the failure response) with the cause as SIP carries it."""
    twin, other = channel.twin, channel.twin_sim
    channel.twin = None
    if twin is None or other is None or not twin.alive:
        return
    twin.twin = None
    from cti.testing.pbx import AsteriskSimulator

    assert isinstance(other, AsteriskSimulator)
    other.request_hangup(twin, _OVER_SIP.get(cause, cause))


async def ring_peer(
    sim: AsteriskSimulator, caller: Channel, callee: Channel, number: str, timeout_s: float
) -> str:
    """Our outgoing leg ``callee`` to the other node: its INVITE starts [from-node] there;
    returns ANSWER, CANCEL, or the DIALSTATUS of the failure."""
    from cti.testing.bridging import wait_any
    from cti.testing.dialplan import start_pbx

    endpoint = callee.device.split("/", 1)[1]
    peer = sim.peers[endpoint]
    there = peer.sim
    incoming = there.new_channel(
        peer.endpoint,
        cid_num=caller.cid_num,
        cid_name=caller.cid_name,
        context="from-node",
        exten=number,
        state=RING,
    )
    incoming.twin, incoming.twin_sim = callee, sim
    callee.twin, callee.twin_sim = incoming, there
    start_pbx(there, incoming, "from-node", number, 1)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s * sim.config.scale
    rang = False
    while True:
        callee.remote_changed.clear()
        if callee.remote == "ringing" and not rang:
            rang = True
            sim.set_state(callee, RINGING)
            sim.emit(
                "DialState", "call,all", [*dial_fields(caller, callee), ("DialStatus", "RINGING")]
            )
        if callee.remote == "answer":
            return "ANSWER"
        if caller.hangup_requested.is_set():
            return "CANCEL"
        if callee.hangup_requested.is_set():
            return dial_status(callee.hangup_cause)
        left = end - loop.time()
        if left <= 0:
            return "NOANSWER"
        await wait_any(
            callee.remote_changed, caller.hangup_requested, callee.hangup_requested, timeout=left
        )


async def from_node(sim: AsteriskSimulator, ch: Channel, exten: str) -> None:
    """[from-node]: ring the seat here; a failure goes back as 486 (busy) or 480."""
    from cti.testing.bridging import dial_app
    from cti.testing.dialplan_table import FROM_NODE, priorities

    p = priorities(FROM_NODE)
    target = f"PJSIP/{exten}"
    sim.newexten(ch, "Dial", f"{target},18", p["dial"])
    status = await dial_app(sim, ch, target, 18, "")
    # After an answered Dial (no g option) the PBX ends when the bridge does.
    if not ch.alive or status == "ANSWER":
        return
    busy = status == "BUSY"
    sim.newexten(ch, "GotoIf", f"{int(busy)}?busy", p["if_busy"])
    cause = 17 if busy else 19
    sim.newexten(ch, "Hangup", str(cause), p["busy" if busy else "noanswer"])
    ch.hangup_cause = cause
