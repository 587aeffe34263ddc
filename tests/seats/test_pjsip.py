"""``hotline seats pjsip``: the generated file parsed back as Asterisk's config loader reads it
(sections, same-named objects of different types, ``(!)`` templates and ``(tpl)``
inheritance, ``#include``), and the passwords kept across runs."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cti.cli import main
from cti.config import default_data, parse
from cti.seats.pjsip import (
    PLACEHOLDER_PASSWORD,
    PjsipOptions,
    SecretsError,
    SecretStore,
    accounts,
    generate,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "asterisk"


@dataclass
class Section:
    name: str
    template: bool
    parents: list[str]
    options: list[tuple[str, str]] = field(default_factory=list)


def parse_conf(text: str, base: Path | None = None) -> list[Section]:
    """Asterisk's config syntax, the parts pjsip.conf uses."""
    sections: list[Section] = []
    for raw in text.splitlines():
        # ';' starts a comment unless escaped as '\;' (outbound_proxy's ";lr")
        line = re.split(r"(?<!\\);", raw, maxsplit=1)[0].strip().replace("\\;", ";")
        if not line:
            continue
        if line.startswith("#include"):
            assert base is not None, "an #include needs a base directory"
            included = base / line.split(None, 1)[1].strip().strip('"')
            sections += parse_conf(included.read_text(encoding="utf-8"), base)
            continue
        if line.startswith("["):
            name, _, rest = line[1:].partition("]")
            flags = rest.strip().strip("()")
            parts = [p.strip() for p in flags.split(",") if p.strip()] if flags else []
            sections.append(Section(name, "!" in parts, [p for p in parts if p != "!"]))
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not an option line: {raw!r}"
        sections[-1].options.append((key.strip().rstrip(">"), value.strip()))
    return sections


def resolve(sections: list[Section]) -> dict[tuple[str, str], dict[str, str]]:
    """Objects by (name, type): template options first, then the section's own."""
    templates = {s.name: s for s in sections if s.template}
    objects: dict[tuple[str, str], dict[str, str]] = {}
    for s in sections:
        if s.template:
            continue
        merged: dict[str, str] = {}
        for parent in s.parents:
            assert parent in templates, f"[{s.name}] uses unknown template {parent}"
            merged.update(templates[parent].options)
        merged.update(s.options)
        key = (s.name, merged["type"])
        assert key not in objects, f"duplicate {key}"
        objects[key] = merged
    return objects


@pytest.fixture
def settings():  # noqa: ANN201
    data = default_data()
    data["seats"].append(
        {
            "id": "B01",
            "extension": "8101",
            "room": "二楼;投诉专席\n",
            "phone_model": "Grandstream GRP2614",
            "mac": "00-0B-82-AA-BB-CC",
        }
    )
    data["seats"].append({"id": "S01", "extension": "8900", "kind": "supervisor"})
    data["windows"].append({"id": "gjj", "name": "公积金窗口", "extension": "9002"})
    data["windows"].append({"id": "tax", "name": "税务", "external_number": "057112366"})
    return parse(data)


def test_every_seat_and_window_has_endpoint_auth_and_aor(settings, tmp_path: Path) -> None:  # noqa: ANN001
    store = SecretStore(tmp_path / "secrets.json")
    text = generate(settings, store, PjsipOptions(qualify_frequency=7))
    objects = resolve(parse_conf(text))

    extensions = ["8001", "8002", "8003", "8004", "9001", "8101", "8900", "9002"]
    assert [p.extension for p in accounts(settings)] == extensions
    assert len(objects) == 3 * len(extensions)  # 9001 is both a seat and a window: once
    for ext in extensions:
        endpoint = objects[(ext, "endpoint")]
        auth = objects[(ext, "auth")]
        aor = objects[(ext, "aor")]
        assert endpoint["auth"] == ext and endpoint["aors"] == ext
        assert endpoint["context"] == "from-seat"
        assert endpoint["identify_by"] == "username"
        assert endpoint["direct_media"] == "no"
        assert endpoint["disallow"] == "all" and endpoint["allow"] == "ulaw,alaw"
        assert "language" not in endpoint  # Atxfer's pbx-transfer prompt must be found
        assert auth["auth_type"] == "userpass" and auth["username"] == ext
        assert auth["password"] == store.passwords[ext] and len(auth["password"]) >= 20
        assert aor["max_contacts"] == "1" and aor["remove_existing"] == "yes"
        assert aor["qualify_frequency"] == "7"
    assert objects[("8001", "endpoint")]["callerid"] == '"Seat A01" <8001>'
    assert objects[("9001", "endpoint")]["callerid"] == '"Window W01" <9001>'
    assert objects[("9002", "endpoint")]["callerid"] == '"Window gjj" <9002>'
    assert objects[("8900", "endpoint")]["callerid"] == '"Supervisor S01" <8900>'
    # A room name with ';' and a newline stays inside its comment line.
    assert "; seat B01, 二楼;投诉专席 , Grandstream GRP2614, MAC 00:0b:82:aa:bb:cc" in text
    assert len(set(store.passwords.values())) == len(extensions)


def test_passwords_are_kept_across_runs_and_the_file_is_private(
    settings,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "secrets.json"
    store = SecretStore(path)
    first = generate(settings, store)
    assert store.save() is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert set(data["passwords"]) == {p.extension for p in accounts(settings)}

    again = SecretStore(path)
    assert generate(settings, again) == first
    assert again.created == [] and again.save() is False

    os.chmod(path, 0o644)
    with pytest.raises(SecretsError, match="chmod 600"):
        SecretStore(path)
    os.chmod(path, 0o600)
    path.write_text('{"passwords": {"8001": "bad pass;word"}}')
    with pytest.raises(SecretsError):
        SecretStore(path)


def test_options_are_checked(settings, tmp_path: Path) -> None:  # noqa: ANN001
    store = SecretStore(tmp_path / "s.json")
    for bad in (
        PjsipOptions(context="from-seat\n[evil]"),
        PjsipOptions(codecs=("ulaw;x",)),
        PjsipOptions(qualify_frequency=-1),
        PjsipOptions(transport="udp\nx"),
    ):
        with pytest.raises(ValueError):
            generate(settings, store, bad)
    text = generate(settings, store, PjsipOptions(transport="transport-udp", codecs=("g722",)))
    endpoint = resolve(parse_conf(text))[("8001", "endpoint")]
    assert endpoint["transport"] == "transport-udp" and endpoint["allow"] == "g722"


def test_shipped_configuration_loads_the_generated_phones() -> None:
    sections = parse_conf((CONFIG_DIR / "pjsip.conf").read_text(encoding="utf-8"), CONFIG_DIR)
    objects = resolve(sections)
    assert objects[("transport-udp", "transport")]["protocol"] == "udp"
    trunk = objects[("trunk", "endpoint")]
    assert trunk["context"] == "from-citizen" and trunk["direct_media"] == "no"
    assert objects[("trunk", "identify")]["endpoint"] == "trunk"
    assert objects[("8001", "endpoint")]["aors"] == "8001"
    assert objects[("8001", "auth")]["password"] == PLACEHOLDER_PASSWORD


def test_shipped_example_is_what_the_generator_writes_for_the_defaults() -> None:
    shipped = (CONFIG_DIR / "pjsip_seats.conf").read_text(encoding="utf-8")
    assert shipped == generate(parse(default_data()), None, placeholder=True)
    assert "EXAMPLE ONLY" in shipped


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(
        '[[asterisk]]\nname = "pbx1"\nusername = "cti"\nsecret = "s"\n'
        '[[hotlines]]\ndid = "12345"\nname = "12345"\ntopic = "综合"\nskill = "general"\n'
        '[[seats]]\nid = "A01"\nextension = "8001"\n'
        '[[windows]]\nid = "w"\nname = "窗口"\nextension = "9001"\n',
        encoding="utf-8",
    )
    os.chmod(config, 0o600)
    out, secrets_path = tmp_path / "etc" / "pjsip_seats.conf", tmp_path / "s" / "pw.json"
    args = ["seats", "pjsip", "--config", str(config), "--output", str(out)]
    assert main([*args, "--secrets", str(secrets_path)]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["phones"] == 2 and summary["new_passwords"] == 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    objects = resolve(parse_conf(out.read_text(encoding="utf-8")))
    assert set(objects) == {(e, t) for e in ("8001", "9001") for t in ("endpoint", "auth", "aor")}
    assert main([*args, "--secrets", str(secrets_path)]) == 0
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["new_passwords"] == 0

    assert main(["seats", "pjsip", "--config", str(config), "--qualify", "-3"]) == 2
    assert main(["seats", "list", "--config", str(config)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["extension"], r["kind"]) for r in listed] == [("8001", "seat"), ("9001", "window")]
