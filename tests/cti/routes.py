"""A routing answer for tests of the FastAGI route that do not run the router."""

from __future__ import annotations

from agi_scripts.route import RouteAnswer


def answer(target: str = "PJSIP/8001") -> RouteAnswer:
    return RouteAnswer(
        target=target,
        hold=not target,
        recording="/rec/1.wav",
        ticket_id="T1",
        skill="general",
        topic="综合咨询",
        priority=0,
        leader=False,
        reason="skill",
    )
