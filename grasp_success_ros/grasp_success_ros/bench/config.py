"""What a bench run measures and the targets its numbers are held to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The forward pass costs 32.1 GFLOP (multiply and add counted separately) per 350 px image of
# the InceptionResNetV2 (mixed_7a) classifier.
IRV2_350_GFLOP = 32.1
TARGETS = {"e2v_over_forward": 1.10, "e2v_over_seed_predict": 0.5, "n5_over_n1": 3.0,
           "startup_s": 20.0, "peak_rss_mb": 1536.0}
# Per runtime (issue 13): the node's own overhead (e2v minus the frame wait) within this much
# of the forward pass at p50, its p95 within this factor of its p50; streaming n_after's
# verdict within this many forward passes after the n-th frame's arrival.
OVERHEAD_MS, TAIL_FACTOR, STREAM_FORWARDS = 10.0, 1.5, 1.2
# The node configurations timed, by name: the policy parameters each starts with.
NODE_POLICIES = {
    "first_after": ("frame_selection:=first_after",),
    "n_after": ("frame_selection:=n_after", "streaming:=true"),
    "n_after_batched": ("frame_selection:=n_after", "streaming:=false"),
}


@dataclass
class BenchConfig:
    model: str | None = None
    runtimes: tuple[str, ...] = ("keras",)
    runs: int = 20
    batch: int = 5
    backbone: str = "inception_resnet_v2"
    input_size: int = 350
    events: int = 30
    resolutions: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))
    fps: float = 30.0
    dds: bool = True
    quantize: tuple[str, ...] = ()  # fp16 / int8 variants of each exported runtime
    accuracy_data: str | None = None  # labelled class folders: accuracy of every variant
    calibration: str | None = None  # int8 calibration images (default: synthetic scenes)
    providers: tuple[str, ...] = ()  # ONNX Runtime providers (default: best available)
    openvino_device: str = "CPU"  # where the openvino runtime (and its bf16 variant) runs
    cameras: int = 1  # > 1: also the node's peak RSS with this many cameras vs one
    accept_card_mismatch: bool = False  # bench a --model whose card records another file
    log: Callable[[str], None] = print

    @property
    def random_irv2(self) -> bool:
        """The default model (InceptionResNetV2 at 350 px): its FLOP count is known."""
        return (self.model is None and self.backbone == "inception_resnet_v2"
                and self.input_size == 350)


def quick_config(**kw) -> BenchConfig:
    """A small model, few runs, a short DDS phase: a smoke test of the whole bench."""
    base = dict(backbone="mobilenet_v3_small", input_size=96, runs=5, events=4,
                resolutions=((640, 480),))
    base.update({k: v for k, v in kw.items() if v is not None})
    return BenchConfig(**base)


def resolution_label(size: tuple[int, int]) -> str:
    """(640, 480) -> '640x480', the key of a camera phase in the report."""
    return f"{size[0]}x{size[1]}"
