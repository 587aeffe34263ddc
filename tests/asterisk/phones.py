"""Real SIP phones at the seats and the window: Debian's ``baresip``, one process each.

Every phone has its own configuration directory, its own loopback address (127.X.Y.3,
127.X.Y.4, ... in the rig's random /24: the contacts differ, as on a real floor),
auto-answer, and no sound card: a tone (``ausine``) is what the agent "says", and what the
phone hears goes to ``aubridge`` (nowhere). ``ctrl_tcp`` on the phone's address takes
commands (hang up).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

BARESIP = "baresip"
MODULES = Path("/usr/lib/baresip/modules")
CTRL_PORT = 4444


class Phone:
    def __init__(
        self,
        extension: str,
        password: str,
        ip: str,
        pbx_port: int,
        workdir: Path,
        rtp_ports: tuple[int, int],
        tone_hz: int = 440,
    ) -> None:
        self.extension = extension
        self.password = password
        self.ip = ip
        self.pbx_port = pbx_port
        self.dir = workdir / f"phone-{extension}"
        self.rtp_ports = rtp_ports
        self.tone_hz = tone_hz
        self.log = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        lo, hi = self.rtp_ports
        (self.dir / "config").write_text(
            "poll_method\t\tepoll\n"
            f"sip_listen\t\t{self.ip}:5060\n"
            f"net_interface\t\t{self.ip}\n"
            "call_local_timeout\t120\n"
            "call_max_calls\t\t4\n"
            "audio_player\t\taubridge,nowhere\n"
            f"audio_source\t\tausine,{self.tone_hz}\n"
            # ausine makes 48 kHz only; baresip resamples to the codec's 8 kHz
            "ausrc_srate\t\t48000\n"
            "ausrc_channels\t\t2\n"
            "audio_alert\t\taubridge,nowhere\n"
            "audio_buffer\t\t20-160\n"
            f"rtp_ports\t\t{lo}-{hi}\n"
            "jitter_buffer_delay\t5-10\n"
            f"module_path\t\t{MODULES}\n"
            "module\t\t\tg711.so\n"
            "module\t\t\tausine.so\n"
            "module\t\t\taubridge.so\n"
            "module_tmp\t\taccount.so\n"
            # menu registers the commands (hangup, ...) that ctrl_tcp runs
            "module_app\t\tmenu.so\n"
            "module_app\t\tctrl_tcp.so\n"
            f"ctrl_tcp_listen\t\t{self.ip}:{CTRL_PORT}\n"
        )
        (self.dir / "accounts").write_text(
            f"<sip:{self.extension}@127.0.0.1:{self.pbx_port}>"
            f";auth_pass={self.password};answermode=auto;regint=60;ptime=20\n"
        )
        (self.dir / "accounts").chmod(0o600)

    def start(self) -> None:
        self.write_config()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [BARESIP, "-f", str(self.dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "HOME": str(self.dir)},
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """One ctrl_tcp command (netstring-framed JSON); the phone's answer, raw."""
        body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        frame = str(len(body)).encode() + b":" + body + b","
        with socket.create_connection((self.ip, CTRL_PORT), timeout=timeout) as s:
            s.sendall(frame)
            s.settimeout(timeout)
            try:
                return s.recv(65536).decode("utf-8", "replace")
            except TimeoutError:
                return ""

    def hangup(self) -> str:
        return self.command("hangup")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_registered(pbx: object, extensions: list[str], timeout: float = 20.0) -> None:
    """Until Asterisk lists a reachable contact for every extension."""
    deadline = time.monotonic() + timeout
    missing = list(extensions)
    while time.monotonic() < deadline:
        out = pbx.rx("pjsip show contacts")  # type: ignore[attr-defined]
        missing = [
            ext
            for ext in extensions
            if not any(
                line.strip().startswith(f"Contact:  {ext}/") and "Avail" in line
                for line in out.splitlines()
            )
        ]
        if not missing:
            return
        time.sleep(0.3)
    raise AssertionError(f"phones not registered in {timeout} s: {missing}")
