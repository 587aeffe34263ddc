"""The whole rig: Asterisk from the project's configuration, baresip phones at the seats and
the window, the AMI observer, SIPp as the carrier, ``hotline serve`` with agents logged in
through the console's REST API. One per test session; scenarios that break something
(kill the CTI, stop it, restart Asterisk) leave it to ``ready()`` to mend before the next.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.asterisk.carrier import Caller, Carrier, make_audio
from tests.asterisk.observer import Observer
from tests.asterisk.pbx import (
    OBSERVER_USER,
    Asterisk,
    PbxPorts,
    free_port,
    loopback_net,
    modules_dir,
)
from tests.asterisk.phones import Phone, wait_registered
from tests.asterisk.site import (
    SEATS,
    WINDOW_EXT,
    WINDOW_ID,
    Cti,
    Desk,
    hotline,
    site_data,
    write_config,
)


def until(cond: Callable[[], Any], timeout: float, step: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout} s: {what or cond}")
        time.sleep(step)


class Rig:
    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir
        self.rec_dir = workdir / "rec"
        self.ports = PbxPorts(sip=free_port(socket.SOCK_DGRAM), ami=free_port(), agi=free_port())
        self.console_port = free_port()
        self.base = f"http://127.0.0.1:{self.console_port}"
        self.ami_secret = secrets.token_urlsafe(16)
        self.db_url = f"sqlite:///{workdir / 'hotline.db'}"
        # 127.X.Y.2 the carrier, 127.X.Y.3 ... the phones (seats, then the window)
        self.net = loopback_net(len(SEATS) + 1)
        self.carrier_ip = f"{self.net}.2"
        self.pbx: Asterisk | None = None
        self.observer: Observer | None = None
        self.carrier: Carrier | None = None
        self.cti: Cti | None = None
        self.phones: dict[str, Phone] = {}
        self.desks: dict[str, Desk] = {}
        self.passwords: dict[str, str] = {}
        self.notes: list[str] = []  # what the rig saw that the report should say

    # --- start ------------------------------------------------------------------------------

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = write_config(
            site_data(
                db_url=self.db_url,
                ami_port=self.ports.ami,
                ami_secret=self.ami_secret,
                agi_port=self.ports.agi,
                console_port=self.console_port,
                rec_dir=self.rec_dir,
                cdr_path=self.dir / "pbx" / "log" / "cdr-custom" / "hotline.csv",
                workdir=self.dir,
            ),
            self.dir / "hotline.toml",
        )
        seats_conf = self.dir / "pjsip_seats.conf"
        secrets_file = self.dir / "pjsip_secrets.json"
        hotline(
            "seats", "pjsip", "--config", str(self.config),
            "--output", str(seats_conf), "--secrets", str(secrets_file),
        )  # fmt: skip
        sip_passwords = json.loads(secrets_file.read_text())["passwords"]
        self.pbx = Asterisk(
            self.binary,
            modules_dir(self.binary),
            self.dir / "pbx",
            self.ports,
            ami_secret=self.ami_secret,
            observer_secret=secrets.token_urlsafe(16),
            rec_dir=self.rec_dir,
            seats_conf=seats_conf,
            carrier_ip=self.carrier_ip,
        )
        self.pbx.write_config()
        self.pbx.start()
        self.boot_log_end = self.pbx.log_offset()  # what follows is the calls' doing
        self.observer = Observer(self.ports.ami, OBSERVER_USER, self.pbx.observer_secret)
        self.observer.start()
        self.carrier = Carrier(
            self.ports.sip,
            self.observer,
            self.dir,
            make_audio(self.dir / "citizen.wav"),
            self.carrier_ip,
        )
        rtp_base = random.SystemRandom().randrange(20000, 50000, 1000)
        for i, ext in enumerate([*SEATS, WINDOW_EXT]):
            phone = Phone(
                ext,
                sip_passwords[ext],
                f"{self.net}.{3 + i}",
                self.ports.sip,
                self.dir,
                rtp_ports=(rtp_base + 200 * i, rtp_base + 199 + 200 * i),
                tone_hz=440 + 110 * i,
            )
            phone.start()
            self.phones[ext] = phone
        wait_registered(self.pbx, list(self.phones))
        self._users()
        self.cti = Cti(self.config, self.dir)
        self.cti.start()
        self.ready()

    def _users(self) -> None:
        """Console logins, created the way a site does (``hotline users add``)."""
        cfg = str(self.config)
        hotline("db", "upgrade", "--config", cfg)
        users: list[tuple[str, list[str]]] = [
            (agent, ["--role", "agent", "--agent-id", agent]) for agent in SEATS.values()
        ]
        users.append(("clerk", ["--role", "window", "--window-id", WINDOW_ID]))
        users.append(("boss", ["--role", "supervisor"]))
        for name, flags in users:
            password = secrets.token_urlsafe(12)
            self.passwords[name] = password
            hotline(
                "users", "add", name, *flags, "--password-stdin", "--config", cfg,
                stdin=password + "\n",
            )  # fmt: skip
        for name in self.passwords:
            self.desks[name] = Desk(self.base, name, self.passwords[name])

    # --- state between scenarios ------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        try:
            r = httpx.get(f"{self.base}/healthz", timeout=2)
        except httpx.HTTPError:
            return {}
        return dict(r.json())

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"{self.base}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def ready(self, agents: list[str] | None = None, timeout: float = 30.0) -> None:
        """Asterisk up, every phone registered, the CTI up and connected with a fresh
        heartbeat, no call left, and ``agents`` (default all) logged in and ready, the
        others logged out."""
        assert self.pbx is not None and self.cti is not None
        if self.pbx.proc is not None and self.pbx.proc.poll() is not None:
            self.pbx.start()
        if self.cti.stopped:
            self.cti.signal(signal.SIGCONT)
        if not self.cti.alive:
            self.cti.start()
        for phone in self.phones.values():
            if not phone.running:
                phone.start()
        wait_registered(self.pbx, list(self.phones), timeout)
        until(
            lambda: self.health().get("status") == "ok", timeout, what="CTI healthy and connected"
        )
        self.hangup_all()
        until(lambda: self.pbx.channels() == 0, timeout, what="no channel left")  # type: ignore[union-attr]
        until(lambda: self.health().get("calls") == 0, timeout, what="CTI: no active call")
        until(self.heartbeat_fresh, timeout, what="fresh heartbeat")
        wanted = list(SEATS.values()) if agents is None else agents
        for ext, agent in SEATS.items():
            desk = self.desks[agent]
            if not desk.csrf:
                desk.login()
            if agent in wanted:
                self.agent_ready(agent, ext)
            else:
                me = desk.ok("GET", "/api/agents/me")
                if me.get("state") != "logged_out":
                    desk.ok("POST", "/api/agents/me/logout")
        self._acd_agrees(wanted)

    def _acd_agrees(self, wanted: list[str]) -> None:
        """Each scenario starts with the ACD seeing the agents as their desktops do. A
        disagreement left by the previous scenario is repaired (not ready, then ready) and
        noted for the report, so that one bug does not fail every scenario after it."""
        boss = self.desks["boss"]
        if not boss.csrf:
            boss.login()
        line = boss.ok("GET", "/api/calls/waiting?agents=1")
        acd = {a["agent_id"]: a["state"] for a in line["agents"]}
        for agent in wanted:
            if acd.get(agent) != "ready":
                self.notes.append(f"ACD had {agent} {acd.get(agent)!r} while ready: repaired")
                desk = self.desks[agent]
                desk.ok("POST", "/api/agents/me/not-ready", {"reason": "break"})
                desk.ok("POST", "/api/agents/me/ready")

    def agent_ready(self, agent: str, ext: str) -> None:
        desk = self.desks[agent]

        def ready() -> bool:
            me = desk.ok("GET", "/api/agents/me")
            if me.get("state") == "ready" and me.get("seat") == ext:
                return True
            if me.get("state") == "logged_out" or me.get("seat") != ext:
                r = desk.post("/api/agents/me/login", {"seat": ext, "ready": True})
            else:
                r = desk.post("/api/agents/me/ready")
            return r.status_code < 400 and r.json().get("state") == "ready"

        until(ready, 15, step=0.3, what=f"agent {agent} ready at {ext}")

    def heartbeat_fresh(self) -> bool:
        assert self.pbx is not None
        out = self.pbx.rx("database get cti heartbeat")
        try:
            value = float(out.split("Value:")[1].strip())
        except (IndexError, ValueError):
            return False
        return time.time() - value <= 2.0

    def hangup_all(self) -> None:
        assert self.pbx is not None
        if self.pbx.channels() > 0:
            self.pbx.rx("channel request hangup all")

    # --- reading the outcome ----------------------------------------------------------------

    def db(self) -> Any:
        from cti.db import make_engine, session_factory

        if not hasattr(self, "_sessions"):
            self._engine = make_engine(self.db_url)
            self._sessions = session_factory(self._engine)
        return self._sessions

    def ledger(self) -> dict[str, Any]:
        """Calls by Linkedid (the citizen channel's uniqueid), ticket ids by call,
        the ticket count and callback tasks by caller (``tests.reliability.helpers``)."""
        from tests.reliability.helpers import ledger

        return dict(ledger(self.db()))

    def settle(self, callers: list[Caller], timeout: float = 60.0) -> dict[str, Any]:
        """Until every caller's channel is gone and the CTI has written each call's end;
        returns the ledger."""
        until(
            lambda: all(c.hangup_ts for c in callers),
            timeout,
            what=f"callers hung up: {[c.number for c in callers if not c.hangup_ts]}",
        )

        def written() -> dict[str, Any] | None:
            book = self.ledger()
            rows = book["rows"]
            done = all(c.uniqueid in rows and rows[c.uniqueid].ended_at for c in callers)
            return book if done else None

        return dict(until(written, timeout, step=0.3, what="calls written to the database"))

    def vars_of(self, caller: Caller) -> dict[str, str]:
        """The caller channel's dialplan variables as last set (observer VarSet)."""
        assert self.observer is not None
        return self.observer.channel_vars(caller.uniqueid)

    def contexts_of(self, caller: Caller) -> list[tuple[str, str, str]]:
        """(context, application, data) of every dialplan step of the caller's channel."""
        assert self.observer is not None
        return [
            (e.get("Context"), e.get("Application"), e.get("AppData"))
            for e in self.observer.since(0, "Newexten", Uniqueid=caller.uniqueid)
        ]

    def asterisk_problems(self) -> dict[str, int]:
        """WARNING/ERROR lines Asterisk logged after its first boot, by message (the
        timestamp and thread left out), with how often each came."""
        if self.pbx is None or not hasattr(self, "boot_log_end"):
            return {}
        counts: dict[str, int] = {}
        boot = re.compile(
            r"loader\.c|config_options\.c|res_sorcery_config|config_wizard|[Cc]onfig(uration)? "
            r"file|load config|res_crypto|Error opening directory|provisioning profiles"
        )
        for line in self.pbx.log_problems(self.boot_log_end):
            if boot.search(line):
                counts["(boot messages of the restart: missing optional .conf files)"] = (
                    counts.get("(boot messages of the restart: missing optional .conf files)", 0)
                    + 1
                )
                continue
            text = line.split("] ", 1)[-1]
            text = re.sub(r"^(WARNING|ERROR)\[\d+\](\[[^\]]*\])?", r"\1", text)
            text = re.sub(r"-[0-9a-f]{8}\b", "-…", text)
            counts[text] = counts.get(text, 0) + 1
        return counts

    # --- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        for step in (
            lambda: self.carrier and self.carrier.stop(),
            lambda: self.cti and self.cti.stop(),
            lambda: [p.stop() for p in self.phones.values()],
            lambda: self.observer and self.observer.close(),
            lambda: self.pbx and self.pbx.stop(),
            lambda: [d.close() for d in self.desks.values()],
            lambda: hasattr(self, "_engine") and self._engine.dispose(),
        ):
            try:
                step()
            except Exception as exc:  # every step runs, whatever failed before
                print(f"rig stop: {exc!r}")
