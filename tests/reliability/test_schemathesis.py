"""Schemathesis against the running console: ``hotline demo`` (the simulator, calls coming
in, tickets and recordings being made) in its own process, and ``schemathesis run`` over its
OpenAPI document as each of the demo's roles, then as nobody. Every generated request must
get an answer below 500 and no connection may break (issue 15: 2^63 and year-9999 values
gave 500s and resets).

The example count is bounded (``HOTLINE_SCHEMATHESIS_EXAMPLES``, default 10 per operation
and role; the coverage phase adds its boundary values) so that the run takes about two
minutes on a 2-core CI machine. The counts are printed (``-s``, or in a failure's report)."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.cti_process import ROOT

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("HOTLINE_SCHEMATHESIS_EXAMPLES", "10"))
SEED = 15
# The demo's logins (README), one per role; the administrator last, who may revoke the others.
ROLES = [
    ("li", "agent"),
    ("mayor", "leader"),
    ("window-shebao", "window"),
    ("dept-zjj", "department"),
    ("supervisor", "supervisor"),
    ("admin", "admin"),
]
# Logging out ends the session the run uses; logging in is tried once, by nobody, at the end
# (failed logins lock the user name and address out for a while, by design).
SIGNED_IN_EXCLUDES = ["/api/logout", "/api/login"]


def _schemathesis() -> str:
    pytest.importorskip("schemathesis")
    path = Path(sys.executable).with_name("schemathesis")
    return str(path) if path.exists() else shutil.which("schemathesis") or "schemathesis"


@pytest.fixture
def demo(any_db_url: str, tmp_path: Path) -> Iterator[str]:
    """``hotline demo`` with calls coming in at 0.3 a second; yields the console's URL."""
    workdir = tmp_path / "demo"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("HOTLINE_CONFIG", None)
    log = (tmp_path / "demo.log").open("wb")
    cmd = [sys.executable, "-m", "cti.cli", "demo", "--port", "0", "--no-browser"]
    cmd += ["--rate", "0.3", "--db", any_db_url]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().decode()
        found = re.search(r"console at (http://\S+?)/?\s", line)
        assert found, f"demo did not start: {line!r}\n{(tmp_path / 'demo.log').read_text()[-3000:]}"
        yield found[1]
        assert proc.poll() is None, "the demo died under the fuzzing"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        log.close()


def sign_in(base: str, username: str) -> tuple[str, str]:
    """The browser's way in: the login page's anonymous session and CSRF token, then the
    login; returns the session cookie header and the session's CSRF token."""
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/login")
        token = re.search(r'"csrf":"([^"]+)"', page.text)
        assert token, page.text[:300]
        r = client.post(
            "/api/login",
            json={"username": username, "password": f"demo-{username}"},
            headers={"X-CSRF-Token": token[1]},
        )
        assert r.status_code == 200, (username, r.status_code, r.text[:300])
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        return cookie, r.json()["csrf"]


def known_values(base: str, cookie: str, csrf: str) -> dict[str, list[Any]]:
    """Ids that exist (tickets, recordings, callback tasks, callers), so that part of the
    generated requests reach a real resource instead of a 404."""
    headers = {"Cookie": cookie, "X-CSRF-Token": csrf}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        tickets = client.get("/api/tickets?limit=50").json()
        recordings = client.get("/api/recordings?limit=50").json()["recordings"]
        callbacks = client.get("/api/callbacks").json()
    return {
        "tickets": [t["id"] for t in tickets] or ["20260101000001"],
        "callers": [t["caller"] for t in tickets if t["caller"]] or ["13900000001"],
        "recordings": [r["id"] for r in recordings] or [1],
        "tasks": [c["id"] for c in callbacks] or [1],
    }


def config_file(path: Path, values: dict[str, list[Any]]) -> Path:
    """schemathesis.toml: half of the ids drawn from what exists, half generated."""

    def dictionary(name: str) -> str:
        return f"[dictionaries.{name}]\nvalues = {json.dumps(values[name], ensure_ascii=False)}\n"

    bindings = {
        "path.ticket_id": "tickets",
        "path.recording_id": "recordings",
        "path.task_id": "tasks",
        "path.caller": "callers",
    }
    text = "".join(dictionary(name) for name in values)
    text += "[parameters]\n" + "".join(
        f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}\n'
        for key, name in bindings.items()
    )
    path.write_text(text, encoding="utf-8")
    return path


def run_schemathesis(
    base: str, workdir: Path, label: str, headers: dict[str, str], excludes: list[str]
) -> dict[str, Any]:
    """``schemathesis run`` over the spec saved in ``workdir`` (the console serves it to
    signed-in users only), with the config of ``config_file``."""
    har = workdir / f"{label}.har"
    cmd = [_schemathesis(), "--config-file", "schemathesis.toml", "run", "openapi.json"]
    cmd += ["--url", base]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += ["--checks", "not_a_server_error", "--max-examples", str(EXAMPLES)]
    cmd += ["--seed", str(SEED), "--no-shrink", "--request-timeout", "20"]
    cmd += ["--phases", "examples,coverage,fuzzing"]
    cmd += ["--report", "har", "--report-har-path", str(har)]
    for path in excludes:
        cmd += ["--exclude-path", path]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    entries = json.loads(har.read_text(encoding="utf-8"))["log"]["entries"] if har.exists() else []
    statuses = collections.Counter(f"{e['response']['status'] // 100}xx" for e in entries)
    server_errors = collections.Counter(
        f"{e['request']['method']} {e['request']['url'].removeprefix(base).split('?')[0]}"
        f" -> {e['response']['status']}"
        for e in entries
        if e["response"]["status"] >= 500 or e["response"]["status"] == 0
    )
    return {
        "label": label,
        "command": cmd,
        "returncode": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "requests": len(entries),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": dict(server_errors),
        "output": done.stdout[-6000:] + done.stderr[-2000:],
    }


def test_no_generated_request_gets_a_server_error(demo: str, tmp_path: Path) -> None:
    sessions = {username: sign_in(demo, username) for username, _ in ROLES}
    cookie, csrf = sessions["supervisor"]
    config_file(tmp_path / "schemathesis.toml", known_values(demo, cookie, csrf))
    spec = httpx.get(f"{demo}/openapi.json", headers={"Cookie": cookie}, timeout=10)
    (tmp_path / "openapi.json").write_text(spec.text, encoding="utf-8")
    results = []
    for username, role in ROLES:
        cookie, csrf = sessions[username]
        headers = {"Cookie": cookie, "X-CSRF-Token": csrf}
        results.append(run_schemathesis(demo, tmp_path, role, headers, SIGNED_IN_EXCLUDES))
    results.append(run_schemathesis(demo, tmp_path, "anonymous", {}, []))

    total: collections.Counter[str] = collections.Counter()
    print(f"\nschemathesis against {demo} ({EXAMPLES} examples per operation, seed {SEED})")
    shown = " ".join(results[0]["command"][1:])
    shown = re.sub(r"(Cookie|X-CSRF-Token): \S+", r"\1: <the role's>", shown)
    print(f"  schemathesis {shown}")
    for r in results:
        total.update(r["statuses"])
        print(f"  {r['label']:<11} {r['requests']:>6} requests {r['statuses']} {r['seconds']} s")
    print(f"  {'all':<11} {sum(total.values()):>6} requests {dict(sorted(total.items()))}")
    failed = [r for r in results if r["returncode"] != 0 or r["server_errors"]]
    assert not failed, "\n\n".join(
        f"{r['label']}: exit {r['returncode']}, server errors {r['server_errors']}\n{r['output']}"
        for r in failed
    )
    assert total["5xx"] == 0 and sum(total.values()) > 1000
