"""One CTI per SQLite file: a second ``hotline serve`` on the same file is refused with one
clear sentence; the lock goes with the first process, ``kill -9`` included."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti.single import DatabaseInUse, SingleCti, sqlite_path
from tests.cti.test_config_check import ROOT, example, write


class Serve:
    """``hotline serve`` as a real process."""

    def __init__(self, config: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("HOTLINE_CONFIG", None)
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cti.cli", "serve", "--config", str(config)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
            )

    def first_line(self) -> bytes:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def started(self) -> bool:
        return self.first_line().startswith(b"hotline: console on")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    return write(site / "hotline.toml", example(site))


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.end()


def test_a_second_cti_on_the_same_sqlite_file_is_refused(
    config: Path, tmp_path: Path, serving: list[Serve]
) -> None:
    first = Serve(config, tmp_path / "first.log")
    serving.append(first)
    assert first.started(), (tmp_path / "first.log").read_text()

    second = subprocess.run(
        [sys.executable, "-m", "cti.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    database = config.parent / "var" / "hotline.db"
    assert (
        f"another hotline CTI (pid {first.proc.pid}) is running on the SQLite database"
        f" {database}: one CTI per SQLite file" in second.stderr
    )
    assert "PostgreSQL" in second.stderr
    assert first.proc.poll() is None  # the first one runs on

    # kill -9: no cleanup ran, the operating system released the lock with the process
    first.proc.kill()
    first.proc.wait(30)
    third = Serve(config, tmp_path / "third.log")
    serving.append(third)
    assert third.started(), (tmp_path / "third.log").read_text()


def test_the_lock_in_one_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'hotline.db'}"
    first, second = SingleCti(url), SingleCti(url)
    first.acquire()
    assert first.lock_path == tmp_path / "db" / "hotline.db.lock"
    assert first.lock_path.read_text() == f"{os.getpid()}\n"
    with pytest.raises(DatabaseInUse) as refused:
        second.acquire()
    assert f"(pid {os.getpid()})" in str(refused.value)
    first.release()
    second.acquire()  # free again once the holder let go
    second.release()


def test_only_sqlite_files_are_locked() -> None:
    assert sqlite_path("sqlite:////var/lib/hotline/hotline.db") == Path(
        "/var/lib/hotline/hotline.db"
    )
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://hotline@db/hotline") is None
    nothing = SingleCti("postgresql+psycopg://hotline@db/hotline")
    nothing.acquire()  # several CTIs on PostgreSQL: the database keeps them apart
    assert nothing.lock_path is None
    nothing.release()
