"""The routing decision for classic AGI (a process per call): rebuilt from the database.

A classic script has no live state: it reads the configuration, the agents' last known states
(written by the CTI) and the caller's open tickets, builds a ``routing.Router`` with them and
makes the same decision the FastAGI route makes from memory. That is the honest cost of the
classic mode: interpreter start, imports, configuration, one database round trip per call.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from agi_scripts.route import Decide, RouteAnswer, RouteRequest


def snapshot_decider(config_path: str | None = None) -> Decide:
    from sqlalchemy import select

    from cti import config as config_mod
    from cti.db import make_engine, session_factory
    from cti.models import AgentRow, CallerFlagRow
    from recordings.layout import recording_path
    from routing import CallerInfo, Router, RoutingPlan
    from tickets.models import Ticket
    from tickets.numbers import TicketNumbers
    from tickets.statemachine import OPEN_STATES

    settings = config_mod.load(config_path)
    engine = make_engine(settings.database.url)
    sessions = session_factory(engine)
    plan = RoutingPlan.from_settings(
        settings.routing,
        list(settings.hotlines),
        list(settings.agents),
        list(settings.leader_shifts),
    )
    router = Router(plan)
    now = time.time()
    with sessions() as s:
        agents = s.execute(
            select(AgentRow.id, AgentRow.seat, AgentRow.state, AgentRow.state_since).where(
                AgentRow.state != "logged_out", AgentRow.seat != ""
            )
        ).all()
    known = {a.id for a in settings.agents}
    for agent_id, seat, state, since in sorted(agents, key=lambda r: r.state_since):
        if agent_id not in known:
            continue
        at = since.timestamp() if since else now
        router.agent_login(agent_id, seat, at)
        if state == "ready":
            router.agent_ready(agent_id, at)

    rec_root = settings.recordings.asterisk_dir or settings.recordings.dir
    # A process per call: one number each, reserved in the database like the CTI's.
    numbers = TicketNumbers(sessions, settings.site.timezone, block=1)

    def decide(req: RouteRequest) -> RouteAnswer:
        with sessions() as s:
            row = s.execute(
                select(Ticket.agent_id)
                .where(Ticket.caller == req.caller, Ticket.state.in_([str(x) for x in OPEN_STATES]))
                .order_by(Ticket.opened_at.desc())
                .limit(1)
            ).first()
            flags = s.get(CallerFlagRow, req.caller) if req.caller else None
        info = CallerInfo(
            caller=req.caller,
            enterprise=req.caller in settings.routing.enterprise_callers
            or bool(flags and flags.enterprise),
            flagged=req.caller in settings.routing.flagged_callers or bool(flags and flags.flagged),
            open_ticket=row is not None,
            last_agent_id=(row[0] or None) if row is not None else None,
        )
        decision = router.new_call(req.uniqueid, req.did, info, time.time())
        ticket_id = numbers.next()
        return RouteAnswer(
            target=f"PJSIP/{decision.seat}" if decision.seat else "",
            hold=False,  # nobody holds the call's place for a classic script: the queue does
            recording=recording_path(rec_root, datetime.now(UTC), ticket_id, req.uniqueid),
            ticket_id=ticket_id,
            skill=decision.skill,
            topic=decision.topic,
            priority=decision.priority,
            leader=decision.leader,
            reason=decision.reason,
        )

    return decide
