from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cti.app import Hotline
from cti.config import default_data, parse
from cti.events import Event


class Started:
    def __init__(self, hotline: Hotline) -> None:
        self.hotline = hotline
        self.events: list[Event] = []
        hotline.bus.subscribe_all(self.events.append)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def make_hotline(any_db_url: str, tmp_path) -> AsyncIterator[Callable[..., Any]]:  # noqa: ANN001
    started: list[Hotline] = []

    async def make(ami_port: int, **overrides: Any) -> Started:
        data = default_data()
        data["asterisk"][0]["port"] = ami_port
        data["asterisk"][0]["backoff_max_s"] = 0.5
        data["database"] = {"url": any_db_url}
        data["agi"] = {"port": 0}
        data["recordings"] = {"dir": str(tmp_path / "rec")}
        data["control"] = {"wrapup_s": 0}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        hotline = Hotline(parse(data), console=False)
        s = Started(hotline)
        await hotline.start()
        started.append(hotline)
        return s

    yield make
    for h in started:
        await h.stop()
