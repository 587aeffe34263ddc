from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from sqlalchemy.orm import Session, sessionmaker

from console.security import User
from cti.errors import ApiError
from recordings.api import error_response, parse_range, router
from recordings.service import RecordingService
from recordings.settings import RecordingSettings

from .conftest import FakeClock, write_call

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 package on import of its test client; httpx works.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

USERS = {
    "sup": User(1, "sup", "王主管", frozenset({"supervisor"})),
    "admin": User(2, "admin", "管理员", frozenset({"admin"})),
    "a1": User(3, "a1", "坐席一", frozenset({"agent"}), agent_id="a1"),
    "a2": User(4, "a2", "坐席二", frozenset({"agent"}), agent_id="a2"),
    "win": User(5, "win", "窗口", frozenset({"window"}), window_id="w1"),
}


@pytest.fixture
def setup(
    sf: sessionmaker[Session], rec_settings: RecordingSettings, clock: FakeClock
) -> Iterator[tuple[TestClient, RecordingService, int, bytes]]:
    svc = RecordingService(sf, rec_settings, None, clock)
    files = write_call(Path(rec_settings.dir) / "2026/03/02/T1")
    rid = svc.register_stopped(
        call_id="1772.42", node="pbx1", ticket_id="T1", agent_id="a1",
        path="/var/spool/asterisk/monitor/hotline/2026/03/02/T1/1772.42.wav",
        started_at=clock() - timedelta(seconds=14), ended_at=clock(),
    )  # fmt: skip
    app = FastAPI()

    @app.middleware("http")
    async def login(request: Request, call_next):  # type: ignore[no-untyped-def]
        name = request.headers.get("x-user")
        if name:
            request.state.user = USERS[name]
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):  # type: ignore[no-untyped-def]
        return error_response(exc)

    app.include_router(router(svc, rec_settings))
    with TestClient(app) as client:
        yield client, svc, rid, files["mixed"].read_bytes()


def H(user: str, **extra: str) -> dict[str, str]:
    return {"x-user": user, "user-agent": "pytest-browser/1.0", **extra}


def test_full_get_and_range_requests(
    setup: tuple[TestClient, RecordingService, int, bytes],
) -> None:
    client, svc, rid, data = setup
    url = f"/api/recordings/{rid}/audio"
    r = client.get(url, headers=H("sup"))
    assert r.status_code == 200 and r.content == data
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "audio/wav"
    etag = r.headers["etag"]
    assert etag == f'"{svc.get(rid).sha256}"'

    r = client.get(url, headers=H("sup", range="bytes=100-199"))
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert r.headers["content-length"] == "100"
    r = client.get(url, headers=H("sup", range="bytes=-10"))
    assert r.status_code == 206 and r.content == data[-10:]
    r = client.get(url, headers=H("sup", range=f"bytes={len(data) - 5}-"))
    assert r.content == data[-5:]
    r = client.get(url, headers=H("sup", range=f"bytes=0-{len(data) * 2}"))
    assert r.status_code == 206 and r.content == data  # clamped to the file
    for bad in (f"bytes={len(data)}-", "bytes=50-10", "bytes=abc", "bytes=-0"):
        r = client.get(url, headers=H("sup", range=bad))
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{len(data)}"
    # If-Range with a stale validator: the whole file
    r = client.get(url, headers=H("sup", range="bytes=0-9", **{"if-range": '"old"'}))
    assert r.status_code == 200 and len(r.content) == len(data)
    r = client.get(url, headers=H("sup", range="bytes=0-9", **{"if-range": etag}))
    assert r.status_code == 206


def test_parse_range_unit_and_multi() -> None:
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=0-1,5-6", 100) is None
    assert parse_range("bytes=0-", 100) == (0, 99)


def test_plays_and_downloads_are_audited(
    setup: tuple[TestClient, RecordingService, int, bytes],
) -> None:
    client, _svc, rid, data = setup
    url = f"/api/recordings/{rid}/audio"
    # a browser session: first request from byte 0, then seeks
    for rng in ("bytes=0-", "bytes=40000-", "bytes=0-", "bytes=90000-"):
        h = H("a1", range=rng, **{"x-forwarded-for": "10.1.2.3"})
        assert client.get(url + "?session=s1", headers=h).status_code == 206
    client.get(url, headers=H("sup"))  # a full GET is a play
    client.get(url, headers=H("sup", range="bytes=1000-"))  # a seek alone is not
    r = client.get(url + "?download=1", headers=H("sup"))
    assert r.headers["content-disposition"] == f'attachment; filename="recording-{rid}.wav"'
    assert r.content == data

    assert client.get("/api/audit/replay", headers=H("sup")).status_code == 403
    r = client.get(f"/api/audit/replay?recording_id={rid}", headers=H("admin"))
    assert r.status_code == 200
    entries = sorted(r.json()["entries"], key=lambda e: e["id"])
    assert [(e["username"], e["action"]) for e in entries] == [
        ("a1", "play"),
        ("sup", "play"),
        ("sup", "download"),
    ]
    first = entries[0]
    assert first["recording_id"] == rid and first["range"] == "bytes=0-"
    assert first["remote_addr"] == "testclient" and first["forwarded_for"] == "10.1.2.3"
    assert first["user_agent"] == "pytest-browser/1.0" and first["at"].startswith("2026-03-02")


def test_access_is_by_role_and_ownership(
    setup: tuple[TestClient, RecordingService, int, bytes],
) -> None:
    client, svc, rid, _ = setup
    for path in ("", "/audio", "/waveform"):
        url = f"/api/recordings/{rid}{path}"
        assert client.get(url, headers=H("a1")).status_code == 200
        assert client.get(url, headers=H("sup")).status_code == 200
        r = client.get(url, headers=H("a2"))
        assert r.status_code == 403 and r.json()["error"] == "recording-not-yours"
        assert client.get(url, headers=H("win")).status_code == 403
        r = client.get(url)
        assert r.status_code == 401 and r.json()["error"] == "not-authenticated"
    assert client.get(f"/replay/{rid}", headers=H("a2")).status_code == 403
    assert client.get("/api/recordings/999", headers=H("sup")).json()["error"] == (
        "no-such-recording"
    )
    # the allowed plays were logged, the denied requests played nothing
    assert sorted(a.username for a in svc.audit_log()) == ["a1", "sup"]


def test_metadata_list_waveform_and_page(
    setup: tuple[TestClient, RecordingService, int, bytes],
) -> None:
    client, _svc, rid, _ = setup
    r = client.get(f"/api/recordings/{rid}", headers=H("a1")).json()
    assert r["ticket_id"] == "T1" and r["legs"] == ["in", "out"]
    assert r["transcription"]["status"] == "queued" and r["segments"] == []
    lst = client.get("/api/recordings?ticket_id=T1", headers=H("sup")).json()["recordings"]
    assert [x["id"] for x in lst] == [rid]
    assert client.get("/api/recordings?date=2026-03-02", headers=H("sup")).json()["recordings"]
    assert not client.get("/api/recordings?date=2026-03-03", headers=H("sup")).json()["recordings"]
    assert client.get("/api/recordings", headers=H("a2")).json()["recordings"] == []
    assert client.get("/api/recordings?agent_id=a1", headers=H("a2")).status_code == 403
    w = client.get(f"/api/recordings/{rid}/waveform?points=100", headers=H("a1")).json()
    assert len(w["peaks"]) == 100 and w["duration_s"] == pytest.approx(13.54, abs=0.01)
    page = client.get(f"/replay/{rid}", headers=H("a1"))
    assert page.status_code == 200 and "录音回放" in page.text and 'lang="zh-CN"' in page.text
    js = client.get("/replay-static/replay.js", headers=H("a1"))
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/replay-static/secret.py", headers=H("a1")).status_code == 404


def test_every_route_declares_roles(
    rec_settings: RecordingSettings, sf: sessionmaker[Session]
) -> None:
    r = router(RecordingService(sf, rec_settings), rec_settings)
    for route in r.routes:
        deps = [d.call for d in route.dependant.dependencies]  # type: ignore[attr-defined]
        assert any(hasattr(c, "required_roles") for c in deps), route.path  # type: ignore[attr-defined]


def test_a_call_still_being_recorded_is_not_served(
    setup: tuple[TestClient, RecordingService, int, bytes], clock: FakeClock
) -> None:
    client, svc, _, _ = setup
    rid = svc.register_started(
        call_id="1772.50", node="pbx1", ticket_id="T2", agent_id="a1",
        path="/var/spool/asterisk/monitor/hotline/2026/03/02/T2/1772.50.wav",
        started_at=clock(),
    )  # fmt: skip
    r = client.get(f"/api/recordings/{rid}/audio", headers=H("sup"))
    assert r.status_code == 409 and r.json()["error"] == "recording-in-progress"
    assert svc.audit_log(recording_id=rid) == []  # nothing was played
