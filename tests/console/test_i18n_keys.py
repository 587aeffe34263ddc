"""Every catalogue key a page can show exists in every language's own file (no fallback).

The keys are collected from where the pages use them: ``{{key}}`` in the templates, key
literals in the scripts and in the Python that renders pages, and the keys the scripts
build from data (``t("recording.status." + r.status)``), whose values are enumerated from
the code that produces them: the state tables, the recording statuses, the KPI names, the
login outcomes. A script that builds keys under a prefix this test does not know fails it,
so a new kind of dynamic key cannot slip past."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from console import i18n
from console.callers import FLAG_ACTIONS
from cti.acd import FLAG_KINDS
from cti.agents.board import AGENT_TRANSITIONS, PHONE_GONE, RING_NO_ANSWER
from cti.calls.model import CALL_TRANSITIONS
from cti.config import default_data, parse
from cti.control import SPY_MODES
from recordings.models import STATUSES as RECORDING_STATUSES
from tickets.kpi import KPI_NAMES
from tickets.suggest import FIELDS as SUGGESTION_FIELDS

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
TEMPLATES = CONSOLE / "templates"
STATIC = CONSOLE / "static"
KEY = r"[a-z][a-z0-9_]*(?:\.[a-z0-9_/-]+)+"
FILES = (".js", ".css", ".html", ".json", ".py")


def _read(path: Path) -> str:
    return path.read_text("utf-8")


def _scripts() -> str:
    return "\n".join(_read(p) for p in sorted(STATIC.glob("*.js")))


def _literals(pattern: str, text: str) -> set[str]:
    return set(re.findall(pattern, text))


def static_keys() -> set[str]:
    keys: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        keys |= _literals(r"\{\{(" + KEY + r")\}\}", _read(template))
    keys |= _literals(r'"(' + KEY + r')"', _scripts())
    q = r"""["'](""" + KEY + r""")["']"""
    for module in ("pages.py", "app.py"):
        source = _read(CONSOLE / module)
        keys |= _literals(r"\bt\(\s*" + q, source)  # t("error.home"), self.t('nav.logout')
        keys |= _literals(r'\("/[a-z]+",\s*' + q, source)  # the navigation table
        for a, b in re.findall(r"key\s*=\s*" + q + r"(?:\s+if\s[^\n]*?else\s+" + q + ")?", source):
            keys |= {a, b} - {""}  # key = "x" [if ... else "y"], title_key="x"
    return {k for k in keys if not k.endswith(FILES)}


def _call_args(function: str, script: str) -> set[str]:
    """The first arguments given as literals to ``function(...)`` in a script."""
    return _literals(function + r'\("([a-z0-9/_-]+)"', _read(STATIC / script))


def _not_ready_reasons() -> set[str]:
    configured = parse(default_data()).control.not_ready_reasons
    return {*configured, "login", RING_NO_ANSWER, PHONE_GONE}


def _login_outcomes() -> set[str]:
    users = _read(CONSOLE / "users.py")
    auth = _read(CONSOLE / "auth.py")
    found = _literals(r'return \w+, \w+, "([a-z-]+)"', users)
    found |= _literals(r'record_login,?\s*\(?\s*[\w.]+,\s*"([a-z-]+)"', auth)
    return found


def _replay_actions() -> set[str]:
    api = _read(ROOT / "recordings" / "api.py")
    match = re.search(r'action="(\w+)" if \w+ else "(\w+)"', api)
    assert match, "recordings/api.py no longer names its replay actions this way"
    return set(match.groups())


def _phone_classes() -> set[str]:
    script = _read(STATIC / "wallboard.js")
    body = script[script.index("function phoneClass") :]
    return _literals(r'return "(\w+)"', body[: body.index("\n  }\n")])


def _kpi_names() -> set[str]:
    """The KPIs the pages show: the period table's (tickets.kpi) and the counters named by a
    label key (``kpi.offered``) or a ``data-kpi`` attribute. ``H.explainKpis`` gives each
    the definition ``kpi.def.<name>``."""
    names = set(KPI_NAMES)
    names |= {k[4:] for k in static_keys() if re.fullmatch(r"kpi\.\w+", k)}
    for template in TEMPLATES.glob("*.html"):
        names |= _literals(r'data-kpi="(\w+)"', _read(template))
    return names


# prefix -> the values the scripts append to it
DYNAMIC: dict[str, Callable[[], set[str]]] = {
    "state.": lambda: set(AGENT_TRANSITIONS),
    "reason.": _not_ready_reasons,
    "call.state.": lambda: set(CALL_TRANSITIONS),
    "call.done.": lambda: _call_args("control", "agent.js"),
    "ticket.done.": lambda: _call_args("transition", "agent.js"),
    "audit.action.": _replay_actions,
    "audit.outcome.": _login_outcomes,
    "conn.": lambda: _call_args("show", "common.js"),
    "kpi.": _kpi_names,
    "kpi.def.": _kpi_names,
    "recording.status.": lambda: set(RECORDING_STATUSES),
    "spy.": lambda: set(SPY_MODES),
    "phone.": _phone_classes,
    "callers.kind.": lambda: set(FLAG_KINDS),
    "callers.action.": lambda: set(FLAG_ACTIONS),
    "suggest.": lambda: set(SUGGESTION_FIELDS),
}
# Prefixes whose key the scripts look up with H.has() first, showing other text without it.
OPTIONAL = {"alarm.kind.", "error.id."}


def dynamic_keys() -> set[str]:
    keys: set[str] = set()
    for prefix, values in DYNAMIC.items():
        found = values()
        assert found, f"no values found for {prefix}"
        keys |= {prefix + v for v in found}
    return keys


def used_keys() -> set[str]:
    return static_keys() | dynamic_keys()


def test_each_kpi_shown_has_a_definition_and_a_period() -> None:
    used = used_keys()
    for name in _kpi_names():
        assert f"kpi.def.{name}" in used, name
    for period in ("kpi.period.today", "kpi.period.report", "kpi.period.live"):
        assert period in used
    # every KPI tile of the templates carries its name, so the script can explain it
    for template in TEMPLATES.glob("*.html"):
        tiles = re.findall(r'<div class="kpi"[^>]*>', _read(template))
        assert all("data-kpi=" in tile for tile in tiles), template.name


def test_every_dynamic_prefix_of_the_scripts_is_enumerated() -> None:
    prefixes = _literals(r'"(' + KEY[:-1] + r'*\.)"\s*\+', _scripts())
    prefixes |= _literals(r'"([a-z]+\.)"\s*\+', _scripts())
    assert prefixes - OPTIONAL == set(DYNAMIC)


def test_the_reports_page_lists_every_kpi() -> None:
    script = _read(STATIC / "reports.js")
    listed = script[script.index("var KPIS = [") : script.index("];", script.index("var KPIS"))]
    assert re.findall(r'"(\w+)"', listed) == list(KPI_NAMES)


def test_the_collection_finds_the_keys_pages_use() -> None:
    used = used_keys()
    # one of each source: a template, a script literal, a page title, a dynamic key
    for key in ("reports.today", "kpi.offered", "nav.logout", "recording.status.recording"):
        assert key in used
    assert len(used) > 250


@pytest.mark.parametrize("language", i18n.languages())
def test_every_key_used_by_a_page_is_in_each_catalogue(language: str) -> None:
    own = i18n.own_catalogue(language)
    missing = sorted(k for k in used_keys() if k not in own)
    assert missing == [], f"{language}.json lacks {missing}"


@pytest.mark.parametrize("language", i18n.languages())
def test_each_catalogue_has_the_keys_of_the_default(language: str) -> None:
    """A language with fewer keys than zh-CN would show Chinese text on its pages."""
    assert set(i18n.own_catalogue(i18n.DEFAULT)) - set(i18n.own_catalogue(language)) == set()


def test_marked_missing_keys() -> None:
    t = i18n.Translator("zh-CN", mark_missing=True)
    assert t("no.such.key") == "⟦missing:no.such.key⟧"
    assert t("agent.missed", n=2) == "未接 2 次"
    assert i18n.Translator("zh-CN", mark_missing=False)("no.such.key") == "no.such.key"
