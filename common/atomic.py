"""Write files so that a reader never sees a half-written one: temp file in the same folder,
fsync, then rename over the target (os.replace is atomic on POSIX and Windows). The file gets the
permissions a plain open() would give it (the umask's for a new file, the old file's when replacing
one), not mkstemp's private 0600, so that colleagues sharing a runs/ folder can read the results.
A write that a full disk stops raises `common.errors.DiskFull`, naming the file, what is intact and
the fix, instead of the writing library's own error (torch.save: "PytorchStreamWriter failed").
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from common.errors import DiskFull, disk_full, is_disk_full


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: once, at import, not between threads
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_umask()  # what open(path, "w") gives a new file


def _target_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)  # replacing a file keeps its permissions
    except FileNotFoundError:
        return NEW_FILE_MODE


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _target_mode(path))
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, Exception) and not isinstance(exc, DiskFull) and is_disk_full(exc, path.parent):
            what_stays = (f"{path.name} is as it was before" if path.exists() else f"{path.name} was not made")
            raise disk_full(path, what_stays) from exc
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
