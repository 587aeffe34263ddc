"""The CTI as a real ``hotline serve`` process: its configuration file, start, SIGKILL, and
the REST calls an agent's desktop makes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from cti.config import AsteriskNode

ROOT = Path(__file__).resolve().parents[2]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_dumps(data: dict[str, Any]) -> str:
    """Enough TOML for a configuration: tables, arrays of tables, inline values."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
        else:
            lines.insert(0, f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


class CtiProcess:
    """``hotline -v serve --config FILE``; with ``cdr_path`` while the setting is not declared
    yet, ``tests.reliability.serve`` (the same thing with the CDR path added)."""

    def __init__(self, data: dict[str, Any], workdir: Path, cdr_path: str = "") -> None:
        self.data = data
        self.workdir = workdir
        self.cdr_path = cdr_path
        self.config = workdir / "hotline.toml"
        self.log = workdir / "cti.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        data = json.loads(json.dumps(self.data))
        extra: list[str] = []
        if self.cdr_path and "cdr_path" in AsteriskNode.model_fields:
            for node in data["asterisk"]:
                node["cdr_path"] = self.cdr_path
        elif self.cdr_path:
            extra = ["--cdr-path", self.cdr_path]
        self.config.write_text(toml_dumps(data), encoding="utf-8")
        self.config.chmod(0o600)
        if extra:
            shim = [sys.executable, "-m", "tests.reliability.serve", "--config", str(self.config)]
            return shim + extra
        return [sys.executable, "-m", "cti.cli", "-v", "serve", "--config", str(self.config)]

    async def start(self, timeout: float = 30.0) -> None:
        cmd = self.command()
        self.starts += 1
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("HOTLINE_CONFIG", None)
        env.pop("PYTHONTRACEMALLOC", None)
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=log
            )
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        line = await asyncio.wait_for(
            loop.run_in_executor(None, self.proc.stdout.readline), timeout
        )
        if not line.startswith(b"hotline: console on"):
            raise AssertionError(f"CTI did not start: {line!r}\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, sockets closed by the kernel."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self._close_pipe()

    def stop(self, timeout: float = 20.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._close_pipe()
        return proc.returncode

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


async def desktop_login(base: str, username: str, password: str, seat: str) -> None:
    """What the agent desktop does: the login page's anonymous session, the login, then the
    seat login (ready)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        page = await client.get("/login")
        page.raise_for_status()
        marker = '"csrf":"'
        start = page.text.index(marker) + len(marker)
        token = page.text[start : page.text.index('"', start)]
        r = await client.post(
            "/api/login",
            json={"username": username, "password": password},
            headers={"X-CSRF-Token": token},
        )
        r.raise_for_status()
        r = await client.post(
            "/api/agents/me/login",
            json={"seat": seat, "ready": True},
            headers={"X-CSRF-Token": r.json()["csrf"]},
        )
        r.raise_for_status()


class ServeProcess(CtiProcess):
    """``hotline serve`` started without waiting for it to lead: its stdout's first line
    says when it does (a standby prints it at its takeover)."""

    def launch(self) -> None:
        cmd = self.command()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("HOTLINE_CONFIG", None)
        self.leading_at: float | None = None
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=log
            )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                if line.startswith(b"hotline: console on") and self.leading_at is None:
                    self.leading_at = time.monotonic()
        except (ValueError, OSError):
            pass  # the pipe was closed by stop()

    def logged(self, text: str) -> bool:
        return self.log.exists() and text in self.log.read_text(errors="replace")


class Desktop:
    """An agent's browser: one cookie jar, whichever console URL it talks to."""

    def __init__(self, agent: str, seat: str) -> None:
        self.agent, self.seat = agent, seat
        self.client = httpx.AsyncClient(timeout=10)
        self.csrf = ""

    async def login(self, base: str) -> None:
        page = await self.client.get(f"{base}/login")
        page.raise_for_status()
        marker = '"csrf":"'
        start = page.text.index(marker) + len(marker)
        token = page.text[start : page.text.index('"', start)]
        r = await self.client.post(
            f"{base}/api/login",
            json={"username": self.agent, "password": f"pw-{self.agent}"},
            headers={"X-CSRF-Token": token},
        )
        r.raise_for_status()
        self.csrf = r.json()["csrf"]
        r = await self.client.post(
            f"{base}/api/agents/me/login",
            json={"seat": self.seat, "ready": True},
            headers={"X-CSRF-Token": self.csrf},
        )
        r.raise_for_status()

    async def post(self, base: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"{base}{path}", json=body, headers={"X-CSRF-Token": self.csrf}
        )


async def health(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"{base}/healthz")).json()  # type: ignore[no-any-return]
