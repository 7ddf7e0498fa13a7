"""Replace a file so that a reader, or the next start after a crash, sees the old content or the new, never a mix.

A plain `write_text` truncates first and writes after: a kill in between leaves a 0-byte
or half-written file, and every later run that reads it fails (a torn `resource.json`
once broke `status`, `up` and every restart of a whole stack). Here the new content goes
to a temporary file in the same folder (a rename is atomic only within one file system),
is flushed and fsynced, renamed over the target, and the folder is fsynced so that the
rename itself survives a power cut.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one step.

    A file that is already there keeps its permissions and, where we may set them, its
    owner: the rename puts a new inode in its place, and a config that nginx or
    PostgreSQL reads as another user must stay readable to it.
    """
    payload = data.encode() if isinstance(data, str) else data
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # 0o666 minus the umask, as `open(..., "w")` would give a new file; O_EXCL: never reuse a stray.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            _keep_mode_and_owner(path, handle.fileno())
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _keep_mode_and_owner(path: Path, fd: int) -> None:
    try:
        current = path.stat()
    except FileNotFoundError:
        return
    os.fchmod(fd, current.st_mode & 0o7777)
    if (current.st_uid, current.st_gid) != (os.geteuid(), os.getegid()):
        os.fchown(fd, current.st_uid, current.st_gid)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
