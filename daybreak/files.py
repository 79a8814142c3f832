"""Writing files so that nothing good is ever lost: atomic replacement and keep-newest-N rotation.

A file is written under a hidden temporary name beside its target, flushed to disk and renamed
onto it (`atomic_path`), so a reader or a crash only ever sees the old file or the new one.
Snapshots (budget downloads, warehouse and extract backups) are named `<stem>__<UTC stamp><suffix>`
so that name order is time order, and `keep_newest` drops all but the newest N.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daybreak import clock

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A hidden temporary path beside `dest`; on success it is flushed and renamed onto `dest`.

    On an exception (or a kill) `dest` keeps its previous content and the temporary file is
    removed (or, after a kill, by the next `clean_stale_tmp`).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        yield tmp
        publish(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish(written: Path, dest: Path) -> None:
    """Flush a finished file to disk and rename it onto `dest` (on the same filesystem)."""
    with written.open("r+b") as fh:
        os.fsync(fh.fileno())
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(written, dest)


def write_atomic(dest: Path, data: bytes | str) -> None:
    """Replace `dest` with `data` atomically (text is written as UTF-8)."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def read_json(path: Path, default: Any) -> Any:
    """The JSON in `path`, or `default` when it is missing or does not read (a record daybreak
    can do without: it is written again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def clean_stale_tmp(folder: Path) -> int:
    """Remove temporary files a killed writer left under `folder`; return how many."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.rglob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def snapshot_path(folder: Path, stem: str, suffix: str) -> Path:
    """A new snapshot's name in `folder`: `<stem>__<UTC stamp with microseconds><suffix>`."""
    return folder / f"{stem}__{clock.stamp(fine=True)}{suffix}"


def snapshots(folder: Path, stem: str, suffix: str) -> list[Path]:
    """The snapshots of `stem` in `folder`, oldest first."""
    return sorted(folder.glob(f"{stem}__*{suffix}")) if folder.is_dir() else []


def keep_newest(folder: Path, stem: str, suffix: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshots of `stem`; return the ones kept, oldest first.

    A snapshot that cannot be deleted (Windows: open in another program) is left for next time.
    """
    found = snapshots(folder, stem, suffix)
    for old in found[:-keep] if keep > 0 else found:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            old.unlink()
    return snapshots(folder, stem, suffix)


def same_content(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes."""
    return a.stat().st_size == b.stat().st_size and _sha256(a) == _sha256(b)


def keep_version(fetched: Path, folder: Path, name: str, keep: int) -> Path:
    """Keep a fetched file as the newest snapshot of `name` (`<stem>__<stamp><suffix>` in
    `folder`) unless it is identical to the newest one; rotate to `keep`. Returns the snapshot."""
    stem, suffix = Path(name).stem, Path(name).suffix
    found = snapshots(folder, stem, suffix)
    if found and same_content(found[-1], fetched):
        fetched.unlink()
        return found[-1]
    target = snapshot_path(folder, stem, suffix)
    os.replace(fetched, target)
    keep_newest(folder, stem, suffix, keep)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
