"""The bench's measurements as typed records, and their JSON (``bench --json``).

A measurement that was not taken is ``None`` (a table shows it as "-"). The JSON keeps the
layout readers of earlier reports know: optional measurements that were never taken are left
out, not written as null, and the summary's headline numbers sit at the top level.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.data.atomic import write_text

FP32 = "fp32"


def _optional() -> Any:
    """A measurement that may be missing, left out of the JSON when it is."""
    return field(default=None, metadata={"omit_if_none": True})


# --------------------------------------------------------------------------- JSON codec


def encode(value: Any) -> Any:
    """A record (or a dict / list of them) as JSON-ready values; records with a layout of
    their own (``to_json``) write it."""
    if is_dataclass(value) and not isinstance(value, type):
        custom = getattr(value, "to_json", None)
        return custom() if custom is not None else encode_fields(value)
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def encode_fields(record: Any, skip: tuple[str, ...] = ()) -> dict:
    """A record's fields in order, optional ones left out while missing."""
    out = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name in skip or (value is None and f.metadata.get("omit_if_none")):
            continue
        out[f.name] = encode(value)
    return out


def decode(kind: Any, data: Any) -> Any:
    """``data`` (from JSON) as ``kind``: a record type, ``X | None``, ``dict[K, V]``,
    ``list[X]`` or a plain value."""
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return decode(inner, data)
    if origin is dict:
        key, value = typing.get_args(kind)
        return {key(k): decode(value, v) for k, v in data.items()}
    if origin is list:
        (item,) = typing.get_args(kind)
        return [decode(item, v) for v in data]
    if is_dataclass(kind):
        custom = getattr(kind, "from_json", None)
        return custom(data) if custom is not None else decode_fields(kind, data)
    return float(data) if kind is float else data


def decode_fields(kind: type, data: dict, **given) -> Any:
    """A record from its JSON fields (missing optional ones stay None) plus ``given``."""
    hints = typing.get_type_hints(kind)
    values = {f.name: decode(hints[f.name], data[f.name])
              for f in fields(kind) if f.name in data and f.name not in given}
    return kind(**values, **given)


# --------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class Stats:
    """Percentiles of one timed series in ms; all None when nothing was timed."""

    n: int
    p50: float | None = None
    p95: float | None = None
    mean: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values_ms) -> Stats:
        v = np.asarray(list(values_ms), np.float64)
        if v.size == 0:
            return cls(0)
        return cls(int(v.size), float(np.median(v)), float(np.percentile(v, 95)),
                   float(v.mean()), float(v.max()))


def p50(stats: Stats | None) -> float | None:
    """The median of a series that may not have been measured."""
    return None if stats is None else stats.p50


@dataclass(frozen=True)
class Variant:
    """One model variant benched: a runtime and the precision of its weights (``fp32``, or
    the ``fp16`` / ``int8`` / ``bf16`` variant of the same model)."""

    runtime: str
    precision: str = FP32

    @property
    def quantized(self) -> bool:
        return self.precision != FP32

    @property
    def name(self) -> str:
        """The report's key: ``onnx``, ``onnx-int8``, ``openvino-bf16``..."""
        return f"{self.runtime}-{self.precision}" if self.quantized else self.runtime

    @property
    def fp32(self) -> Variant:
        """The FP32 variant this one is measured against."""
        return Variant(self.runtime)


@dataclass
class ProcessRun:
    """A command run as its own process (an export, ``predict``): wall time and peak RSS."""

    wall_s: float
    peak_rss_mb: float | None
    log: str


@dataclass
class ForwardResult:
    """The bare forward pass of one variant: load time, where it ran, batch timings."""

    load_s: float
    device: str
    batches: dict[int, Stats]

    def batch(self, n: int) -> Stats | None:
        return self.batches.get(n)

    def batches_json(self) -> dict:
        return {f"batch{n}": encode(s) for n, s in self.batches.items()}

    def to_json(self) -> dict:
        return {"load_s": self.load_s, "device": self.device, **self.batches_json()}

    @classmethod
    def from_json(cls, data: dict) -> ForwardResult:
        return cls.from_parts(data, data["load_s"], data["device"])

    @classmethod
    def from_parts(cls, batches: dict, load_s: float, device: str) -> ForwardResult:
        return cls(float(load_s), device, {int(k[len("batch"):]): decode(Stats, v)
                                           for k, v in batches.items()
                                           if k.startswith("batch")})


@dataclass
class BagEvalRun:
    """Offline ``bag-eval`` throughput for one policy."""

    events: int
    frames_judged: int
    wall_s: float
    events_per_s: float
    frames_per_s: float


@dataclass
class AccuracyRow:
    """A variant's accuracy on the labelled folders, and its cost against Keras."""

    accuracy: float
    images: int
    accuracy_change_points: float | None = _optional()
    max_abs_dp_vs_keras: float | None = _optional()


@dataclass
class SeedPredict:
    """The seed's ``model.predict`` way, with and without loading the image."""

    with_image_load: Stats
    predict_only: Stats


@dataclass(kw_only=True)
class CameraPhase:
    """One resolution of one node configuration: the camera streaming, events one at a time."""

    events: int
    verdicts: int
    errors: list[str]
    e2v_ms: Stats
    wait_first_frame_ms: Stats
    wait_last_frame_ms: Stats
    e2v_minus_first_wait_ms: Stats
    e2v_minus_last_wait_ms: Stats
    forward_quiet_ms: Stats | None = _optional()  # first_after only: the yardsticks
    forward_beside_camera_ms: Stats | None = _optional()
    node_stage_ms_p50: dict[str, float] = field(default_factory=dict)
    camera_fps: float | None = None
    other_cpu_share: float | None = None

    def e2v_minus_wait(self, policy: str) -> Stats:
        """The node's own share: less the first frame's wait (first_after), else the last's."""
        return (self.e2v_minus_first_wait_ms if policy == "first_after"
                else self.e2v_minus_last_wait_ms)


@dataclass(kw_only=True)
class NodeRun:
    """One node process in one configuration: start-up, its camera phases, peak RSS. In the
    JSON the phases sit beside the other keys, by resolution (``"640x480"``)."""

    policy: str
    log: str
    startup_s: float | None = None  # process start to lifecycle state active
    error: str | None = _optional()
    subscribed_s: float | None = _optional()
    phases: dict[str, CameraPhase] = field(default_factory=dict)
    peak_rss_mb: float | None = _optional()

    def to_json(self) -> dict:
        out = encode_fields(self, skip=("phases", "peak_rss_mb"))
        out.update(encode(self.phases))
        if self.peak_rss_mb is not None:
            out["peak_rss_mb"] = self.peak_rss_mb
        return out

    @classmethod
    def from_json(cls, data: dict) -> NodeRun:
        names = {f.name for f in fields(cls)}
        phases = {k: decode(CameraPhase, v) for k, v in data.items() if k not in names}
        return decode_fields(cls, data, phases=phases)


@dataclass
class CameraRun:
    """The node with ``cameras`` cameras, every camera getting the events at once."""

    cameras: int
    events: int | None = _optional()
    answered: int | None = _optional()
    peak_rss_mb: float | None = _optional()
    error: str | None = _optional()


@dataclass
class CamerasRun:
    """Peak RSS with N cameras against one (``--cameras N``)."""

    cameras: int
    one: CameraRun
    many: CameraRun
    rss_ratio: float | None


@dataclass
class Machine:
    cpu: str
    cores: int
    avx512f: bool
    load_avg: list[float]
    python: str


@dataclass
class ConfigRecord:
    """The settings of the run, as the report states them."""

    model: str
    runtimes: list[str]
    providers: list[str]
    openvino_device: str
    runs: int
    batch: int
    events_per_config: int
    fps: float
    cameras: int
    resolutions: list[str]


@dataclass
class NodeRatios:
    """The node ratios of one variant against its own forward pass."""

    e2v_over_forward: float | None
    e2v_over_seed_predict: float | None
    n5_over_n1: float | None


@dataclass(kw_only=True)
class NodeTargets:
    """Issue 13's targets for one variant, from one run (``summary.node_targets``)."""

    forward_ms_p50: float | None
    forward_quiet_ms_p50: float | None
    forward_beside_camera_ms_p50: float | None
    node_forward_ms_p50: float | None
    overhead_e2v_minus_wait_ms_p50: float | None
    overhead_e2v_minus_wait_ms_p95: float | None
    overhead_ok: bool | None
    overhead_ok_quiet: bool | None
    tail_ok: bool | None
    n_after_streaming_e2v_ms_p50: float | None
    n_after_batched_e2v_ms_p50: float | None
    nth_frame_arrival_ms_p50: float | None
    streaming_bound_ms: float | None
    streaming_ok: bool | None


@dataclass(kw_only=True)
class Summary:
    """The headline numbers of the first runtime and the ratios against the targets."""

    runtime: str
    ratios_by_runtime: dict[str, NodeRatios]
    node_targets: dict[str, NodeTargets]
    forward_ms_p50: float | None
    forward_ms_p95: float | None
    seed_predict_ms_p50: float | None
    event_to_verdict_ms_p50: float | None
    event_to_verdict_ms_p95: float | None
    event_to_verdict_minus_wait_ms_p50: float | None
    wait_first_frame_ms_p50: float | None
    five_frame_event_to_verdict_ms_p50: float | None
    startup_s: float | None
    bag_eval_frames_per_s: float | None
    peak_rss_mb: float | None
    best_fp32_runtime: str
    best_fp32_gflops: float | None
    best_fp32_at_peak_of_ghz: float | None
    peak_flop_per_cycle: int
    ratios: dict[str, float | None]
    targets: dict[str, float]


@dataclass(kw_only=True)
class BenchReport:
    """A whole run. In the JSON ``forward`` is split into ``forward_ms``, ``load_s`` and
    ``device`` (each by variant) and the summary's keys sit at the top level."""

    machine: Machine
    config: ConfigRecord
    variants: dict[str, Variant] = field(default_factory=dict)
    export: dict[str, ProcessRun] = field(default_factory=dict)
    forward: dict[str, ForwardResult] = field(default_factory=dict)
    bag_eval: dict[str, BagEvalRun] = field(default_factory=dict)
    accuracy: dict[str, AccuracyRow] | None = _optional()
    seed_predict_ms: SeedPredict | None = _optional()
    predict_process: ProcessRun | None = _optional()
    node: dict[str, dict[str, NodeRun]] | None = _optional()
    cameras: CamerasRun | None = _optional()
    wall_s: float | None = None
    summary: Summary | None = None

    def phase(self, variant: str, policy: str, resolution: str) -> CameraPhase | None:
        """One camera phase of the node runs, None where it was not measured."""
        run = (self.node or {}).get(variant, {}).get(policy)
        return None if run is None else run.phases.get(resolution)

    def to_json(self) -> dict:
        out = {"machine": encode(self.machine), "config": encode(self.config),
               "variants": encode(self.variants), "export": encode(self.export),
               "forward_ms": {v: f.batches_json() for v, f in self.forward.items()},
               "load_s": {v: f.load_s for v, f in self.forward.items()},
               "device": {v: f.device for v, f in self.forward.items()}}
        out.update(encode_fields(self, skip=("machine", "config", "variants", "export",
                                             "forward", "summary")))
        if self.summary is not None:
            out.update(encode(self.summary))
        return out

    @classmethod
    def from_json(cls, data: dict) -> BenchReport:
        forward = {v: ForwardResult.from_parts(b, data["load_s"][v], data["device"][v])
                   for v, b in data["forward_ms"].items()}
        summary_keys = {f.name for f in fields(Summary)}
        summary = (decode_fields(Summary, data) if summary_keys <= data.keys() else None)
        own = {k: v for k, v in data.items() if k not in summary_keys}
        return decode_fields(cls, own, forward=forward, summary=summary)


def write_json(report: BenchReport, path: str | Path) -> None:
    write_text(path, json.dumps(encode(report), indent=2) + "\n")


def read_json(path: str | Path) -> BenchReport:
    return decode(BenchReport, json.loads(Path(path).read_text()))
