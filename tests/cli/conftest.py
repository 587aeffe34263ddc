"""The ``hotline`` command as a user runs it: the installed entry point in a subprocess, in a
directory of the test's own, with no ``$HOTLINE_CONFIG`` from the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY = Path(sys.executable).with_name("hotline")


@dataclass(frozen=True, slots=True)
class Run:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def hotline(*argv: str, cwd: Path, stdin: str = "", timeout: float = 120) -> Run:
    command = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "cti.cli"]
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [*command, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    return Run(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


SITE = """
[[asterisk]]
name = "pbx1"
username = "cti"
secret = "{secret}"

[[hotlines]]
did = "12345"
name = "12345"
topic = "综合咨询"
skill = "general"

[[agents]]
id = "li"
name = "李娜"
skills = {{ general = 5 }}

[[windows]]
id = "shebao"
name = "社保窗口"

[database]
url = "{url}"
"""


def site_config(path: Path, url: str, *, secret: str = "Xq7-site-secret-93kd") -> Path:
    """A small site's configuration (chmod 600) with the database at ``url``."""
    path.write_text(SITE.format(secret=secret, url=url), encoding="utf-8")
    path.chmod(0o600)
    return path
