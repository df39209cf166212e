"""The node's fence around ``model_path``: where a model may be loaded from, and how big.

``model_path`` is a dynamic parameter, so without SROS2 any participant on the DDS domain
can point the node at any file it can read (a multi-GB file, a slow network mount).  The
read-only ``model_dirs`` and ``max_model_mb`` parameters bound that; this is their check,
made before anything is read, on the real path (symlinks resolved), for the model and its
card alike (a link may point either one elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from grasp_success_ros.core.errors import ModelPathRefusedError
from grasp_success_ros.model.card import card_path_for

BYTES_PER_MB = 1_000_000


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def check_model_path(path: str | Path, model_dirs: Sequence[str] = (),
                     max_model_mb: float = 0) -> None:
    """Refuse (ModelPathRefusedError, one line with the reason) a model whose real path, or
    its card's, lies outside ``model_dirs`` (empty: anywhere), or a model file over
    ``max_model_mb`` (0: no limit).  A file that is not there is left to the loader."""
    path = Path(path).expanduser()
    roots = [Path(d).expanduser().resolve() for d in model_dirs]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise ModelPathRefusedError(f"model_dirs lists {', '.join(missing)}, which is not a "
                                    "directory here")
    for what, candidate in (("model", path), ("card", card_path_for(path))):
        real = candidate.resolve()
        if roots and not _inside(real, roots):
            shown = f"{candidate} (really {real})" if real != candidate.absolute() else str(real)
            raise ModelPathRefusedError(
                f"{what} {shown} is outside model_dirs ({', '.join(map(str, roots))}): this "
                "node loads models only from there")
    real = path.resolve()
    if max_model_mb > 0 and real.is_file() and \
            real.stat().st_size > max_model_mb * BYTES_PER_MB:
        raise ModelPathRefusedError(
            f"model {path} is {real.stat().st_size / BYTES_PER_MB:.0f} MB, over max_model_mb "
            f"({max_model_mb:g} MB): not loaded")
