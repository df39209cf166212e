"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every write goes to a hidden temporary name in the target's own folder (same file system,
so the rename is atomic), is flushed to disk (fsync), and is then renamed over the target
(``os.replace``); on any failure the temporary file is removed and the target is left as
it was.  The temporary name keeps the target's suffix (``.m.tmp-1a2b3c4d.keras``), because
libraries choose the format from it (Keras' ``model.save``, ``cv2.imwrite``, ``savefig``).

A model and its card are written as a pair (``atomic_pair``): both are written first, then
the model is renamed into place and the card last, so a reader never sees a new card
beside an old model.  TensorBoard logs and the checkpoint of a training in progress are
not written through here: they are the library's, and nothing serves them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TMP_MARK = ".tmp-"


def temp_name(path: str | Path) -> Path:
    """A fresh hidden name beside ``path`` with the same suffix (not created)."""
    path = Path(path)
    return path.with_name(f".{path.stem}{TMP_MARK}{secrets.token_hex(4)}{path.suffix}")


def _reserve(path: Path) -> Path:
    """Create an empty temporary file beside ``path`` under a name nobody else holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            return _reserve_exact(temp_name(path), path)
        except FileExistsError:
            continue


def _reserve_exact(tmp: Path, target: Path) -> Path:
    """Create ``tmp`` (never an existing file) with the mode a plain ``open`` of ``target``
    gives: 0o666 less the umask, or ``target``'s own mode where it exists."""
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    with contextlib.suppress(OSError):
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
    return tmp


def _fsync(path: Path) -> None:
    """Flush a written file to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) where the system allows it; the rename is
    atomic either way."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(*paths: Path) -> None:
    for tmp in paths:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to (by any library); on a clean
    exit it is flushed and renamed over ``path``, on an exception removed.  ``durable``
    False skips the flushes (about 1 ms a file): still whole or absent for every reader and
    after a killed process, only not after a power cut (for data made again on demand)."""
    target = Path(path)
    tmp = _reserve(target)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    if durable:
        _fsync_folder(target.parent)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` for writing, made atomic (``atomic_path``)."""
    if "w" not in mode:
        raise ValueError(f"atomic_open writes whole files ('w' modes), not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``Path.write_bytes``, atomic; returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """``Path.write_text``, atomic; returns ``path``."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def _reserve_pair(path: Path, companion: Callable[[Path], Path]) -> tuple[Path, Path]:
    """Temporary files for ``path`` and its companion, named as the companion is named
    after its file, so a loader that looks beside the temporary model finds its card."""
    while True:
        tmp = _reserve(path)
        try:
            return tmp, _reserve_exact(companion(tmp), companion(path))
        except FileExistsError:
            _discard(tmp)


@contextlib.contextmanager
def atomic_pair(path: str | Path,
                companion: Callable[[Path], Path]) -> Iterator[tuple[Path, Path]]:
    """Temporary paths for a file and the companion that describes it (a model and its
    card, ``companion=card_path_for``): on a clean exit both are flushed, then the file is
    renamed into place and the companion LAST, so a reader never sees a new card beside
    an old model; on an exception both are removed and neither target changes."""
    targets = (Path(path), companion(Path(path)))
    tmps = _reserve_pair(targets[0], companion)
    try:
        yield tmps
        for tmp in tmps:
            _fsync(tmp)
        for tmp, target in zip(tmps, targets, strict=True):
            os.replace(tmp, target)
    except BaseException:
        _discard(*tmps)
        raise
    _fsync_folder(targets[0].parent)


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is one of this module's temporary files (left by a killed
    process): image listings skip them, so a half-written image is never counted."""
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name
