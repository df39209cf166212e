"""Binding a model card to the files it describes: their SHA-256 and size.

A card gives a model its meaning (output direction, calibration, thresholds), but a card
beside the wrong file (a retrained model copied over the old one, a seed ``.h5`` beside
another model's card) would serve wrong verdicts without a word.  Every writer records each
file it describes in the card's ``files``; every loader checks the file against it before
loading it (the size first: a different size costs no hashing).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from grasp_success_ros.core.errors import ModelCardMismatchError
from grasp_success_ros.model.card import ModelCard

CHUNK_BYTES = 1 << 20  # hashed a MiB at a time: a multi-GB model is never read whole
ACCEPT_OPTION = "accept_card_mismatch / --accept-card-mismatch"

# Card paths already warned about in this process: a node reloading the same digest-less
# card on every swap (or bag-eval loading it per worker thread) says so once, not each time.
_unrecorded_warned: set[str] = set()
_warned_lock = threading.Lock()


def file_digest(path: str | Path) -> dict[str, Any]:
    """``{"sha256": hex, "size": bytes}`` of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": Path(path).stat().st_size}


def recorded(card: ModelCard, paths: Iterable[str | Path], keep: bool = True,
             written_at: Mapping[str, Path] | None = None) -> ModelCard:
    """``card`` describing each of ``paths`` (named as seen from the card, which sits beside
    them); ``keep``: entries of other files stay (a card shared by ``m.keras`` and
    ``m.onnx``), else they go (the card now belongs to these files alone). ``written_at``:
    by file name, where a file still is under its temporary name (an atomic write, renamed
    into place after its card is written)."""
    files = dict(card.files) if keep else {}
    for path in paths:
        name = Path(path).name
        files[name] = file_digest((written_at or {}).get(name, path))
    return card.replace(files=files)


def mismatch(card: ModelCard, path: Path) -> str | None:
    """Why ``path`` is not a file ``card`` describes, or None when it is.  A file under a
    name the card does not record still matches by content (model and card copied together
    under a new name)."""
    size = path.stat().st_size
    entry = card.files.get(path.name)
    if entry is None:
        same_size = [e for e in card.files.values() if e["size"] == size]
        if same_size and file_digest(path)["sha256"] in {e["sha256"] for e in same_size}:
            return None
        return f"the card describes {', '.join(sorted(card.files))}, not this file"
    if entry["size"] != size:
        return f"it has {size} bytes, the card records {entry['size']}"
    sha = file_digest(path)["sha256"]
    if sha != entry["sha256"]:
        return f"its SHA-256 is {sha[:16]}..., the card records {entry['sha256'][:16]}..."
    return None


def matches(card: ModelCard, path: str | Path) -> bool:
    """Whether ``card`` records ``path`` as it is now."""
    return bool(card.files) and mismatch(card, Path(path)) is None


def check_card(card: ModelCard, card_path: Path, paths: Iterable[Path],
               accept_mismatch: bool = False) -> list[str]:
    """Check the model files ``paths`` against their card: raises ModelCardMismatchError
    (one line naming both files and the fixes) for a file the card does not describe,
    unless ``accept_mismatch``; returns the loader's notes (an accepted mismatch; a card
    without digests, once per process per card)."""
    if not card.files:
        return _unrecorded_note(card_path)
    notes = []
    for path in paths:
        why = mismatch(card, path)
        if why is None:
            continue
        line = (f"{path} does not belong to the card {card_path}: {why}. Put the card written "
                f"with this model beside it, or re-export it (or re-calibrate it, which binds "
                f"the card to it)")
        if not accept_mismatch:
            raise ModelCardMismatchError(f"{line}; to use it as it is: {ACCEPT_OPTION}")
        notes.append(f"{line}. Accepted ({ACCEPT_OPTION}): the card's output meaning, "
                     "calibration and thresholds may not fit this model")
    return notes


def _unrecorded_note(card_path: Path) -> list[str]:
    key = str(card_path.resolve())
    with _warned_lock:
        if key in _unrecorded_warned:
            return []
        _unrecorded_warned.add(key)
    return [f"the card {card_path} records no digest of its model (an older or hand-written "
            "card): nothing checks that it belongs to this file; re-calibrate or re-export "
            "the model to record one"]
