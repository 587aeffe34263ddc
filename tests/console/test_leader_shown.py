"""The console names the CTI process that leads (cti.leader): /healthz gives this process's
role and the lease's term; the wallboard's snapshot names the leader."""

from __future__ import annotations

from typing import Any

from cti.app import Hotline
from tests.console.conftest import TestClient, login


def test_health_and_wallboard_name_the_leader(
    app: Any, client: TestClient, hotline: Hotline
) -> None:
    login(client, "boss")
    assert client.get("/healthz").json()["leadership"]["role"] == "standby"
    assert client.portal is not None
    assert client.portal.call(hotline.leadership.acquire)
    try:
        lead = client.get("/healthz").json()["leadership"]
        assert lead["role"] == "leader" and lead["term"] == 1
        with client.websocket_connect("/ws") as wall:
            snap = wall.receive_json()
        assert snap["type"] == "Snapshot"
        assert snap["cti"]["role"] == "leader"
        assert snap["cti"]["leader"] == hotline.leadership.me
    finally:
        client.portal.call(hotline.leadership.stop)
