"""Hand cards on disk (``core/hand_card.py``): JSON, written atomically beside the models, read
by the node's ``hand_model`` parameter and the CLI's ``--hand-model``."""

from __future__ import annotations

import json
from pathlib import Path

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.hand_card import HandCard
from grasp_success_ros.data.atomic import write_text


def load_hand_card(path: str | Path) -> HandCard:
    """The card at ``path``; ConfigError in one line when it cannot serve."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read hand card {path}: {exc}") from None
    return HandCard.from_dict(data, str(path))


def save_hand_card(card: HandCard, path: str | Path) -> Path:
    """Write ``card`` to ``path`` (temporary file + rename: a reader never sees half)."""
    return write_text(path, json.dumps(card.to_dict(), indent=2, allow_nan=False) + "\n")
