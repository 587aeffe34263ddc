"""Shared helpers of the ticket tests: users, departments, settings, and a way to drive a
ticket into any state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from console.security import User
from cti.bus import Bus
from cti.events import Event
from tickets.service import TicketService
from tickets.settings import DeadlineRule, DepartmentSettings, TicketSettings
from tickets.views import TicketView


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


class RecordingBus(Bus):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self.subscribe_all(self.events.append)


DEPARTMENTS = [
    DepartmentSettings(id="zjj", name="住建局", contact_name="王工", contact_phone="13900000001"),
    DepartmentSettings(id="cgj", name="城管局", contact_name="李工", contact_phone="13900000002"),
    DepartmentSettings(id="scj", name="市场监管局", contact_phone="13900000003"),
    DepartmentSettings(id="gaj", name="公安局", co_handling=False),
]

SETTINGS = TicketSettings(
    rules=[
        DeadlineRule(category="咨询", limit="1wd", anchor="dispatch"),
        DeadlineRule(category="复杂咨询", limit="3wd", anchor="dispatch"),
        DeadlineRule(category="投诉", limit="7wd", anchor="dispatch", response_limit="10min"),
        DeadlineRule(category="签收计时", limit="2wd", anchor="sign_off"),
    ],
    default_rule=DeadlineRule(limit="5wd", response_limit="30min"),
)


def user(*roles: str, name: str = "", department: str | None = None) -> User:
    tags = set(roles) | ({"department"} if department else set())
    return User(
        1, name or "-".join(sorted(tags)), name or "user", frozenset(tags), department_id=department
    )


AGENT = user("agent", name="a1001")
LEADER = user("leader", name="leader1")
SUPERVISOR = user("supervisor", name="sup1")
WINDOW = user("window", name="win1")
ADMIN = user("admin", name="root")
ZJJ = user(name="zjj-clerk", department="zjj")
CGJ = user(name="cgj-clerk", department="cgj")


# --- driving a ticket through the workflow ---------------------------------------------

# What each action needs in the tests: (who, reason, data).
STEP_ARGS: dict[str, tuple[User, str, dict[str, object]]] = {
    "answer": (AGENT, "", {"text": "按政策可直接办理"}),
    "queue_dispatch": (AGENT, "", {}),
    "dispatch": (AGENT, "", {"department": "zjj"}),
    "not_accept": (AGENT, "不属于政府职能范围", {}),
    "transfer_police": (AGENT, "涉警情", {"police_ref": "110-1"}),
    "sign_off": (ZJJ, "", {}),
    "contact_citizen": (ZJJ, "", {}),
    "return": (ZJJ, "不属于本单位职责", {"legal_basis": "《物业管理条例》第十条"}),
    "grant_return": (SUPERVISOR, "", {"department": "cgj"}),
    "refuse_return": (SUPERVISOR, "属于本单位职责", {}),
    "request_extension": (ZJJ, "需协调多部门", {"until": "2026-12-31T18:00:00+08:00"}),
    "approve_extension": (SUPERVISOR, "", {}),
    "reject_extension": (SUPERVISOR, "理由不充分", {}),
    "reply": (ZJJ, "", {"text": "已派人修复路灯"}),
    "approve_reply": (SUPERVISOR, "", {}),
    "reject_reply": (SUPERVISOR, "答复未回应诉求", {}),
    "survey_satisfied": (AGENT, "", {"rating": "satisfied"}),
    "survey_unsatisfied": (AGENT, "", {"rating": "unsatisfied"}),
    "survey_unreachable": (AGENT, "", {"rating": "unreachable"}),
    "close": (SUPERVISOR, "联席会议已处理", {}),
    "archive": (SUPERVISOR, "", {}),
}

# The shortest way from intake to each state.
PATHS: dict[str, list[str]] = {
    "intake": [],
    "answered": ["answer"],
    "pending_dispatch": ["queue_dispatch"],
    "dispatched": ["dispatch"],
    "handling": ["dispatch", "sign_off"],
    "return_review": ["dispatch", "return"],
    "extension_review": ["dispatch", "sign_off", "request_extension"],
    "reply_review": ["dispatch", "sign_off", "reply"],
    "survey": ["dispatch", "sign_off", "reply", "approve_reply"],
    "rehandling": ["dispatch", "sign_off", "reply", "approve_reply", "survey_unsatisfied"],
    "closed": ["dispatch", "sign_off", "reply", "approve_reply", "survey_satisfied"],
    "archived": ["answer", "archive"],
    "not_accepted": ["not_accept"],
    "police": ["transfer_police"],
    "merged": ["merge"],
}


def do(service: TicketService, ticket_id: str, action: str, **override: object) -> object:
    if action == "merge":
        target = open_ticket(service, call_id="target-" + ticket_id, caller="13700000000")
        return service.merge(ticket_id, target.id, AGENT)
    who, reason, data = STEP_ARGS[action]
    public = "survey" if action.startswith("survey_") else action
    merged = {**data, **override}
    return service.transition(ticket_id, public, who, reason, **merged)


_counter = iter(range(1, 1_000_000))


def open_ticket(
    service: TicketService,
    *,
    call_id: str | None = None,
    caller: str = "13812345678",
    topic: str = "咨询",
    node: str = "pbx1",
) -> TicketView:
    n = next(_counter)
    return service.open_for_call(
        f"20260915{n:06d}",
        call_id=call_id or f"call-{n}",
        node=node,
        caller=caller,
        caller_name="张伟",
        did="12345",
        topic=topic,
        agent_id="a1001",
        answered_at=service.clock(),
    )


def ticket_in(service: TicketService, state: str, **kwargs: object) -> TicketView:
    view = open_ticket(service, **kwargs)  # type: ignore[arg-type]
    for action in PATHS[state]:
        do(service, view.id, action)
    result = service.get(view.id)
    assert result.state.value == state, (state, result.state)
    return result


ROOT = Path(__file__).resolve().parents[2]


def race(
    tmp_path: Path,
    *commands: list[str],
    module: str = "tests.tickets.race_process",
    timeout: float = 180,
) -> list[Any]:
    """Start ``python -m module`` once per command, let them all go at once (each says
    "ready", then waits for "go"), return what each printed last, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    for i, command in enumerate(commands):
        with (tmp_path / f"racer{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module, *command],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
            )
    try:
        for i, proc in enumerate(procs):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == b"ready\n", (line, (tmp_path / f"racer{i}.log").read_text())
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        results = []
        for i, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=timeout)
            log = (tmp_path / f"racer{i}.log").read_text()
            assert proc.returncode == 0, log
            results.append(json.loads(out.decode().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
