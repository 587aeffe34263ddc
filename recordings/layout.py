"""Where recordings live: ``{root}/{YYYY}/{MM}/{DD}/{ticket_id}/{uniqueid}.wav``.

The FastAGI route sets ``HOTLINE_REC`` to ``recording_path(asterisk_dir, ...)``; the dialplan
has MixMonitor write the legs beside it as ``${HOTLINE_REC:0:-4}-in.wav`` (received: the
caller's voice) and ``-out.wav`` (transmitted: what the caller hears, the agent).
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from pathlib import Path, PurePosixPath

from recordings.settings import RecordingSettings

# Path components come from the network (uniqueid) and the ticket store: keep them to one
# harmless directory entry each.
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _component(value: str, what: str) -> str:
    if not _SAFE.match(value) or ".." in value:
        raise ValueError(f"unsafe {what} for a recording path: {value!r}")
    return value


def recording_path(root: str, at: datetime, ticket_id: str, uniqueid: str) -> str:
    """The mixed file of a call; ``at`` is taken as given (pass local time for local dates)."""
    ticket = _component(ticket_id, "ticket id")
    unique = _component(uniqueid, "uniqueid")
    return posixpath.join(
        root.rstrip("/") or "/", f"{at:%Y}", f"{at:%m}", f"{at:%d}", ticket, f"{unique}.wav"
    )


def leg_paths(path: str) -> tuple[str, str]:
    """``(received, transmitted)`` leg files: ``x.wav`` -> ``x-in.wav``, ``x-out.wav``."""
    if not path.endswith(".wav"):
        raise ValueError(f"recording path must end in .wav: {path!r}")
    base = path[:-4]
    return f"{base}-in.wav", f"{base}-out.wav"


def local_path(settings: RecordingSettings, asterisk_path: str) -> str:
    """Map a path as Asterisk wrote it to the path under ``settings.dir``.

    A path outside ``asterisk_dir`` is returned unchanged (same file system, other layout).
    """
    ast_root = PurePosixPath(settings.asterisk_root)
    p = PurePosixPath(asterisk_path)
    try:
        rel = p.relative_to(ast_root)
    except ValueError:
        return asterisk_path
    if ".." in rel.parts:
        raise ValueError(f"recording path escapes the recordings directory: {asterisk_path!r}")
    return str(Path(settings.dir) / rel)


def relative_to_root(settings: RecordingSettings, local: str) -> str | None:
    """The path below ``settings.dir`` (used to keep the layout in the archive)."""
    try:
        return str(Path(local).resolve().relative_to(Path(settings.dir).resolve()))
    except ValueError:
        return None
