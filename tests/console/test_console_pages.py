"""The pages: served for their roles with a strict CSP, user data escaped, every catalogue key
the templates and scripts use present in zh-CN."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from console import i18n
from tests.console.conftest import TestClient, login

CONSOLE = Path(__file__).resolve().parents[2] / "console"


def boot_of(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="boot">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("username", "path", "title"),
    [
        ("li", "/agent", "坐席工作台"),
        ("mayor", "/agent", "领导坐席"),
        ("clerk", "/window", "服务窗口"),
        ("boss", "/wallboard", "监控大屏"),
        ("boss", "/reports", "报表"),
        ("root", "/audit", "审计日志"),
        ("boss", "/docs", "API 文档"),
    ],
)
def test_each_page_for_its_role(client: TestClient, username: str, path: str, title: str) -> None:
    login(client, username)
    r = client.get(path)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert f'<h1 class="title">{title}</h1>' in r.text
    # No inline code: every script is a file from /static, or the JSON boot block.
    scripts = re.findall(r"<script([^>]*)>", r.text)
    assert all('src="/static/' in s or 'type="application/json"' in s for s in scripts)
    assert "http://" not in r.text and "https://" not in r.text  # nothing from a CDN
    boot = boot_of(r.text)
    assert boot["user"]["username"] == username
    assert boot["csrf"] == client.headers["X-CSRF-Token"]
    assert boot["messages"]["nav.logout"] == "退出"


def test_leader_page_variant(client: TestClient) -> None:
    login(client, "mayor")
    page = client.get("/agent").text
    assert 'class="page-agent leader"' in page
    assert boot_of(page)["config"]["leader"] is True
    login(client, "li")
    assert boot_of(client.get("/agent").text)["config"]["leader"] is False


def test_user_data_is_escaped_in_pages(client: TestClient, app: Any) -> None:
    nasty = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
    app.state.users.create("eve", "password-eve", ["supervisor"], display_name=nasty)
    login(client, "eve")
    page = client.get("/wallboard").text
    assert "<img src=x" not in page and "<script>alert" not in page
    assert html.escape(nasty[:64]) in page
    assert boot_of(page)["user"]["display_name"] == nasty[:64]


def test_scripts_never_put_data_into_inner_html() -> None:
    for js in (CONSOLE / "static").glob("*.js"):
        text = js.read_text("utf-8")
        assert "innerHTML" not in text, js.name
        assert "insertAdjacentHTML" not in text and "document.write" not in text, js.name


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for template in (CONSOLE / "templates").glob("*.html"):
        keys |= set(re.findall(r"\{\{([a-z0-9_.-]+)\}\}", template.read_text("utf-8")))
    for js in (CONSOLE / "static").glob("*.js"):
        keys |= set(re.findall(r"""\bt\("([a-z0-9_.\-/]+)"[,)]""", js.read_text("utf-8")))
    for module in ("pages.py", "app.py"):
        source = (CONSOLE / module).read_text("utf-8")
        keys |= set(
            re.findall(r'"((?:nav|error|[a-z]+\.title|[a-z]+\.leader_title)[a-z_.]*)"', source)
        )
    return {k for k in keys if "." in k}


def test_every_text_key_is_in_the_zh_cn_catalogue() -> None:
    messages = i18n.catalogue("zh-CN")
    used = _used_keys()
    assert len(used) > 150
    missing = sorted(k for k in used if k not in messages)
    assert missing == []
    # The dynamic keys the scripts build from data: states, reasons and call states.
    for prefix, names in {
        "state.": ["logged_out", "ready", "not_ready", "ringing", "on_call", "wrap_up"],
        "reason.": ["break", "lunch", "training", "meeting", "no-answer", "phone-unreachable"],
        "call.state.": ["new", "routed", "waiting", "ringing", "talking", "ended"],
        "spy.": ["listen", "whisper", "barge"],
    }.items():
        assert all(prefix + n in messages for n in names), prefix


def test_translator_falls_back_and_fills_placeholders() -> None:
    t = i18n.Translator("xx-YY")
    assert t.language == "zh-CN"
    assert t("agent.missed", n=3) == "未接 3 次"
    assert t("no.such.key") == "no.such.key"
