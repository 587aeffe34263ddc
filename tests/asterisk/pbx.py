"""A real Asterisk for the integration suite, run from the project's own ``config/asterisk/``.

The files are copied into a temporary directory and only the values a site adapts are
changed (the lines marked ADAPT: the transport's address, the trunk's address, ``REC_DIR``,
the AMI port and secret, ``CTI_AGI``, the hold music's directory). The harness adds what
only a test needs: ``asterisk.conf`` (every directory under the temporary one),
``logger.conf``, ``timestampevents`` in ``manager.conf`` and a second AMI account, the
``observer``, that reads everything (dialplan events included).

Asterisk runs in the foreground (``-f``) as a child of the test process; ``stop()`` asks
for ``core stop now`` over its remote console and kills it if it does not go.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT_CONFIG = ROOT / "config" / "asterisk"

ENV_BINARY = "HOTLINE_TEST_ASTERISK"
ENV_MODULES = "HOTLINE_TEST_ASTERISK_MODULES"

# The carrier's (SIPp's) port in the trunk's contact; its address is the rig's (``net``.2).
CARRIER_PORT = 5070
# The observer's AMI account (harness only, not in the project's manager.conf).
OBSERVER_USER = "observer"


def binary_from_env() -> Path | None:
    value = os.environ.get(ENV_BINARY, "").strip()
    return Path(value) if value else None


def modules_dir(binary: Path) -> Path:
    value = os.environ.get(ENV_MODULES, "").strip()
    if value:
        return Path(value)
    return (binary.resolve().parent.parent / "lib" / "asterisk" / "modules").resolve()


def loopback_net(phones: int) -> str:
    """``127.X.Y`` with .2 (the carrier) and .3 ... (one phone each, SIP on port 5060) free:
    a random /24 of the loopback network, so that two rigs on one machine do not meet."""
    rng = random.SystemRandom()
    for _ in range(100):
        net = f"127.{rng.randint(1, 254)}.{rng.randint(1, 254)}"
        socks: list[socket.socket] = []
        try:
            for host, port in [(f"{net}.2", 0)] + [(f"{net}.{3 + i}", 5060) for i in range(phones)]:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, port))
            return net
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free loopback addresses for the rig")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- editing the project's files -----------------------------------------------------------

_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_OPTION = re.compile(r"^(\s*)([A-Za-z0-9_.-]+)(\s*=>?\s*)(.*)$")


def set_option(text: str, section: str, key: str, value: str) -> str:
    """``key = value`` in every ``[section]`` block (templates and repeated names
    included) where the key is set. The key must exist: a project file that no longer has
    it is a change the suite must notice, not paper over."""
    out: list[str] = []
    current = ""
    hits = 0
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            current = m.group(1).strip()
        else:
            o = _OPTION.match(line)
            if current == section and o and o.group(2) == key:
                line = f"{o.group(1)}{key}{o.group(3)}{value}"
                hits += 1
        out.append(line)
    if not hits:
        raise AssertionError(f"[{section}] {key} not found in the project's file")
    return "\n".join(out) + "\n"


def add_option(text: str, section: str, key: str, value: str) -> str:
    """A line added right after the ``[section]`` header (harness-only settings)."""
    out: list[str] = []
    done = False
    for line in text.splitlines():
        out.append(line)
        m = _SECTION.match(line)
        if m and m.group(1).strip() == section and not done:
            out.append(f"{key} = {value}")
            done = True
    if not done:
        raise AssertionError(f"no [{section}] in the project's file")
    return "\n".join(out) + "\n"


@dataclass
class PbxPorts:
    sip: int
    ami: int
    agi: int  # where hotline's FastAGI listens (CTI_AGI)


class Asterisk:
    """The PBX process and its configuration directory."""

    def __init__(
        self,
        binary: Path,
        modules: Path,
        workdir: Path,
        ports: PbxPorts,
        *,
        ami_secret: str,
        observer_secret: str,
        rec_dir: Path,
        seats_conf: Path,
        carrier_ip: str,
    ) -> None:
        self.binary = binary
        self.carrier_ip = carrier_ip
        self.modules = modules
        self.dir = workdir
        self.ports = ports
        self.ami_secret = ami_secret
        self.observer_secret = observer_secret
        self.rec_dir = rec_dir
        self.seats_conf = seats_conf
        self.etc = workdir / "etc"
        self.log_dir = workdir / "log"
        self.moh_dir = workdir / "moh"
        self.conf = self.etc / "asterisk.conf"
        self.console_log = workdir / "asterisk.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.edits: list[str] = []  # what was changed in the project's files, for the report

    # --- configuration ----------------------------------------------------------------

    @property
    def cdr_path(self) -> Path:
        return self.log_dir / "cdr-custom" / "hotline.csv"

    def write_config(self) -> None:
        for sub in ("etc", "log", "run", "varlib", "db", "spool", "data", "agi-bin", "moh"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.rec_dir.mkdir(parents=True, exist_ok=True)
        # cdr_custom writes into an existing directory only (an installation creates it)
        self.cdr_path.parent.mkdir(parents=True, exist_ok=True)
        for src in sorted(PROJECT_CONFIG.glob("*.conf")):
            shutil.copyfile(src, self.etc / src.name)
        shutil.copyfile(self.seats_conf, self.etc / "pjsip_seats.conf")
        self._hold_music()
        self._documentation()
        d = self.dir
        self.conf.write_text(
            "[directories]\n"
            f"astetcdir => {self.etc}\n"
            f"astmoddir => {self.modules}\n"
            f"astvarlibdir => {d / 'varlib'}\n"
            f"astdbdir => {d / 'db'}\n"
            f"astkeydir => {d / 'varlib'}\n"
            f"astdatadir => {d / 'data'}\n"
            f"astagidir => {d / 'agi-bin'}\n"
            f"astspooldir => {d / 'spool'}\n"
            f"astrundir => {d / 'run'}\n"
            f"astlogdir => {self.log_dir}\n"
            f"astsbindir => {self.binary.parent}\n"
            "\n[options]\nverbose = 3\ndebug = 0\n"
        )
        # The harness's NOTIFY to the carrier ("a seat answered you") needs res_pjsip_notify,
        # which declines to load without its file.
        (self.etc / "pjsip_notify.conf").write_text("; test harness: PJSIPNotify with Variable\n")
        (self.etc / "logger.conf").write_text(
            "[general]\ndateformat = %F %T.%3q\n"
            "[logfiles]\n"
            "messages.log => notice,warning,error\n"
            "full.log => notice,warning,error,verbose\n"
        )
        self._edit(
            "pjsip.conf",
            [
                ("transport-udp", "bind", f"127.0.0.1:{self.ports.sip}"),
                ("trunk", "outbound_proxy", f"sip:{self.carrier_ip}:{CARRIER_PORT}\\;lr"),
                ("trunk", "contact", f"sip:{self.carrier_ip}:{CARRIER_PORT}"),
                ("trunk", "match", self.carrier_ip),
            ],
        )
        self._edit(
            "extensions.conf",
            [
                ("globals", "CTI_AGI", f"agi://127.0.0.1:{self.ports.agi}"),
                ("globals", "REC_DIR", str(self.rec_dir)),
            ],
        )
        self._edit(
            "manager.conf",
            [("general", "port", str(self.ports.ami)), ("cti", "secret", self.ami_secret)],
        )
        self._edit("musiconhold.conf", [("default", "directory", str(self.moh_dir))])
        manager = self.etc / "manager.conf"
        text = add_option(manager.read_text(), "general", "timestampevents", "yes")
        text += (
            "\n; --- test harness: an observer that reads everything ---\n"
            f"[{OBSERVER_USER}]\nsecret = {self.observer_secret}\n"
            "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
            "read = all\nwrite = all\n"
        )
        manager.write_text(text)
        self.edits.append("manager.conf: [general] timestampevents = yes; [observer] account")

    def _edit(self, name: str, changes: list[tuple[str, str, str]]) -> None:
        path = self.etc / name
        text = path.read_text()
        for section, key, value in changes:
            text = set_option(text, section, key, value)
            self.edits.append(f"{name}: [{section}] {key} = {value}")
        path.write_text(text)

    def _documentation(self) -> None:
        """Asterisk refuses to start (``Stasis initialization failed``) without its XML
        documentation in ``astdatadir``; the data directory is ours (no sound files), so the
        installation's documentation is linked into it."""
        link = self.dir / "data" / "documentation"
        if link.exists():
            return
        prefix = self.binary.resolve().parent.parent
        for base in (
            prefix / "var/lib/asterisk",
            prefix / "share/asterisk",
            Path("/var/lib/asterisk"),
        ):
            if (base / "documentation").is_dir():
                link.symlink_to(base / "documentation")
                return
        raise AssertionError(f"no Asterisk documentation directory near {prefix}")

    def _hold_music(self) -> None:
        """No sound files are installed: 30 s of a quiet tone over pink noise, 8 kHz mono."""
        target = self.moh_dir / "hold.wav"
        if target.exists():
            return
        subprocess.run(
            [
                "sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(target),
                "synth", "30", "sine", "440", "pinknoise", "vol", "0.2",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )  # fmt: skip

    # --- process ----------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        log = self.console_log.open("ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "-C", str(self.conf), "-f", "-n"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_booted(timeout)

    def wait_booted(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                out = self.rx("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue
            if "fully booted" in out.lower():
                return
            time.sleep(0.2)
        raise AssertionError(f"Asterisk did not boot in {timeout} s:\n{self.tail()}")

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Asterisk exited with {self.proc.returncode}:\n{self.tail()}")

    def rx(self, command: str, timeout: float = 10.0) -> str:
        """One CLI command over the remote console (``asterisk -rx``)."""
        done = subprocess.run(
            [str(self.binary), "-C", str(self.conf), "-rx", command],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")

    def channels(self) -> int:
        out = self.rx("core show channels count")
        m = re.search(r"(\d+) active channel", out)
        return int(m.group(1)) if m else -1

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            self.rx("core stop now", timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def tail(self, lines: int = 60) -> str:
        parts = []
        for path in (self.console_log, self.log_dir / "messages.log"):
            if path.exists():
                text = path.read_text("utf-8", "replace").splitlines()
                parts.append(f"--- {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def log_problems(self, since: int = 0) -> list[str]:
        """WARNING and ERROR lines of messages.log (from byte offset ``since``)."""
        path = self.log_dir / "messages.log"
        if not path.exists():
            return []
        with path.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
        return [ln for ln in text.splitlines() if "WARNING[" in ln or "ERROR[" in ln]

    def log_offset(self) -> int:
        path = self.log_dir / "messages.log"
        return path.stat().st_size if path.exists() else 0
