"""The live transcript through the console: the rows a live follower writes, relayed by the
hub to the agent on the call and to the supervisors only, and no poll while nothing is
recorded."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from console.live import Client, LiveHub
from console.security import User
from cti.app import Hotline
from cti.calls.model import Call
from cti.events import CallAnswered, RecordingStarted
from recordings.livetext import LiveText, write_updates

NOW = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)
LI = User(1, "li", "李娜", frozenset({"agent"}), agent_id="li")
WANG = User(2, "wang", "王强", frozenset({"agent"}), agent_id="wang")
BOSS = User(3, "boss", "班长", frozenset({"supervisor"}))
CLERK = User(4, "clerk", "窗口", frozenset({"window"}), window_id="shebao")


def recorded_call(hotline: Hotline, call_id: str, agent_id: str) -> None:
    """A call of the tracker being recorded (what MixMonitor's start leaves behind)."""
    call = Call(
        node="pbx1",
        call_id=call_id,
        direction="inbound",
        channel=f"PJSIP/trunk-{call_id}",
        uniqueid=call_id,
        caller="13800000000",
        caller_name="",
        did="12345",
        started_at=NOW,
        started_mono=time.monotonic(),
        state="talking",
        recording=f"/rec/{call_id}.wav",
        agent_id=agent_id,
    )
    hotline.tracker.calls[("pbx1", call_id)] = call
    hotline.bus.publish(
        CallAnswered(
            node="pbx1",
            call_id=call_id,
            seat="",
            agent_id=agent_id,
            caller="13800000000",
            caller_name="",
            did="12345",
            topic="",
            wait_s=1.0,
            at=NOW,
        )
    )


def follower_says(
    hotline: Hotline, call_id: str, leg: LiveText, closed: list[Any], partial: str
) -> None:
    """What a live follower writes for one round of one leg (recordings.live._publish)."""
    with hotline.sessions() as s:
        write_updates(s, 1, call_id, leg.update(closed, partial, 9.0), datetime.now(UTC))
        s.commit()


def lines(client: Client) -> list[dict[str, Any]]:
    got = [client.queue.get_nowait() for _ in range(client.queue.qsize())]
    return [x for x in got if x["type"] == "LiveTranscript"]


async def test_lines_reach_the_agent_of_the_call_and_the_supervisors(hotline: Hotline) -> None:
    hub = LiveHub(hotline)
    assert hub.transcripts is not None
    hub.transcripts.poll_s = 0.02
    li, wang, boss, clerk = (hub.connect(u) for u in (LI, WANG, BOSS, CLERK))
    recorded_call(hotline, "c1", "li")
    recorded_call(hotline, "c2", "wang")
    hotline.bus.publish(RecordingStarted(node="pbx1", call_id="c1", path="/rec/c1.wav", at=NOW))
    citizen1, citizen2 = LiveText("citizen"), LiveText("citizen")
    follower_says(hotline, "c1", citizen1, [], "我 的 电话 是 一三八零零一二三四五六")
    follower_says(hotline, "c1", citizen1, [("我 的 电话 是 一三八零零一二三四五六", 0.5, 4.0)], "")
    follower_says(hotline, "c2", citizen2, [], "你好")
    seen: dict[str, list[dict[str, Any]]] = {"li": [], "wang": [], "boss": [], "clerk": []}
    deadline = time.monotonic() + 10
    while len(seen["boss"]) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        for name, client in (("li", li), ("wang", wang), ("boss", boss), ("clerk", clerk)):
            seen[name] += lines(client)
    for name, client in (("li", li), ("wang", wang), ("clerk", clerk)):
        seen[name] += lines(client)
    assert [(x["call_id"], x["seq"], x["final"]) for x in seen["li"]] == [
        ("c1", 0, False),
        ("c1", 0, True),
    ]
    # Masked as the stored transcript: the partial as much as the final.
    assert [x["text"] for x in seen["li"]] == ["我 的 电话 是 138****3456"] * 2
    assert [x["call_id"] for x in seen["wang"]] == ["c2"]
    assert sorted(x["call_id"] for x in seen["boss"]) == ["c1", "c1", "c2"]
    assert seen["clerk"] == []
    # A supervisor's wallboard opened now draws the calls' transcripts so far.
    snap = hub.snapshot(hub.connect(BOSS))
    assert [(x["seq"], x["final"]) for x in snap["transcripts"]["c1"]] == [(0, True)]
    await hub.close()


async def test_nothing_is_polled_while_no_call_is_recorded(hotline: Hotline) -> None:
    hub = LiveHub(hotline)
    assert hub.transcripts is not None
    boss = hub.connect(BOSS)
    hotline.bus.publish(RecordingStarted(node="pbx1", call_id="c9", path="", at=NOW))
    await asyncio.sleep(0.05)
    assert hub.transcripts.polls == 0 and not hub.transcripts.running
    await hub.disconnect(boss)
    # Nobody to tell: a recorded call costs no poll either.
    recorded_call(hotline, "c1", "li")
    hotline.bus.publish(RecordingStarted(node="pbx1", call_id="c1", path="/rec/c1.wav", at=NOW))
    await asyncio.sleep(0.05)
    assert hub.transcripts.polls == 0
    await hub.close()
