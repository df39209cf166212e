"""How extracted frames are named, one home: ``<bag>_<stamp in microseconds>.<format>``.

``extract`` and the review loop write the names (``bags/``); ``evaluate --hand-features``
reads a frame's bag and stamp back from them to find its event (``evaluation/``), so the
format lives in a room both may import.
"""

from __future__ import annotations

from pathlib import Path

US_PER_S = 1e6  # microseconds: a frame's stamp in its name


def frame_name(bag_name: str, stamp: float, image_format: str = "png") -> str:
    """The file name of the frame stamped ``stamp`` (seconds) in bag ``bag_name``."""
    return f"{bag_name}_{stamp_us(stamp)}.{image_format}"


def stamp_us(stamp: float) -> int:
    """Seconds as the whole microseconds a frame name holds (events compare in these)."""
    return int(round(stamp * US_PER_S))


def parse_frame_name(name: str | Path) -> tuple[str, int] | None:
    """(bag name, stamp in microseconds) of an extracted frame's file name (a bag name may
    hold underscores: the stamp is after the last); None for a name not in that format."""
    bag, sep, stamp = Path(name).stem.rpartition("_")
    if not sep or not bag or not stamp.isdigit():
        return None
    return bag, int(stamp)
