"""Phone provisioning files (Yealink, Grandstream) and the route that serves them: the
per-site token in the path and the optional network allow-list."""

from __future__ import annotations

import json
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cti.cli import main
from cti.config import default_data, parse
from cti.seats.pjsip import SecretStore, accounts, generate
from cti.seats.provisioning import (
    PhoneAccess,
    ProvisioningOptions,
    load_token,
    router,
    served_name,
    vendor,
    write_files,
)

YEALINK_MAC = "80:5e:c0:12:34:56"
GS_MAC = "00:0b:82:aa:bb:cc"


def settings_with_macs():  # noqa: ANN201
    data = default_data()
    data["seats"][0]["mac"] = YEALINK_MAC.upper()
    data["seats"][1].update(phone_model="Grandstream GRP2614", mac=GS_MAC)
    data["seats"][2].update(phone_model="Fanvil X4", mac="0c:38:3e:00:00:01")
    return parse(data)


@pytest.fixture
def provisioned(tmp_path: Path) -> tuple[Path, SecretStore]:
    settings = settings_with_macs()
    store = SecretStore(tmp_path / "pw.json")
    generate(settings, store)
    store.save()
    directory = tmp_path / "prov"
    result = write_files(
        accounts(settings), store, directory, ProvisioningOptions("10.20.0.5:5080")
    )
    assert sorted(result.written) == sorted(
        [
            "805ec0123456.cfg",
            "cfg000b82aabbcc.xml",
            "0c383e000001.cfg",
            "cfg0c383e000001.xml",
            "y000000000000.cfg",
        ]
    )
    assert result.unknown_vendor == ["A03"]
    assert result.skipped == ["A04", "W01"]
    return directory, store


def test_yealink_and_grandstream_files(provisioned: tuple[Path, SecretStore]) -> None:
    directory, store = provisioned
    yealink = (directory / "805ec0123456.cfg").read_text(encoding="utf-8")
    lines = dict(
        line.split(" = ", 1) for line in yealink.splitlines() if " = " in line and "#" not in line
    )
    assert yealink.startswith("#!version:1.0.0.1\n")
    assert lines["account.1.user_name"] == lines["account.1.auth_name"] == "8001"
    assert lines["account.1.password"] == store.passwords["8001"]
    assert lines["account.1.sip_server.1.address"] == "10.20.0.5"
    assert lines["account.1.sip_server.1.port"] == "5080"
    assert lines["account.1.label"] == "A区01"

    root = ET.fromstring((directory / "cfg000b82aabbcc.xml").read_text(encoding="utf-8"))
    assert root.tag == "gs_provision" and root.findtext("mac") == "000b82aabbcc"
    config = root.find("config")
    assert config is not None
    assert config.findtext("P35") == config.findtext("P36") == "8002"
    assert config.findtext("P34") == store.passwords["8002"]
    assert config.findtext("P47") == "10.20.0.5:5080"
    assert config.findtext("P271") == "1"
    for name in ("805ec0123456.cfg", "cfg000b82aabbcc.xml"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600


def test_vendor_and_names() -> None:
    assert vendor("Yealink T54W") == vendor("T46S") == "yealink"
    assert vendor("GXP1628") == vendor("Grandstream GRP2614") == "grandstream"
    assert vendor("Fanvil X4") == ""
    assert served_name("y000000000108.cfg") == "y000000000000.cfg"
    assert served_name("805EC0123456.cfg") == "805ec0123456.cfg"
    assert served_name("cfg000b82aabbcc.xml") == "cfg000b82aabbcc.xml"
    for bad in ("../pw.json", "pw.json", "805ec0123456.cfg/../x", "y0000000001.cfg"):
        assert served_name(bad) is None
    with pytest.raises(ValueError):
        ProvisioningOptions("10.0.0.1;rm").check()
    with pytest.raises(ValueError):
        PhoneAccess("short")


async def test_route_needs_the_token_and_the_network(
    provisioned: tuple[Path, SecretStore],
) -> None:
    directory, store = provisioned
    token = store.provisioning_token()
    app = FastAPI()
    app.include_router(router(directory, token=token, allow=["127.0.0.0/8"]))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx") as http:
        r = await http.get(f"/provision/{token}/805EC0123456.cfg")
        assert r.status_code == 200 and "account.1.password" in r.text
        assert r.headers["cache-control"] == "no-store"
        r = await http.get(f"/provision/{token}/y000000000108.cfg")
        assert r.status_code == 200 and "local_time.time_zone = +8" in r.text
        r = await http.get(f"/provision/{token}/cfg000b82aabbcc.xml")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        for path in (
            "/provision/wrong-token-0123456789/805ec0123456.cfg",
            f"/provision/{token}/aabbccddeeff.cfg",
            f"/provision/{token}/pw.json",
            f"/provision/{token}/..%2Fpw.json",
        ):
            assert (await http.get(path)).status_code == 404, path

    outside = httpx.ASGITransport(app=app, client=("192.168.9.9", 5555))
    async with httpx.AsyncClient(transport=outside, base_url="http://pbx") as http:
        assert (await http.get(f"/provision/{token}/805ec0123456.cfg")).status_code == 404


def test_token_is_kept_in_the_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "pw.json"
    token = load_token(path)
    assert len(token) >= 32 and load_token(path) == token
    assert json.loads(path.read_text())["provisioning_token"] == token


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets_path = str(tmp_path / "pw.json")
    out = tmp_path / "prov"
    args = ["seats", "provisioning", "--secrets", secrets_path, "--output-dir", str(out)]
    # The default seats have no MAC: nothing to write, but the command works.
    assert main([*args, "--sip-server", "10.20.0.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == [] and report["url_path"].startswith("/provision/")
    assert main([*args, "--sip-server", "bad host"]) == 2
