"""Secrets stay secret: the AMI secret, the twilio token, the console's signing key and the
database password appear in no log line (DEBUG included) and no HTTP answer of a running CTI
(/healthz, /metrics, every GET of the API), and repr/str of the settings mask them; the
configuration file's permissions are checked with a warning."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from console import passwords
from console.users import Users
from cti.ami.client import AmiNode
from cti.config import check_permissions, load, parse
from tests.cti.live import close_floor
from tests.reliability.cti_process import toml_dumps
from tests.reliability.helpers import open_site, site_data, until

AMI_SECRET = "ami-Secr3t-7f3a9e"
CONSOLE_KEY = "console-Key-9c1b2d3e4f5a6b7c8d9e0f1a"
TWILIO_TOKEN = "twilio-Tok3n-4e5f6a7b"
DB_PASSWORD = "db-Passw0rd-8b7c6d"
WRONG_SECRET = "wrong-Secr3t-0a0b0c"
SECRETS = (AMI_SECRET, CONSOLE_KEY, TWILIO_TOKEN, DB_PASSWORD, WRONG_SECRET)


def with_password(url: str) -> str:
    """The test server trusts every connection: a password in the URL is accepted, unused."""
    return re.sub(r"^(postgresql\+psycopg://[^:@/]+)@", rf"\1:{DB_PASSWORD}@", url)


def secret_data(db_url: str) -> dict[str, Any]:
    data = site_data(2, skills=1)
    data["asterisk"][0]["secret"] = AMI_SECRET
    data["console"] = {"secret_key": CONSOLE_KEY, "port": 0, "plain_http_loopback": True}
    data["database"] = {"url": db_url}
    data["sms"] = {
        "enabled": True,
        "account_sid": "AC0123456789",
        "auth_token": TWILIO_TOKEN,
        "from_number": "+8610000000",
        "api_base_url": "http://127.0.0.1:9",
    }
    return data


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_settings_repr_masks_the_secrets() -> None:
    settings = parse(secret_data("sqlite:///./x.db"))
    dumps = (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump()))
    for text in dumps:
        assert leaks(text) == []


def test_settings_repr_masks_the_database_password() -> None:
    settings = parse(secret_data(f"postgresql+psycopg://hotline:{DB_PASSWORD}@db/hotline"))
    assert leaks(repr(settings)) == [] and leaks(settings.model_dump_json()) == []


async def test_running_cti_shows_no_secret(
    any_db_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(passwords, "N", 2**10)
    data = secret_data(with_password(any_db_url))
    floor = await open_site(
        data, data["database"]["url"], tmp_path, sim_config={"secret": AMI_SECRET, "scale": 0.1},
        console=True,
    )  # fmt: skip
    sim, hotline = floor.sim, floor.hotline
    bodies: list[str] = []
    try:
        users = Users(hotline.sessions)
        for name, roles, agent in (("boss", ["supervisor"], None), ("root", ["admin"], None),
                                   ("agent", ["agent"], "a00000")):  # fmt: skip
            users.create(name, f"pw-{name}-123", roles, agent_id=agent, display_name=name)
        handle = sim.place_call(caller="13800000001", did="12300", talk_s=3)
        assert await handle.wait(5) == "answered"
        assert await hotline.store.flush(10)
        # a node with a wrong secret: its refusal is logged, the secret it tried is not
        states: list[str] = []
        bad = AmiNode(
            "bad",
            "127.0.0.1",
            sim.ami_port,
            "cti",
            WRONG_SECRET,
            on_event=lambda _node, _msg: None,
            on_state=lambda _node, state, _detail: states.append(state),
        )
        await bad.start()
        await until(lambda: "auth-failed" in states, 5)
        await bad.stop()
        base = f"http://127.0.0.1:{hotline.console_port}"
        paths: list[str] = []
        async with httpx.AsyncClient(base_url=base, timeout=10) as anon:
            for path in ("/healthz", "/metrics", "/login"):
                r = await anon.get(path)
                bodies.append(f"{path} {r.status_code} {r.headers} {r.text}")
        for user in ("boss", "root", "agent"):
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                page = await client.get("/login")
                token = re.search(r'"csrf":"([^"]+)"', page.text)
                assert token is not None
                r = await client.post(
                    "/api/login",
                    json={"username": user, "password": f"pw-{user}-123"},
                    headers={"X-CSRF-Token": token[1]},
                )
                assert r.status_code == 200
                bodies.append(f"login {r.headers} {r.text}")
                if not paths:  # every GET of the API, from its own description
                    described = (await client.get("/openapi.json")).json()["paths"]
                    paths += sorted(p for p, ops in described.items() if "get" in ops)
                    paths = [p for p in paths if "{" not in p] + ["/openapi.json", "/docs"]
                for path in paths:
                    r = await client.get(path)
                    bodies.append(f"{user} {path} {r.status_code} {r.text}")
    finally:
        await close_floor(floor)
    assert len(bodies) > 20, len(bodies)
    found = {b[:80]: leaks(b) for b in bodies if leaks(b)}
    assert found == {}
    logged = [
        f"{r.name}: {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if leaks(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}")
    ]
    assert logged == []
    assert any(r.name == "cti.ami.client" for r in caplog.records)  # logs were captured


def test_config_file_permissions_are_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hotline.toml"
    path.write_text(toml_dumps(secret_data("sqlite:///./x.db")), encoding="utf-8")
    expectations = {0o600: 0, 0o640: 0, 0o660: 1, 0o644: 1, 0o666: 1}
    for mode, warnings in expectations.items():
        path.chmod(mode)
        assert len(check_permissions(path, report=False)) == warnings, oct(mode)
    path.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="cti.config")
    settings = load(path)
    assert settings.asterisk[0].secret.get_secret_value() == AMI_SECRET
    (record,) = [r for r in caplog.records if r.name == "cti.config"]
    assert "chmod 600" in record.getMessage() and leaks(record.getMessage()) == []
    path.chmod(0o600)
    caplog.clear()
    load(path)
    assert not [r for r in caplog.records if r.name == "cti.config"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# --- weak secrets are refused ----------------------------------------------------------------

KEY_ADVICE = (
    ": set it to at least 32 random characters (whoever knows the key can sign a session"
    " cookie for any user), e.g. the output of"
    " python3 -c 'import secrets; print(secrets.token_urlsafe(48))'."
)
OLD_DEFAULT_KEY = "change-me-please-0123456789abcdef"
EXAMPLE_KEY = "replace-with-64-random-characters-for-session-signing-0123456789"


def key_settings(key: str | None, db_url: str = "sqlite:///./x.db") -> Any:
    data = secret_data(db_url)
    data["sms"]["enabled"] = False
    if key is None:
        del data["console"]["secret_key"]
    else:
        data["console"]["secret_key"] = key
    return parse(data)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        (OLD_DEFAULT_KEY, "the built-in default"),
        (EXAMPLE_KEY, "a placeholder"),
        ("change-me-" + "k3Yx" * 8, "a placeholder"),
        ("s3cr3t-but-short", "too short (16 characters)"),
        ("ab" * 24, "too simple (2 different characters)"),
    ],
)
def test_a_weak_console_key_stops_serve_and_the_console(key: str | None, reason: str) -> None:
    from console.app import create_app
    from cti import preflight
    from cti.app import Hotline
    from cti.errors import ConfigError

    settings = key_settings(key)
    problem = f"console.secret_key: {reason}{KEY_ADVICE}"
    assert [p for p in preflight.check(settings).problems if p.startswith("console.")] == [problem]
    hotline = Hotline(settings, console=False)
    try:
        with pytest.raises(ConfigError) as refused:
            create_app(hotline)  # whatever starts the console, not only `serve`
        assert refused.value.problems == [problem]
    finally:
        hotline.agents.stop()
        hotline.engine.dispose()


def test_a_random_console_key_passes() -> None:
    import secrets

    from cti import preflight

    for key in (CONSOLE_KEY, secrets.token_urlsafe(32), secrets.token_hex(16)):
        problems = preflight.check(key_settings(key)).problems
        assert [p for p in problems if "secret" in p] == [], key


def test_a_cookie_forged_with_the_old_default_key_gets_nobody_in(
    any_db_url: str, tmp_path: Path
) -> None:
    """The attack of the report: the built-in default key, a cookie for the administrator."""
    from itsdangerous import URLSafeTimedSerializer

    from console.app import create_app
    from cti.app import Hotline
    from cti.db import create_schema
    from cti.errors import ConfigError

    hotline = Hotline(key_settings(None, any_db_url), console=False)
    try:
        create_schema(hotline.engine)
        admin = Users(hotline.sessions).create("root", "pw-root-123", ["admin"])
        try:
            app = create_app(hotline)
        except ConfigError:
            return  # refused to start: nothing answers the forged cookie
        from tests.console.conftest import TestClient

        forged = URLSafeTimedSerializer(OLD_DEFAULT_KEY, salt="hotline-console-session")
        cookie = forged.dumps({"u": admin.id, "e": 0, "c": "x"})
        with TestClient(app) as client:
            client.cookies.set("hotline_session", cookie)
            assert client.get("/api/me").status_code == 401
    finally:
        hotline.agents.stop()
        hotline.engine.dispose()


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("cti-secret", "the example's placeholder"),
        ("change-me", "the example's placeholder"),
        ("", "missing"),
    ],  # fmt: skip
)
def test_the_example_ami_secret_is_refused(secret: str, reason: str) -> None:
    from cti import preflight

    data = secret_data("sqlite:///./x.db")
    data["asterisk"][0]["secret"] = secret
    problems = preflight.check(parse(data)).problems
    assert [p for p in problems if p.startswith("asterisk")] == [
        f"asterisk[0].secret: {reason}: choose a random secret and set it here and as the"
        " secret of the [cti] user in Asterisk's manager.conf (whoever knows it controls the"
        " calls)."
    ]


def test_the_example_twilio_token_is_refused_once_sms_is_enabled() -> None:
    from cti import preflight

    data = secret_data("sqlite:///./x.db")
    data["sms"]["auth_token"] = "change-me"
    found = preflight.check(parse(data))
    assert [p for p in found.problems if p.startswith("sms")] == [
        "sms.auth_token: the example's placeholder: set the auth token of the twilio account"
        " (it signs the delivery reports /api/sms/status accepts)."
    ]
    data["sms"]["enabled"] = False
    found = preflight.check(parse(data))
    assert [p for p in found.problems if p.startswith("sms")] == []
    assert [w for w in found.warnings if w.startswith("sms")] == [
        "sms.auth_token: the example's placeholder: set the auth token of the twilio account"
        " before enabling sms."
    ]


def test_config_check_reports_the_secrets_of_the_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example is a template: copied as it is, it is refused, each secret by name."""
    from tests.cti.test_config_check import example, refused, write

    site = tmp_path / "site"
    site.mkdir()
    path = write(site / "hotline.toml", example(site, secrets=False))
    problems = refused(path, capsys)
    # each names the line of the file to change
    lines = path.read_text(encoding="utf-8").splitlines()
    for problem in problems:
        key, number = re.match(r"^(\S+): line (\d+): ", problem).groups()  # type: ignore[union-attr]
        assert lines[int(number) - 1].startswith(key.rsplit(".", 1)[-1] + " = "), problem
    assert [re.sub(r": line \d+: ", ": ", p, count=1) for p in problems] == [
        f"console.secret_key: missing{KEY_ADVICE}",
        "console.metrics_token: the example's placeholder: set it to a random string"
        " (python3 -c 'import secrets; print(secrets.token_urlsafe(32))') or remove the key"
        " (then only clients on this machine read /metrics).",
        "asterisk[0].secret: the example's placeholder: choose a random secret and set it here"
        " and as the secret of the [cti] user in Asterisk's manager.conf (whoever knows it"
        " controls the calls).",
    ]


def test_serve_refuses_the_example_as_it_is(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.cti.test_config_check import ROOT, example, write

    site = tmp_path / "site"
    site.mkdir()
    path = write(site / "hotline.toml", example(site, secrets=False))
    proc = subprocess.run(
        [sys.executable, "-m", "cti.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    wanted = rf"  console\.secret_key: line \d+: missing{re.escape(KEY_ADVICE)}"
    assert any(re.fullmatch(wanted, line) for line in proc.stderr.splitlines()), proc.stderr


def test_the_demo_makes_a_new_key_each_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from cti import demo, preflight

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(config=None, port=0, db=None, calls=5)
    first, second = demo._settings(args, 5038), demo._settings(args, 5038)
    keys = {
        s.console.secret_key.get_secret_value() for s in (first, second) if s.console.secret_key
    }
    assert len(keys) == 2
    for settings in (first, second):
        assert preflight.console_key_problem(settings.console) is None
        assert settings.console.plain_http_loopback and settings.console.host == "127.0.0.1"
