"""The carrier's side of the trunk: citizens' calls placed by SIPp (Debian ``sip-tester``)
from the rig's carrier address (127.X.Y.2), the address the trunk's ``identify`` matches.

A run is one SIPp process placing ``count`` calls at ``rate`` calls/s from an injection file
of (number, name) pairs; the scenario is ``citizen.xml`` with the run's patience and talk
time put in. Each run binds its own UDP port on that address (the trunk matches the address
only). When a seat's phone is bridged to a caller, the harness tells that caller with an
in-dialog NOTIFY (``Answered``), which starts the caller's talk time; without it the caller
gives up after its patience.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.asterisk.observer import Message, Observer
from tests.asterisk.pbx import free_port

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "citizen.xml"
SIPP = "sipp"

NAMES = ("张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十", "郑一", "陈二")


@dataclass
class Caller:
    number: str
    name: str
    channel: str = ""  # PJSIP/trunk-... once Asterisk created it
    uniqueid: str = ""
    invite_ts: float = 0.0  # Asterisk's clock: Newchannel of the caller's channel
    answered_ts: float = 0.0  # Asterisk's clock: a seat's phone bridged (DialEnd ANSWER)
    seat_channel: str = ""
    hangup_ts: float = 0.0
    notified: bool = False
    notified_at: float = 0.0  # monotonic: when the "answered" NOTIFY went out
    left: bool = False  # told to hang up (patience over, talk over, or by the test)
    patience_s: float = 60.0
    talk_s: float | None = 3.0  # None: talks until the test ends the call
    timer: threading.Timer | None = None

    @property
    def answered(self) -> bool:
        return self.answered_ts > 0

    @property
    def seat(self) -> str:
        """The extension of the phone that answered ("8001")."""
        return self.seat_channel.removeprefix("PJSIP/").rsplit("-", 1)[0]


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    callers: list[Caller]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"SIPp still running after {timeout} s") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class Carrier:
    """Places calls and follows them on the observer."""

    def __init__(
        self,
        pbx_port: int,
        observer: Observer,
        workdir: Path,
        audio: Path,
        ip: str,
        seed: int = 12345,
    ) -> None:
        self.ip = ip
        self.rng = random.Random(seed)
        self.pbx_port = pbx_port
        self.observer = observer
        self.dir = workdir / "carrier"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.audio = audio
        self.by_number: dict[str, Caller] = {}
        self.by_channel: dict[str, Caller] = {}
        self._lock = threading.Lock()
        self._next = 13800000000
        self._runs: list[Run] = []
        observer.on(self._event)

    # --- following calls on the observer (reader thread) ----------------------------------

    def _event(self, e: Message) -> None:
        name = e.name
        if name == "Newchannel" and e.get("Channel").startswith("PJSIP/trunk-"):
            with self._lock:
                caller = self.by_number.get(e.get("CallerIDNum"))
                if caller is None or caller.channel:
                    return
                caller.channel = e.get("Channel")
                caller.uniqueid = e.get("Uniqueid")
                caller.invite_ts = e.ts
                self.by_channel[caller.channel] = caller
                self._later(caller, caller.patience_s)
        elif name == "DialEnd" and e.get("DialStatus") == "ANSWER":
            dest = e.get("DestChannel")
            if not dest.startswith("PJSIP/") or dest.startswith("PJSIP/trunk-"):
                return
            with self._lock:
                caller = self.by_channel.get(e.get("Channel"))
                if caller is None or caller.notified or caller.left:
                    return
                caller.notified = True
                caller.notified_at = time.monotonic()
                caller.answered_ts = e.ts
                caller.seat_channel = dest
                if caller.timer is not None:
                    caller.timer.cancel()
                if caller.talk_s is not None:
                    self._later(caller, caller.talk_s)
            self._notify(caller, "hotline-answered")
        elif name == "Hangup":
            with self._lock:
                caller = self.by_channel.get(e.get("Channel"))
                if caller is not None:
                    caller.hangup_ts = e.ts
                    if caller.timer is not None:
                        caller.timer.cancel()

    def _later(self, caller: Caller, delay: float) -> None:
        if caller.timer is not None:
            caller.timer.cancel()
        caller.timer = threading.Timer(delay, self.leave, (caller,))
        caller.timer.daemon = True
        caller.timer.start()

    def _notify(self, caller: Caller, event: str) -> None:
        try:
            self.observer.send("PJSIPNotify", Channel=caller.channel, Variable=f"Event={event}")
        except OSError:
            pass  # Asterisk is restarting: the call is gone anyway

    def leave(self, caller: Caller) -> None:
        """The caller hangs up now (SIPp sends BYE on the NOTIFY)."""
        with self._lock:
            if caller.left or caller.hangup_ts or not caller.channel:
                return
            # SIPp takes one NOTIFY at a time: a second one arriving before it has answered
            # the first (seat answered and hang up at once) aborts its side of the call
            since = time.monotonic() - caller.notified_at
            if caller.notified and since < 0.1:
                self._later(caller, 0.1 - since)
                return
            caller.left = True
            if caller.timer is not None:
                caller.timer.cancel()
        self._notify(caller, "hotline-hangup")

    # --- placing calls ---------------------------------------------------------------------

    def callers(
        self,
        count: int,
        names: tuple[str, ...] = NAMES,
        patience_s: float = 60.0,
        talk_s: tuple[float, float] | None = (3.0, 3.0),
    ) -> list[Caller]:
        out = []
        with self._lock:
            for i in range(count):
                self._next += 1
                talk = None if talk_s is None else self.rng.uniform(*talk_s)
                caller = Caller(
                    str(self._next), names[i % len(names)], patience_s=patience_s, talk_s=talk
                )
                self.by_number[caller.number] = caller
                out.append(caller)
        return out

    def call(
        self,
        count: int = 1,
        *,
        rate: float = 1.0,
        patience_s: float = 60.0,
        talk_s: tuple[float, float] | None = (3.0, 3.0),
        did: str = "12345",
        names: tuple[str, ...] = NAMES,
    ) -> Run:
        """``count`` calls at ``rate`` per second; each caller gives up after ``patience_s``
        unless a seat answers, then talks a time drawn from ``talk_s`` (None: until the
        test calls ``leave``)."""
        callers = self.callers(count, names, patience_s, talk_s)
        tag = f"{callers[0].number}"
        inf = self.dir / f"callers-{tag}.csv"
        inf.write_text(
            "SEQUENTIAL\n" + "".join(f"{c.number};{c.name};\n" for c in callers),
            encoding="utf-8",
        )
        scenario = self.dir / f"citizen-{tag}.xml"
        text = SCENARIO.read_text(encoding="utf-8")
        audio = (
            f'<nop><action><exec rtp_stream="{self.audio},-1,0"/></action></nop>'
            if self.audio.exists()
            else ""
        )
        longest_talk = 600.0 if talk_s is None else talk_s[1]
        text = (
            text.replace("AUDIO_ACTION", audio)
            .replace("MAX_WAIT_MS", str(int((patience_s + 30) * 1000)))
            .replace("MAX_TALK_MS", str(int((longest_talk + 30) * 1000)))
        )
        scenario.write_text(text, encoding="utf-8")
        log = self.dir / f"sipp-{tag}.log"
        port = free_port(socket.SOCK_DGRAM, self.ip)
        media = free_port(socket.SOCK_DGRAM, self.ip)
        cmd = [
            SIPP,
            f"127.0.0.1:{self.pbx_port}",
            "-sf", str(scenario),
            "-inf", str(inf),
            "-s", did,
            "-i", self.ip,
            "-p", str(port),
            "-mi", self.ip,
            "-mp", str(media),
            "-m", str(count),
            # -r calls every -rp milliseconds: rate per second with a thousandth's precision
            "-r", str(max(1, int(rate * 1000))),
            "-rp", "1000000",
            "-l", str(count),
            "-nostdin",
            "-timeout", str(int(count / rate + patience_s + longest_talk + 90)),
            "-trace_err", "-error_file", str(self.dir / f"sipp-{tag}.errors"),
            "-trace_msg", "-message_file", str(self.dir / f"sipp-{tag}.messages"),
        ]  # fmt: skip
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                cmd,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run = Run(proc, callers, log)
        self._runs.append(run)
        return run

    def stop(self) -> None:
        with self._lock:
            for caller in self.by_number.values():
                if caller.timer is not None:
                    caller.timer.cancel()
        for run in self._runs:
            run.kill()


def make_audio(target: Path) -> Path:
    """The citizen's voice: espeak-ng's Mandarin, 8 kHz mu-law WAV for SIPp's rtp_stream."""
    if target.exists():
        return target
    raw = target.with_suffix(".espeak.wav")
    text = "你好，我家楼下的路灯坏了三天了，麻烦派人来修一下。"
    try:
        subprocess.run(
            ["espeak-ng", "-v", "cmn", "-w", str(raw), text],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(target)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return target  # no audio: the calls are silent, nothing else changes
    return target
