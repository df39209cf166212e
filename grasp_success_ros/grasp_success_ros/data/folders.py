"""Labelled image folders as the seed used them: one sub-folder per class."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grasp_success_ros.core.errors import DatasetError, ImageConversionError
from grasp_success_ros.data.atomic import is_temporary
from grasp_success_ros.data.preprocessing import Preprocessing, load_image_rgb, resize_frame

SUCCESS_NAMES = ("succ", "success", "successful", "grasped", "pos", "positive")
FAILURE_NAMES = ("zon_desk", "fail", "failure", "unsuccessful", "notgrasped", "neg", "negative")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ClassFolders:
    """Which sub-folder holds successes and which failures (None: the set has no folder of
    that class, which only ``class_folders(..., one_class=True)`` allows)."""

    success: str | None
    failure: str | None


def class_counts(labels: np.ndarray, skipped: list[str]) -> dict[str, int]:
    """Images per class (labels 1 = success) and files skipped: what training logs and
    writes into the card."""
    return {"success": int(labels.sum()), "failure": int((labels == 0).sum()),
            "skipped": len(skipped)}


def class_folders(root: str | Path, success_class: str | None = None,
                  one_class: bool = False) -> ClassFolders:
    """Recognise the success and failure folders, or refuse with the reason. With
    ``one_class`` a folder of one class alone is accepted (a test set of known-good grasps:
    recall and errors are still worth knowing); its name must say which class it is."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"folder not found: {root}")
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name[0] not in "._")
    if one_class and len(subdirs) == 1:
        return _one_class_folder(root, subdirs[0], success_class)
    if len(subdirs) != 2:
        wanted = "one or two class folders" if one_class else "exactly two class folders"
        raise DatasetError(f"{root} must hold {wanted}, found {subdirs}")
    if success_class is not None:
        if success_class not in subdirs:
            raise DatasetError(f"--success-class {success_class!r} is not one of {subdirs}")
        return ClassFolders(success_class, next(d for d in subdirs if d != success_class))
    succ = [d for d in subdirs if d.lower() in SUCCESS_NAMES]
    fail = [d for d in subdirs if d.lower() in FAILURE_NAMES]
    if len(succ) != 1 or len(fail) != 1:
        raise DatasetError(
            f"cannot tell which of {subdirs} in {root} is the success class; name them e.g. "
            "success/failure or pass --success-class NAME")
    return ClassFolders(succ[0], fail[0])


def _one_class_folder(root: Path, name: str, success_class: str | None) -> ClassFolders:
    """The class of a lone folder: --success-class names it, or its name says which."""
    if name == success_class or (success_class is None and name.lower() in SUCCESS_NAMES):
        return ClassFolders(name, None)
    if name.lower() in FAILURE_NAMES:
        return ClassFolders(None, name)
    hint = f"--success-class {success_class!r} is not it" if success_class else \
        f"name it e.g. success or failure, or pass --success-class {name} if it holds successes"
    raise DatasetError(f"{root} holds one class folder, {name!r}, and it is not clear which "
                       f"class it is; {hint}")


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in a stable order; never the temporary
    file of a write that was cut off (``atomic.is_temporary``)."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not is_temporary(p))


def skip_entry(path: str | Path, reason: str) -> str:
    """How a skipped file is listed (logs, cards, reports): the file and why."""
    return f"{path} ({reason})"


@dataclass
class ImageList:
    """The files of both classes (labels 1 = success) and the zero-byte files left out."""

    paths: list[Path]
    labels: np.ndarray
    classes: ClassFolders
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return class_counts(self.labels, self.skipped)


def list_folders(root: str | Path, classes: ClassFolders | None = None,
                 allow_empty: bool = False) -> ImageList:
    """The image files of both class folders; zero-byte files are skipped and counted.
    ``allow_empty`` lets a class hold no images (an extra training folder, such as a review
    folder holding only false failures)."""
    root = Path(root)
    classes = classes or class_folders(root)
    paths, labels, skipped = [], [], []
    for name, label in ((classes.success, 1), (classes.failure, 0)):
        if name is None:  # a one-class set (``class_folders(..., one_class=True)``)
            continue
        folder = root / name
        if not folder.is_dir():
            raise DatasetError(f"class folder not found: {folder}")
        files = image_files(folder)
        if not files and not allow_empty:
            raise DatasetError(f"class folder {folder} holds no images")
        kept = [f for f in files if f.stat().st_size > 0]
        skipped += [skip_entry(f, "empty file") for f in files if f.stat().st_size == 0]
        if files and not kept and not allow_empty:
            raise DatasetError(f"no readable images in {folder} (all {len(files)} are empty)")
        paths += kept
        labels += [label] * len(kept)
    return ImageList(paths, np.asarray(labels, np.float32), classes, skipped)


def merge_lists(lists: list[ImageList]) -> ImageList:
    """Several folders' images as one training set, with the first folder's class names."""
    return ImageList([p for lst in lists for p in lst.paths],
                     np.concatenate([lst.labels for lst in lists]).astype(np.float32),
                     lists[0].classes, [s for lst in lists for s in lst.skipped])


def read_or_reason(path: str | Path, size: int, pre: Preprocessing) -> np.ndarray | str:
    """One file decoded and resized as the classifier resizes frames, or why it cannot be
    (a row or a counted skip for the caller, never an exception that ends its run)."""
    try:
        return resize_frame(load_image_rgb(path), size, pre)
    except ImageConversionError as exc:
        return str(exc)


def read_resized(path: str | Path, size: int, pre: Preprocessing) -> np.ndarray | None:
    """One file decoded and resized as the classifier resizes frames; None if unreadable."""
    image = read_or_reason(path, size, pre)
    return None if isinstance(image, str) else image


def decode_parallel(paths: list[Path], size: int, pre: Preprocessing,
                    workers: int | None = None) -> list[np.ndarray | str]:
    """Decode and resize files on several threads (OpenCV releases the GIL); each item is
    the image or, as ``read_or_reason`` gives it, why the file cannot be read."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: read_or_reason(p, size, pre), paths))
