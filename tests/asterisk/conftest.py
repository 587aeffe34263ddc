"""The real-Asterisk integration suite: opt-in, with ``HOTLINE_TEST_ASTERISK`` naming an
installed Asterisk binary (``.../sbin/asterisk``); without it every test here is skipped.

One rig per session (``rig.Rig``): Asterisk from ``config/asterisk/``, baresip phones, SIPp,
``hotline serve``. Everything listens on 127.0.0.0/8 only; everything started is stopped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.asterisk.pbx import ENV_BINARY, binary_from_env

BINARY = binary_from_env()
TOOLS = ("baresip", "sipp", "sox")


def _skip_reason() -> str:
    if BINARY is None:
        return f"real-Asterisk suite: set {ENV_BINARY}=/path/to/sbin/asterisk to run it"
    if not os.access(BINARY, os.X_OK):
        return f"{ENV_BINARY}={BINARY} is not an executable"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"real-Asterisk suite needs {', '.join(missing)} (Debian: baresip sip-tester sox)"
    return ""


SKIP = _skip_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.asterisk)
            if SKIP:
                item.add_marker(pytest.mark.skip(reason=SKIP))


@pytest.fixture(scope="session")
def rig() -> Iterator[object]:
    from tests.asterisk.rig import Rig

    assert BINARY is not None
    keep = os.environ.get("HOTLINE_TEST_ASTERISK_KEEP", "")
    workdir = Path(tempfile.mkdtemp(prefix="hotline-asterisk-"))
    rig = Rig(BINARY, workdir)
    try:
        rig.start()
        yield rig
    finally:
        try:
            RESULTS["asterisk_log_after_boot"] = rig.asterisk_problems()
            RESULTS["rig_repairs"] = rig.notes
        except Exception as exc:  # the report must not hide the real failure
            RESULTS["asterisk_log_after_boot"] = repr(exc)
        rig.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"rig kept in {workdir}")


RESULTS: dict[str, object] = {}


@pytest.fixture
def results() -> dict[str, object]:
    """Numbers for the report (printed at the end of the run, and written to
    ``$HOTLINE_TEST_ASTERISK_RESULTS`` when set)."""
    return RESULTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    import json

    text = json.dumps(RESULTS, ensure_ascii=False, indent=1, default=str)
    terminalreporter.section("real Asterisk: measurements")
    terminalreporter.write_line(text)
    target = os.environ.get("HOTLINE_TEST_ASTERISK_RESULTS", "")
    if target:
        Path(target).write_text(text + "\n", encoding="utf-8")
