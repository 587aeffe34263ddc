"""The per-call routing script: the logic once, two ways to run it.

- FastAGI (``agi://cti/route``): ``serve(session, decide)`` in the CTI's asyncio server, with
  the decision made from the live state in memory.
- Classic AGI (``AGI(route_classic.py)``): ``python -m agi_scripts.route`` started by Asterisk
  for each call, pyst2's ``AGI`` on stdin/stdout; the decision is rebuilt from the database.
  It costs a process per call (~50 ms on a real PBX): kept for sites that want it and for the
  latency comparison.

Both read the request from the ``agi_*`` environment (no GET VARIABLE round trips: the caller
id and the dialled number are already in it) and answer with one variable, ``HOTLINE_ROUTE``
= ``ticket|hold|target|recording``, which ``[cti-route]`` splits onto the caller's channel
(``HOTLINE_TICKET``, ``HOTLINE_HOLD``, ``ROUTE_TARGET``, ``HOTLINE_REC``). One command, so one
round trip: Asterisk runs FastAGI commands one at a time, and each answer waits for the CTI's
event loop to read it, behind whatever AMI events arrived meanwhile (on a real PBX the four
variables of the first version took 5 + 21 + 3 + 1 ms on a lone call).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RouteRequest:
    uniqueid: str
    channel: str
    caller: str
    caller_name: str
    did: str
    peer: str = ""
    # 110's incident number on a call 110 put through (the 5th argument, from the INVITE's
    # X-Incident-Id header): letters and digits, else empty.
    incident: str = ""


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    target: str  # "PJSIP/8001" or "" (wait: hold line or fallback queue)
    hold: bool
    recording: str
    ticket_id: str
    skill: str
    topic: str
    priority: int
    leader: bool
    reason: str

    def variables(self) -> list[tuple[str, str]]:
        """What the dialplan uses after ``AGI()``: ``HOTLINE_ROUTE`` alone (skill, topic and
        priority stay with the CTI, which owns the call's record)."""
        fields = (self.ticket_id, "1" if self.hold else "0", self.target, self.recording)
        if any(ROUTE_SEPARATOR in f for f in fields):
            raise ValueError(f"{ROUTE_SEPARATOR!r} in a route field: {fields!r}")
        return [(ROUTE_VARIABLE, ROUTE_SEPARATOR.join(fields))]


ROUTE_VARIABLE = "HOTLINE_ROUTE"
ROUTE_SEPARATOR = "|"
ROUTE_FIELDS = ("HOTLINE_TICKET", "HOTLINE_HOLD", "ROUTE_TARGET", "HOTLINE_REC")


def split_route(value: str) -> dict[str, str]:
    """``HOTLINE_ROUTE`` as ``[cti-route]`` splits it: ``CUT(HOTLINE_ROUTE,|,n)`` is the n-th
    field, empty when there are fewer."""
    parts = value.split(ROUTE_SEPARATOR)
    return {name: parts[i] if i < len(parts) else "" for i, name in enumerate(ROUTE_FIELDS)}


log = logging.getLogger(__name__)

# How close to the dialplan's timeout a question is still answered (see ``serve``).
LATE_MARGIN_S = 0.25

Decide = Callable[[RouteRequest], RouteAnswer]
AsyncDecide = Callable[[RouteRequest], Awaitable[RouteAnswer]]


def request_from_env(env: dict[str, str], peer: str = "") -> RouteRequest:
    """The request from the ``agi_*`` block. The dialplan asks from a helper Local channel
    (``[cti-route]``) and passes the citizen's uniqueid and channel as the 2nd and 3rd
    arguments; without them (the AGI run on the citizen's channel itself) the session's own
    channel is the citizen's."""
    caller = env.get("agi_callerid", "")
    if caller in ("unknown", "<unknown>"):
        caller = ""
    name = env.get("agi_calleridname", "")
    if name in ("unknown", "<unknown>"):
        name = ""
    did = env.get("agi_arg_1") or env.get("agi_dnid") or env.get("agi_extension", "")
    if did == "unknown":
        did = env.get("agi_extension", "")
    return RouteRequest(
        uniqueid=env.get("agi_arg_2") or env.get("agi_uniqueid", ""),
        channel=env.get("agi_arg_3") or env.get("agi_channel", ""),
        caller=caller,
        caller_name=name,
        did=did,
        peer=peer,
        incident=incident_of(env.get("agi_arg_5", "")),
    )


def incident_of(value: str) -> str:
    """110's incident number as the route may take it (the dialplan filters it already; a
    script run otherwise may not)."""
    return value if 0 < len(value) <= 64 and value.isascii() and value.isalnum() else ""


def asked_at(env: dict[str, str]) -> tuple[float, float] | None:
    """When the question was asked by Asterisk's clock, and how early it may really have
    been: the 4th argument (epoch with milliseconds, from ``[cti-route]``), else the epoch
    part of ``agi_uniqueid`` (whole seconds: up to 1 s earlier). None if neither is there."""
    try:
        return float(env.get("agi_arg_4", "")), 0.0
    except ValueError:
        pass
    head = env.get("agi_uniqueid", "").partition(".")[0]
    return (float(head), 1.0) if head.isdigit() else None


async def serve(
    session: object,
    decide: AsyncDecide,
    *,
    give_up_s: float | None = None,
    pbx_time: Callable[[], float | None] | None = None,
) -> bool:
    """FastAGI entry. ``session`` is a ``cti.agi.server.AgiSession``.

    ``give_up_s``: how long the dialplan waits for the answer (``CTI_ROUTE_TIMEOUT``). A
    session older than that by Asterisk's clock (``pbx_time``; the CTI was stalled while the
    question sat in its accept queue) is closed unanswered: the caller has already gone on to
    the fallback queue, and a seat reserved for it now would sit idle. Without Asterisk's
    time every question is answered. Returns whether the call was answered."""
    from cti.agi.server import AgiSession

    assert isinstance(session, AgiSession)
    if _too_late(session.env, give_up_s, pbx_time):
        return False
    answer = await decide(request_from_env(session.env, session.peer))
    await session.set_variables(answer.variables(), last=True)
    return True


def answer_now(
    session: object,
    decide: Decide,
    *,
    give_up_s: float | None = None,
    pbx_time: Callable[[], float | None] | None = None,
) -> list[str] | None:
    """``serve`` for a decision that needs no waiting (``FastAgiServer(immediate=...)``): the
    route's command, written as the question's last bytes are read; None when the question
    came too late (as in ``serve``)."""
    from cti.agi.server import AgiSession, set_variable_lines

    assert isinstance(session, AgiSession)
    if _too_late(session.env, give_up_s, pbx_time):
        return None
    answer = decide(request_from_env(session.env, session.peer))
    return set_variable_lines(answer.variables())


def _too_late(
    env: dict[str, str], give_up_s: float | None, pbx_time: Callable[[], float | None] | None
) -> bool:
    now = pbx_time() if pbx_time is not None else None
    asked = asked_at(env)
    if give_up_s is None or now is None or asked is None:
        return False
    started, slack = asked
    # Answering in the last moments of the wait would race the Dial's timeout: an answer
    # landing after it reserves a seat for a caller already in the queue.
    if now - started <= give_up_s + slack - LATE_MARGIN_S:
        return False
    log.warning(
        "route: %s asked %.3f s ago, past the dialplan's wait; left unanswered",
        env.get("agi_arg_2") or env.get("agi_uniqueid", ""),
        now - started,
    )
    return True


def run_classic(agi: object, decide: Decide) -> RouteAnswer:
    """Classic AGI entry on a pyst2 ``AGI`` object (stdin/stdout, main thread)."""
    env = dict(getattr(agi, "env"))  # noqa: B009  pyst2 keeps the agi_* block here
    answer = decide(request_from_env(env))
    for name, value in answer.variables():
        agi.set_variable(name, value)  # type: ignore[attr-defined]
    return answer


def main() -> int:  # pragma: no cover - exercised as a subprocess by tests and bench
    """``python -m agi_scripts.route``: one call, one process."""
    started = time.perf_counter()
    from asterisk.agi import AGI

    from agi_scripts.classic import snapshot_decider

    agi = AGI()
    decide = snapshot_decider()
    answer = run_classic(agi, decide)
    agi.verbose(f"hotline route {answer.reason} {time.perf_counter() - started:.3f}s", 3)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
