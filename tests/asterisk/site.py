"""The hotline side of the rig: its configuration file, ``hotline serve`` as a process, and
the console's REST API as the agents' desktops and the window clerk's page use it."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from cti.config import ConsoleSettings, default_data
from tests.reliability.cti_process import toml_dumps

ROOT = Path(__file__).resolve().parents[2]

# The floor: three seats with an agent each, one service window with its clerk.
SEATS = {"8001": "a1", "8002": "a2", "8003": "a3"}
WINDOW_EXT = "9001"
WINDOW_ID = "shebao"
DID = "12345"


def site_data(
    *,
    db_url: str,
    ami_port: int,
    ami_secret: str,
    agi_port: int,
    console_port: int,
    rec_dir: Path,
    cdr_path: Path,
    workdir: Path,
) -> dict[str, Any]:
    data = default_data()
    data["site"] = {"name": "12345 集成测试", "timezone": "Asia/Shanghai"}
    data["database"] = {"url": db_url}
    data["asterisk"] = [
        {
            "name": "pbx1",
            "host": "127.0.0.1",
            "port": ami_port,
            "username": "cti",
            "secret": ami_secret,
            "cdr_path": str(cdr_path),
        }
    ]
    data["agi"] = {"host": "127.0.0.1", "port": agi_port}
    data["console"] = {
        "host": "127.0.0.1",
        "port": console_port,
        "secret_key": secrets.token_urlsafe(48),
        "metrics_token": secrets.token_urlsafe(24),
    }
    if "plain_http_loopback" in ConsoleSettings.model_fields:
        # the suite talks plain HTTP to 127.0.0.1: cookies without Secure
        data["console"]["plain_http_loopback"] = True
    data["recordings"] = {"dir": str(rec_dir), "asterisk_dir": str(rec_dir)}
    data["transcription"] = {"enabled": False}
    data["control"] = {"wrapup_s": 0}
    data["tickets"] = {
        "calendar_override": str(ROOT / "config" / "calendar"),
        "attachments_dir": str(workdir / "attachments"),
    }
    data["hotlines"] = [
        {"did": DID, "name": "12345政务服务便民热线", "topic": "综合咨询", "skill": "general"}
    ]
    data["routing"] = {"default_skill": "general"}
    data["seats"] = [
        {"id": f"A0{i + 1}", "extension": ext, "room": "受理大厅", "position": f"A区0{i + 1}"}
        for i, ext in enumerate(SEATS)
    ] + [
        {
            "id": "W01",
            "extension": WINDOW_EXT,
            "kind": "window",
            "room": "市民中心",
            "position": "社保窗口",
        }
    ]
    data["agents"] = [
        {"id": agent, "name": f"坐席{agent}", "skills": {"general": 8}} for agent in SEATS.values()
    ]
    data["leader_shifts"] = []
    # no hours: open whenever the suite runs (weekends and nights included)
    data["windows"] = [
        {
            "id": WINDOW_ID,
            "name": "社保窗口",
            "department": "人社局",
            "services": ["社保缴费"],
            "extension": WINDOW_EXT,
            "hours": [],
        }
    ]
    return data


def write_config(data: dict[str, Any], path: Path) -> Path:
    path.write_text(toml_dumps(data), encoding="utf-8")
    path.chmod(0o600)
    return path


def hotline(*args: str, timeout: float = 60.0, stdin: str | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HOTLINE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "cti.cli", *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode:
        raise AssertionError(
            f"hotline {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout.decode()}\n{done.stderr.decode()}"
        )
    return done.stdout.decode()


class Cti:
    """``hotline -v serve --config FILE`` as a child process, its log in ``cti.log``."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.dir = workdir
        self.log = workdir / "cti.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.stopped = False  # SIGSTOP'd

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("HOTLINE_CONFIG", None)
        self._close_pipe()
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cti.cli", "-v", "serve", "--config", str(self.config)],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        os.set_blocking(self.proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.readline()
            if chunk:
                line = chunk
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not line.startswith(b"hotline: console on"):
            raise AssertionError(f"CTI did not start: {line!r}\n{self.tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.stopped = False
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if self.stopped:
            proc.send_signal(signal.SIGCONT)
            self.stopped = False
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self._close_pipe()

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_lines(self, pattern: str, since: int = 0) -> list[str]:
        text = self.log_text()[since:]
        return [ln for ln in text.splitlines() if re.search(pattern, ln)]


class Desk:
    """One console login (an agent's desktop, the window clerk's page, a supervisor)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.client = httpx.Client(base_url=base, timeout=10)
        self.csrf = ""

    def login(self) -> None:
        page = self.client.get("/login")
        page.raise_for_status()
        marker = '"csrf":"'
        start = page.text.index(marker) + len(marker)
        token = page.text[start : page.text.index('"', start)]
        r = self.client.post(
            "/api/login",
            json={"username": self.username, "password": self.password},
            headers={"X-CSRF-Token": token},
        )
        r.raise_for_status()
        self.csrf = r.json()["csrf"]

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        r = self.client.post(path, json=body or {}, headers={"X-CSRF-Token": self.csrf})
        if r.status_code == 401:  # the CTI was restarted with the same key: log in again
            self.login()
            r = self.client.post(path, json=body or {}, headers={"X-CSRF-Token": self.csrf})
        return r

    def get(self, path: str, **params: Any) -> httpx.Response:
        # httpx drops a query written in the path when given params, even empty ones
        query = params or None
        r = self.client.get(path, params=query)
        if r.status_code == 401:
            self.login()
            r = self.client.get(path, params=query)
        return r

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.post(path, body) if method == "POST" else self.get(path)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    def close(self) -> None:
        self.client.close()
