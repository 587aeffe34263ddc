"""Our dialplan's shape, priority by priority, and a reader of extensions.conf to check it.

The simulator runs the dialplan as Python (``cti.testing.dialplan``); the Newexten events it
makes carry the priorities and application names of the tables below. The tables list every
priority of every extension of config/asterisk/extensions.conf with its label and
application, and the tests compare them with the file itself, priority for priority: a change
of the file that the model does not follow fails a test instead of going unnoticed (as the
Local-channel route did).
"""

from __future__ import annotations

import re
from pathlib import Path

EXTENSIONS_CONF = Path(__file__).resolve().parents[2] / "config" / "asterisk" / "extensions.conf"

Step = tuple[str, str | None, str]  # (our name for the step, label in the file, application)

FROM_CITIZEN: tuple[Step, ...] = (
    ("noop", None, "NoOp"),
    ("answer", None, "Answer"),
    ("did", None, "Set"),
    ("incident", None, "Set"),
    ("rec", None, "Set"),
    ("target", None, "Set"),
    ("hold", None, "Set"),
    ("ticket", None, "Set"),
    ("guard", None, "GotoIf"),
    ("caller_uid", None, "Set"),
    ("caller_chan", None, "Set"),
    ("route", None, "Dial"),
    ("route_answer", None, "Set"),
    ("route_split", None, "ExecIf"),
    ("mixmonitor", "routed", "MixMonitor"),
    ("if_target", None, "GotoIf"),
    ("if_hold", None, "GotoIf"),
    ("queue", "queue", "Queue"),
    ("queue_hangup", None, "Hangup"),
    ("dial", "dial", "Dial"),
    ("dial_check", None, "GotoIf"),
    ("dial_to_hold", None, "Goto"),
    ("done", "done", "Hangup"),
)
CTI_ROUTE: tuple[Step, ...] = (
    ("agi", None, "AGI"),
    ("if_refused", None, "GotoIf"),
    ("agi_2", None, "AGI"),
    ("if_route", "asked", "GotoIf"),
    ("share", None, "Set"),
    ("end", "end", "Hangup"),
)
CTI_HOLD: tuple[Step, ...] = (
    ("noop", None, "NoOp"),
    ("wait", "wait", "MusicOnHold"),
    ("check", None, "GotoIf"),
    ("again", None, "Goto"),
    ("queue", "queue", "Queue"),
    ("hangup", None, "Hangup"),
)
CTI_DELIVER: tuple[Step, ...] = (
    ("dial", None, "Dial"),
    ("check", None, "GotoIf"),
    ("to_hold", None, "Goto"),
    ("done", "done", "Hangup"),
)
FROM_NODE: tuple[Step, ...] = (
    ("dial", None, "Dial"),
    ("if_busy", None, "GotoIf"),
    ("noanswer", None, "Hangup"),
    ("busy", "busy", "Hangup"),
)
DIAL_ONLY: tuple[Step, ...] = (("dial", None, "Dial"),)
CTI_CALLBACK: tuple[Step, ...] = (
    ("if_recording", None, "GotoIf"),
    ("rec", None, "Set"),
    ("mixmonitor", None, "MixMonitor"),
    ("dial", "dial", "Dial"),
)

# (context, extension pattern) -> its priorities, for every extension of the file.
DIALPLAN: dict[tuple[str, str], tuple[Step, ...]] = {
    ("from-citizen", "_X."): FROM_CITIZEN,
    ("cti-route", "_X."): CTI_ROUTE,
    ("cti-hold", "s"): CTI_HOLD,
    ("cti-deliver", "_X."): CTI_DELIVER,
    ("cti-deliver-remote", "_X."): CTI_DELIVER,
    ("from-node", "_X."): FROM_NODE,
    ("from-seat", "_9XXX"): DIAL_ONLY,
    ("from-seat", "_1XXXXXXXXXX"): DIAL_ONLY,
    ("from-seat", "110"): DIAL_ONLY,
    ("cti-window", "_X."): DIAL_ONLY,
    ("cti-conf", "_X."): (("confbridge", None, "ConfBridge"),),
    ("cti-callback", "_X."): CTI_CALLBACK,
    ("cti-police", "_X."): (("callerid", None, "Set"), ("dial", None, "Dial")),
    ("cti-spy", "s"): (("spy", None, "ChanSpy"),),
}


def priorities(steps: tuple[Step, ...]) -> dict[str, int]:
    """Our step names -> priority numbers (1-based, in order)."""
    return {name: n for n, (name, _, _) in enumerate(steps, 1)}


_EXTEN = re.compile(r"^exten\s*=>\s*([^,]+),\s*1\s*(?:\(([\w-]+)\))?\s*,\s*(\w+)\(")
_SAME = re.compile(r"^same\s*=>\s*n\s*(?:\(([\w-]+)\))?\s*,\s*(\w+)\(")


def read_extensions(text: str) -> dict[tuple[str, str], list[tuple[str | None, str]]]:
    """(context, extension) -> [(label, application)] per priority, from extensions.conf
    written as ours is (``exten => X,1,...`` then ``same => n...``)."""
    plan: dict[tuple[str, str], list[tuple[str | None, str]]] = {}
    context = ""
    current: list[tuple[str | None, str]] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            context, current = line[1:-1], None
            continue
        if m := _EXTEN.match(line):
            current = plan.setdefault((context, m.group(1).strip()), [])
            current.append((m.group(2), m.group(3)))
        elif (m := _SAME.match(line)) and current is not None:
            current.append((m.group(1), m.group(2)))
    return {key: steps for key, steps in plan.items() if key[0] not in ("general", "globals")}


def read_globals(text: str) -> dict[str, str]:
    """The [globals] section of extensions.conf."""
    section = text.split("[globals]", 1)[1].split("\n[", 1)[0]
    values: dict[str, str] = {}
    for raw in section.splitlines():
        line = raw.split(";", 1)[0].strip()
        if "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
