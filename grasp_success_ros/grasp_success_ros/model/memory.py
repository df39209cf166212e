"""How much memory an export needs, estimated from the model's parameter count, and the
refusal when the machine cannot hold it (instead of meeting the kernel's OOM killer)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from grasp_success_ros.core.errors import GraspSuccessError

# Peak resident memory of an export, in bytes: a fixed part (TensorFlow, the converter)
# plus a multiple of the float32 weights' size.  The factors are the measured peaks of the
# full-size seed model (InceptionResNetV2 cut at mixed_7a, 350 px, Flatten head, 203M
# parameters, 0.76 GiB of weights; BENCHMARKS.md, "Memory"), with room for models whose
# weights are mostly convolutions (which go through tf2onnx): ONNX 4.3 GiB, fp16 4.6, int8
# 4.4; TFLite (its steps in child processes, counted together) 5.5, fp16 4.1, int8 7.3
# (calibrating and quantizing in separate processes, 7.1 and 6.7; 9.7 in one; the seed at
# 160 px, 0.19 GiB of mostly convolution weights: 2.6, which 9.5 covers with 0.2 to spare).
FIXED_BYTES = 1.0 * 2**30
WEIGHT_FACTOR = {("onnx", None): 6.0, ("onnx", "fp16"): 7.0, ("onnx", "int8"): 7.0,
                 ("tflite", None): 6.5, ("tflite", "fp16"): 6.5, ("tflite", "int8"): 9.5,
                 ("keras", "bf16"): 4.0}  # two models' weights, the save's copy: estimated


class ExportMemoryError(GraspSuccessError):
    """The machine has too little memory free for an export."""


def parameter_count(path: str | Path) -> int:
    """The number of weights stored in a ``.h5`` / ``.keras`` file, read without loading the
    model (for a ``.keras`` file, from the size of its weights member: 4 bytes each)."""
    import h5py

    path = Path(path)
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as zf:
            return sum(i.file_size for i in zf.infolist() if i.filename.endswith(".h5")) // 4
    total = 0

    def visit(_name, item):
        nonlocal total
        if isinstance(item, h5py.Dataset):
            total += item.size

    with h5py.File(path, "r") as f:
        (f["model_weights"] if "model_weights" in f else f).visititems(visit)
    return total


def available_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def export_needs_bytes(parameters: int, fmt: str, quantize: str | None) -> int:
    return int(FIXED_BYTES + WEIGHT_FACTOR[(fmt, quantize)] * 4 * parameters)


def check_export_memory(path: str | Path, fmt: str, quantize: str | None,
                        available: int | None = None) -> None:
    """Raise ExportMemoryError, in one line, when the export of ``path`` needs more memory
    than is free; a file that cannot be read is left to the loader to report."""
    try:
        parameters = parameter_count(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return
    available = available_bytes() if available is None else available
    needs = export_needs_bytes(parameters, fmt, quantize)
    if available is None or needs <= available:
        return
    gib = 2**30
    raise ExportMemoryError(
        f"exporting {Path(path).name} ({parameters / 1e6:.0f}M parameters) to {fmt}"
        f"{f' ({quantize})' if quantize else ''} needs about {needs / gib:.1f} GB of memory "
        f"and {available / gib:.1f} GB is free: close other programs, or export on a "
        "machine with more memory and copy the exported file here")
