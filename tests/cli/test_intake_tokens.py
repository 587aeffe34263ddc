"""``hotline config check`` refuses an intake client's token that anyone could know: the
example's placeholder."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.conftest import hotline, site_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def _example_token() -> str:
    """The token the example shows (commented out) under [[intake.clients]]."""
    match = re.search(r'^# token = "(.+)"$', EXAMPLE.read_text(encoding="utf-8"), re.M)
    assert match is not None
    return match[1]


def _with_clients(path: Path, tokens: list[str]) -> Path:
    site = site_config(path, "sqlite:///var/hotline.db")
    clients = "".join(
        f'\n[[intake.clients]]\nname = "client{i}"\ntoken = "{token}"\nchannels = ["api"]\n'
        for i, token in enumerate(tokens)
    )
    site.write_text(site.read_text(encoding="utf-8") + clients, encoding="utf-8")
    return site


def test_the_examples_token_is_refused(tmp_path: Path) -> None:
    site = _with_clients(tmp_path / "site.toml", [_example_token()])
    check = hotline("config", "check", "--config", str(site), cwd=tmp_path)
    assert check.code == 2 and "Traceback" not in check.text
    line = site.read_text(encoding="utf-8").splitlines().index(f'token = "{_example_token()}"')
    assert (
        f"intake.clients[0].token: line {line + 1}: the example's placeholder: give the client"
        " 'client0' a random token"
    ) in check.err, check.err


def test_random_tokens_pass(tmp_path: Path) -> None:
    site = _with_clients(
        tmp_path / "site.toml", ["Vb3kQ9-x7Lm2Pz8RtY4wN6sH1cJ5", "aD0fG7-hK2mN4pR6tV8xZ1bC3eF5"]
    )
    check = hotline("config", "check", "--config", str(site), cwd=tmp_path)
    assert "Traceback" not in check.text
    assert "intake.clients" not in check.text, check.text
