"""Files attached to tickets: a department's photo of the repaired street lamp, a citizen's
letter. Kept under ``[tickets] attachments_dir``, one folder per ticket, named by their
SHA-256 (never by the name the uploader gave, which is only shown); what the upload claims
to be is checked against the file's first bytes, so a page cannot be passed off as a photo.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cti.errors import ApiError, Invalid

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "application/msword": ".doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = b"PK\x03\x04"


class TooLarge(ApiError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413, "attachment-too-large", f"attachments are limited to {max_bytes} bytes"
        )


def looks_like(content_type: str, head: bytes) -> bool:
    """Do the first bytes of a file match the type it was uploaded as?"""
    if content_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if content_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/gif":
        return head[:6] in (b"GIF87a", b"GIF89a")
    if content_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if content_type == "application/pdf":
        return head.startswith(b"%PDF-")
    if content_type in ("application/msword", "application/vnd.ms-excel"):
        return head.startswith(_OLE)
    if content_type.startswith("application/vnd.openxmlformats-officedocument."):
        return head.startswith(_ZIP)
    if content_type == "text/plain":
        if b"\0" in head:
            return False
        for encoding in ("utf-8", "gb18030"):
            try:
                # the head may end inside a character: ignore the last three bytes
                head[: max(0, len(head) - 3)].decode(encoding)
                return True
            except UnicodeDecodeError:
                continue
        return False
    return False


def clean_name(name: str) -> str:
    """The name to show: the last path part, no control characters, at most 120 chars."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip(" .")
    return name[:120] or "attachment"


@dataclass(frozen=True, slots=True)
class StoredFile:
    name: str
    path: str
    content_type: str
    size: int
    sha256: str


def store(
    root: Path,
    ticket_id: str,
    name: str,
    content_type: str,
    chunks: Iterator[bytes],
    *,
    max_bytes: int,
    allowed: list[str],
) -> StoredFile:
    """Write the upload under ``root/ticket_id/`` and return what was stored; raises
    ``Invalid`` (a type not allowed, or bytes that are not that type) or ``TooLarge``."""
    content_type = content_type.split(";", 1)[0].strip().lower()
    if content_type not in allowed or content_type not in EXTENSIONS:
        raise Invalid("attachment-type", f"files of type {content_type!r} are not accepted")
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,40}", ticket_id):
        raise Invalid("ticket-id", "bad ticket id")
    folder = root / ticket_id
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(max_bytes)
                if len(head) < 64:
                    head += chunk[: 64 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise Invalid("attachment-empty", "the file is empty")
        if not looks_like(content_type, head):
            raise Invalid("attachment-content", f"the file is not {content_type}")
        sha = digest.hexdigest()
        final = folder / f"{sha[:24]}{EXTENSIONS[content_type]}"
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return StoredFile(clean_name(name), str(final), content_type, size, sha)


def read_chunks(fh: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk
