"""Uploaded collateral files: checked, stored by content under the instance folder.

A file is refused unless its name is a plain file name (no folders), its extension is one we
serve, its content really is that type (sniffed from its first bytes, not trusted from the
client), and it is within the size limit. Stored files are named by their SHA-256, so the
same file uploaded twice is stored once and a name can never reach outside the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import filetype

from nurture.errors import InvalidInput

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
"""Largest collateral file: enough for a deck or a short video, not for a library."""

ALLOWED_TYPES = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
"""What may be uploaded, by extension, and the type it is served as."""

OFFICE_ZIP = {".docx", ".pptx", ".xlsx"}
"""Office files are zip archives; the sniffer may only see the zip."""

_PLAIN_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,200}$")


@dataclass(frozen=True)
class StoredFile:
    path: str
    """Relative to the upload folder."""
    file_name: str
    content_type: str
    size: int
    sha256: str


def check_file_name(name: str | None) -> tuple[str, str]:
    """The name and its extension; InvalidInput for a path, a hidden file or an unknown type."""
    if not name or not _PLAIN_NAME.match(name) or name in (".", "..") or name.startswith("."):
        raise InvalidInput("refused file name", {"file": [
            "give a plain file name, without folders (no / or \\) and not starting with a dot"]})
    extension = os.path.splitext(name)[1].lower()
    if extension not in ALLOWED_TYPES:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise InvalidInput("refused file type", {"file": [f"{extension or 'no extension'} is not one of {allowed}"]})
    return name, extension


def store_upload(stream: BinaryIO, name: str | None, folder: Path) -> StoredFile:
    """Check and store an uploaded file; InvalidInput says why one is refused."""
    file_name, extension = check_file_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    temporary = folder / f".upload-{os.getpid()}-{os.urandom(6).hex()}"
    head = b""
    try:
        with temporary.open("wb") as out:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise InvalidInput("file too large", {"file": [
                        f"larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB"]})
                if len(head) < 8192:
                    head += chunk[: 8192 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise InvalidInput("empty file", {"file": ["the file is empty"]})
        sniffed = filetype.guess_mime(head)
        expected = ALLOWED_TYPES[extension]
        if sniffed != expected and not (extension in OFFICE_ZIP and sniffed in (None, "application/zip")):
            raise InvalidInput("file content does not match its name", {"file": [
                f"named {extension} but its content is {sniffed or 'of an unknown type'}"]})
        sha = digest.hexdigest()
        relative = f"{sha[:2]}/{sha}{extension}"
        target = folder / relative
        target.parent.mkdir(exist_ok=True)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return StoredFile(path=relative, file_name=file_name, content_type=expected, size=size,
                      sha256=sha)


def public_url(base_url: str, version_id: int, file_name: str) -> str:
    """Where leads download an uploaded version (served once it is approved, see
    `campaigns.collateral.public_file`): the link its emails carry."""
    return f"{base_url}/files/{version_id}/{quote(file_name)}"
