"""``grasp-success bench``: how fast the classifier and the live node are, measured side by side.

Everything is measured in one run on one machine, so the ratios (node latency over bare
forward pass, over the seed's ``model.predict``, 5 frames over 1 frame) mean something even
on a busy machine where the absolute numbers are noisy:

1. bare forward latency (batch 1 and batch N) for each runtime (Keras ``tf.function``,
   ONNX Runtime, LiteRT, OpenVINO on the ONNX file);
2. the seed's way: load / resize / RGB / 255, ``np.expand_dims``, ``model.predict``;
3. event-to-verdict latency through the live node over DDS (its own process), camera at
   30 Hz, single-frame (``first_after``) and 5-frame (``n_after``) policies;
4. time from process start to ``ready``;
5. the node's peak resident memory (``VmHWM``), and that of ``predict`` and of each export,
   each run as its own process, with the model's load time;
6. offline ``bag-eval`` throughput on a synthetic 640x480 session.

Beside each node configuration the bench records how much CPU other processes took while it
ran: on a shared machine that, not the node, is what moves event-to-verdict between runs.

With ``--quantize`` the fp16 / int8 exports (and the bf16 Keras and OpenVINO variants) are
measured beside FP32 (forward, node), and with
``--accuracy-data`` every variant's accuracy on the same labelled images (the quantization
cost). The best FP32 speed is stated in GFLOP/s and as the clock at which it is the peak.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grasp_success_ros.data.atomic import write_text

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


def quick_config(**kw) -> BenchConfig:
    """A small model, few runs, a short DDS phase: a smoke test of the whole bench."""
    base = dict(backbone="mobilenet_v3_small", input_size=96, runs=5, events=4,
                resolutions=((640, 480),))
    base.update({k: v for k, v in kw.items() if v is not None})
    return BenchConfig(**base)


def stats(values_ms) -> dict:
    v = np.asarray(list(values_ms), np.float64)
    if v.size == 0:
        return {"n": 0, "p50": None, "p95": None, "mean": None, "max": None}
    return {"n": int(v.size), "p50": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "mean": float(v.mean()), "max": float(v.max())}


def _once_ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _time_ms(fn, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    return [_once_ms(fn) for _ in range(runs)]


def machine_info() -> dict:
    model = platform.processor() or ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    cores = os.cpu_count() or 1
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        flags = ""
    return {"cpu": model, "cores": cores, "avx512f": " avx512f" in flags,
            "load_avg": list(os.getloadavg()), "python": platform.python_version()}


def fp32_flop_per_cycle(avx512: bool) -> int:
    """Per core: two FMA pipes x 16 (AVX-512) or 8 (AVX2) float32 lanes x 2 FLOP."""
    return 2 * (16 if avx512 else 8) * 2


# --------------------------------------------------------------------------- the model


def prepare_models(cfg: BenchConfig, workdir: Path,
                   exports: dict | None = None) -> dict[str, Path]:
    """The model file for each runtime (a fresh random-weight model without --model); each
    export runs as its own process, its wall time and peak RSS go into ``exports``."""
    from grasp_success_ros.model.export import QUANTIZATIONS_OF
    from grasp_success_ros.model.runtimes import runtime_for

    exports = {} if exports is None else exports
    if cfg.model:
        path = _checked_model(Path(cfg.model).expanduser(), cfg, workdir)
        kind = runtime_for(path)
        if kind == "onnx" and "openvino" in cfg.runtimes:  # the file as it is, its card's
            return {"onnx": path, **_openvino_variants(path, cfg)}  # parity record for bf16
        if kind != "keras":
            return {kind: path}
    else:
        from grasp_success_ros.model.builder import build_model
        from grasp_success_ros.model.loading import save_model

        t = time.perf_counter()
        model, card = build_model(cfg.backbone, cfg.input_size, head="gap", weights=None)
        path = workdir / f"bench_{cfg.backbone}_{cfg.input_size}.keras"
        save_model(model, path, card)
        cfg.log(f"built {cfg.backbone} at {cfg.input_size} px (GAP head, random weights) in "
                f"{time.perf_counter() - t:.1f} s: {path}")
        del model
    paths = {"keras": path}
    formats = [f for f in cfg.runtimes if f != "openvino"]
    if "openvino" in cfg.runtimes and "onnx" not in formats:
        formats.append("onnx")  # OpenVINO runs the ONNX export
    for fmt in formats:
        if fmt != "keras":
            paths[fmt] = workdir / f"{path.stem}.{fmt}"
            exports[fmt] = _export_process(path, fmt, None, paths[fmt], cfg, workdir)
        for q in (q for q in cfg.quantize if q in QUANTIZATIONS_OF[fmt] and fmt in cfg.runtimes):
            paths[f"{fmt}-{q}"] = workdir / f"{path.stem}.{q}.{fmt}"
            exports[f"{fmt}-{q}"] = _export_process(path, fmt, q, paths[f"{fmt}-{q}"], cfg,
                                                    workdir)
    if "openvino" in cfg.runtimes:
        paths.update(_openvino_variants(paths["onnx"], cfg))
        exports.update({v: exports["onnx"] for v in _openvino_variants(paths["onnx"], cfg)})
        if "onnx" not in cfg.runtimes:
            del paths["onnx"]
    return paths


def _checked_model(path: Path, cfg: BenchConfig, workdir: Path) -> Path:
    """``--model`` with its card checked before minutes of benchmarking; a mismatch the
    user accepted is benched from a copy in ``workdir`` whose card records it, so every later
    load (exports, the node, predict in its own process) serves the same file."""
    import shutil

    from grasp_success_ros.model.card import ModelCard, card_path_for
    from grasp_success_ros.model.digest import check_card, matches, recorded

    card_path = card_path_for(path)
    if not path.is_file() or not card_path.is_file():
        return path  # the loaders say what is missing
    card = ModelCard.load(card_path)
    for note in check_card(card, card_path, [path], cfg.accept_card_mismatch):
        cfg.log(f"note: {note}")
    if not card.files or matches(card, path):
        return path
    copy = workdir / path.name
    shutil.copy(path, copy)
    recorded(card, [copy], keep=False).save(card_path_for(copy))
    cfg.log(f"benching a copy of {path} with its card bound to it: {copy}")
    return copy


def _openvino_variants(onnx: Path, cfg: BenchConfig) -> dict[str, Path]:
    """``openvino`` (FP32) and, with ``--quantize bf16``, ``openvino-bf16``: the ONNX file
    run by OpenVINO (``runtime_choice``)."""
    return {"openvino": onnx, **({"openvino-bf16": onnx} if "bf16" in cfg.quantize else {})}


def runtime_choice(name: str, device: str = "CPU"):
    """The OnnxRuntimeChoice of a bench variant: OpenVINO for ``openvino`` / ``openvino-bf16``
    (on ``device``), else None (ONNX Runtime for .onnx files)."""
    from grasp_success_ros.core.params import OnnxRuntimeChoice

    if not name.startswith("openvino"):
        return None
    return OnnxRuntimeChoice("openvino", device, "bf16" if name.endswith("-bf16") else "fp32")


def _classifier(path: Path, name: str, providers: tuple[str, ...] = (), device: str = "CPU"):
    """The classifier of one bench variant, on ONNX Runtime's ``providers`` or OpenVINO."""
    from grasp_success_ros.model.classifier import GraspClassifier

    return GraspClassifier.from_path(path, providers=_for_onnx(path, providers),
                                     onnx_runtime=runtime_choice(name, device))[0]


def _export_process(path: Path, fmt: str, quantize: str | None, out: Path, cfg: BenchConfig,
                    workdir: Path) -> dict:
    """``grasp-success export`` as its own process (its peak is the export's alone); int8
    calibrates on --calibration, else on synthetic scenes (never on the accuracy set, so the
    accuracy cost is measured on images it has not seen)."""
    cmd = [sys.executable, "-m", "grasp_success_ros", "export", str(path), "--format", fmt,
           "--out", str(out)]
    if quantize:
        calibration = _calibration_dir(cfg, workdir)
        cmd += ["--quantize", quantize, "--calibration", str(calibration),
                "--samples", str(calibration)]
    elif fmt == "onnx" and "openvino" in cfg.runtimes and "bf16" in cfg.quantize:
        cmd += ["--check-openvino", "bf16", "--samples", str(_calibration_dir(cfg, workdir))]
    name = fmt + (f"-{quantize}" if quantize else "")
    row = run_measured(cmd, workdir / f"export_{name}.log")
    cfg.log(f"exported to {name} in {row['wall_s']:.1f} s, peak RSS "
            f"{_fmt(row['peak_rss_mb'], 0)} MB")
    return row


def _calibration_dir(cfg: BenchConfig, workdir: Path) -> Path:
    """--calibration, else 64 synthetic scenes (int8 calibration, bf16 parity samples)."""
    if cfg.calibration is not None:
        return Path(cfg.calibration)
    from grasp_success_ros.data.synth import write_dataset

    calibration = workdir / "calibration"
    if not calibration.is_dir():
        write_dataset(calibration, 64, seed=5)
    return calibration


def run_measured(cmd: list[str], log_path: Path, poll_s: float = 0.05) -> dict:
    """Run ``cmd`` as its own process: wall time and its peak RSS, that of the process and
    its children together (``export --format tflite`` converts in child processes): the
    sum of their ``VmRSS`` polled, or the process' own ``VmHWM`` when higher (not
    ``ru_maxrss``, which after a vfork/exec also holds the parent's peak)."""
    from grasp_success_ros.core.errors import GraspSuccessError

    t = time.perf_counter()
    peak = None
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            tree = sum(_vm_mb(p, "VmRSS") or 0.0 for p in _process_tree(proc.pid))
            peak = max(v for v in (peak, tree, _vm_mb(proc.pid, "VmHWM")) if v is not None)
            time.sleep(poll_s)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise GraspSuccessError(f"{' '.join(cmd[1:4])} ... failed (exit {proc.returncode}):\n"
                                f"{tail}")
    return {"wall_s": time.perf_counter() - t, "peak_rss_mb": peak, "log": str(log_path)}


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc; those that exit meanwhile are left out)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            for child in children:
                out += _process_tree(int(child))
    except OSError:
        pass
    return out


def bench_accuracy(paths: dict[str, Path], data: str | Path, providers: tuple[str, ...] = (),
                   device: str = "CPU") -> dict[str, dict]:
    """Accuracy of every variant on the same labelled folders (the quantization cost)."""
    from grasp_success_ros.evaluation.evaluate import evaluate_folder

    out = {}
    for name, path in paths.items():
        clf = _classifier(path, name, providers, device)
        ev = evaluate_folder(data, clf)
        out[name] = {"accuracy": ev.metrics()["accuracy"], "images": len(ev.truth),
                     "p_success": ev.p_success}
    reference = out.get("keras")
    for row in out.values():
        if reference is not None:
            row["accuracy_change_points"] = 100.0 * (row["accuracy"] - reference["accuracy"])
            row["max_abs_dp_vs_keras"] = float(np.max(np.abs(row["p_success"]
                                                             - reference["p_success"])))
    for row in out.values():
        del row["p_success"]
    return out


# --------------------------------------------------------------------------- 1. and 2.


def _for_onnx(path: Path, providers: tuple[str, ...]) -> tuple[str, ...]:
    """The ONNX Runtime providers for an .onnx file; none for the other runtimes."""
    return providers if Path(path).suffix == ".onnx" else ()


def bench_forward(path: Path, runs: int, batch: int, providers: tuple[str, ...] = (),
                  name: str = "", device: str = "CPU") -> dict:
    t = time.perf_counter()
    clf = _classifier(path, name, providers, device)
    out: dict = {"load_s": time.perf_counter() - t, "device": clf.device}
    size = clf.input_size
    rng = np.random.default_rng(0)
    for n in (1, batch):
        x = rng.random((n, size, size, 3), dtype=np.float32)
        out[f"batch{n}"] = stats(_time_ms(lambda x=x: clf.predict_prepared(x), runs))
    return out


def bench_seed_predict(path: Path, runs: int, workdir: Path) -> dict:
    """The seed's predict.py: load the image, resize, RGB, /255, expand_dims, model.predict."""
    import cv2

    from grasp_success_ros.data.synth import render_scene
    from grasp_success_ros.model.loading import load_model

    model = load_model(path).model
    size = int(model.inputs[0].shape[1])
    image = workdir / "seed_image.jpg"
    cv2.imwrite(str(image), render_scene(np.random.default_rng(0), True, 480, 640)[..., ::-1])

    def seed_way():
        img = cv2.imread(str(image))
        img = cv2.resize(img, (size, size))
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype("float32") / 255.0
        return model.predict(np.expand_dims(img, axis=0), verbose=0)

    x = np.zeros((1, size, size, 3), np.float32)
    return {"with_image_load": stats(_time_ms(seed_way, runs)),
            "predict_only": stats(_time_ms(lambda: model.predict(x, verbose=0), runs))}


def bench_predict_process(path: Path, workdir: Path) -> dict:
    """``grasp-success predict`` on one image as its own process: wall time, peak RSS."""
    image = workdir / "seed_image.jpg"
    cmd = [sys.executable, "-m", "grasp_success_ros", "predict", str(image), str(path), "--json"]
    return run_measured(cmd, workdir / "predict.log")


# --------------------------------------------------------------------------- 6.


def bench_bag_eval(path: Path, workdir: Path, grasps: int = 20,
                   providers: tuple[str, ...] = (), name: str = "", device: str = "CPU") -> dict:
    """Offline ``bag-eval`` on a synthetic 640x480 session: events and frames per second,
    first_after (one frame per event) and n_after (five)."""
    from grasp_success_ros.bags.evaluate import evaluate_bag
    from grasp_success_ros.bags.writer import write_session
    from grasp_success_ros.core.params import NodeConfig

    bag = workdir / "bench_session"
    if not bag.exists():
        write_session(bag, n_grasps=grasps, seed=3, height=480, width=640)
    clf = _classifier(path, name, providers, device)
    out = {}
    for policy_name in ("first_after", "n_after"):
        policy = NodeConfig.from_values({"model_path": str(path),
                                         "frame_selection": policy_name}).policy(
            clf.card.threshold, clf.card.threshold_failure)
        t = time.perf_counter()
        results, _ = evaluate_bag(bag, clf.predict, policy)
        wall = time.perf_counter() - t
        judged = sum(len(r.record.frame_stamps) for r in results)
        out[policy_name] = {"events": len(results), "frames_judged": judged, "wall_s": wall,
                            "events_per_s": len(results) / wall,
                            "frames_per_s": judged / wall}
    return out


# --------------------------------------------------------------------------- 3. to 5.


def _machine_busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, steal included: /proc/stat)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _OtherLoad:
    """The share of the machine's CPU taken by processes other than the node and the bench
    while a measurement ran: on a shared machine this moves event-to-verdict between runs."""

    def __init__(self, node_pid: int) -> None:
        self.node_pid = node_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        own = os.times()
        return (time.monotonic(), _machine_busy_cpu_s(), _process_cpu_s(self.node_pid),
                own.user + own.system)

    def share(self) -> float:
        end = self._sample()
        wall, busy, node, own = (b - a for a, b in zip(self.start, end, strict=True))
        return max(0.0, busy - node - own) / (wall * (os.cpu_count() or 1))


def _vm_mb(pid: int, field: str) -> float | None:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of process ``pid`` in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _vm_hwm_mb(pid: int) -> float | None:
    return _vm_mb(pid, "VmHWM")


class _Camera:
    """Publishes pre-rendered frames (stamped now) at a steady rate from its own thread;
    ``pause`` / ``resume`` let a quiet yardstick be timed between the events."""

    def __init__(self, player, frames, fps: float) -> None:
        from sensor_msgs.msg import Image

        from grasp_success_ros.data.image_conversion import rgb_to_image_fields

        self.player = player
        self.msgs = [Image(**rgb_to_image_fields(f, "rgb8")) for f in frames]
        self.period = 1.0 / fps
        self.sent = 0
        self._active_s, self._resumed_at = 0.0, time.monotonic()
        self._stop, self._running = threading.Event(), threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running.wait() and not self._stop.is_set():
            start, here = time.monotonic(), 0
            while self._running.is_set() and not self._stop.is_set():
                self.player.publish_image(self.msgs[self.sent % len(self.msgs)])
                self.sent, here = self.sent + 1, here + 1
                delay = start + here * self.period - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)

    def pause(self) -> None:
        self._running.clear()
        self._active_s += time.monotonic() - self._resumed_at

    def resume(self) -> None:
        self._resumed_at = time.monotonic()
        self._running.set()

    def fps(self) -> float:
        """Frames per second while streaming (pauses left out)."""
        active = self._active_s + (time.monotonic() - self._resumed_at
                                   if self._running.is_set() else 0.0)
        return self.sent / active

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join()


def _events(player, n: int, timeout: float, rng, reference: Callable[[], object] | None = None,
            camera: _Camera | None = None) -> tuple[list[dict], list[float], list[float]]:
    """Send one event at a time (at a random phase of the frame clock), wait for its answer.
    ``reference``, a forward pass of the same model in this process, is timed twice around
    each event, never overlapping the node's work: quiet just before it (``camera`` paused,
    the node idle) and beside the camera just after the answer. Interleaved so, both
    yardsticks of the node's overhead share the event's minutes on a machine whose speed
    drifts (ten quiet passes before the phase once read 20 % below the passes beside it)."""
    player.clear()
    quiet: list[float] = []
    beside: list[float] = []
    for i in range(n):
        if reference is not None:
            camera.pause()
            time.sleep(0.1)  # the frames on their way are handled; the node is idle
            quiet.append(_once_ms(reference))
            camera.resume()
        time.sleep(0.15 + rng.random() * 0.1)
        player.publish_event()
        player.wait_for_results(i + 1, timeout)
        if reference is not None:
            beside.append(_once_ms(reference))
    return player.wait_for_results(n, 1.0), quiet, beside


def _summarise_records(records: list[dict]) -> dict:
    ok = [r for r in records if r.get("verdict") is not None]
    lat = [r["latency_ms"] for r in ok]
    first_wait = [(r["frame_stamps"][0] - r["event_stamp"]) * 1e3 for r in ok]
    last_wait = [(r["frame_stamps"][-1] - r["event_stamp"]) * 1e3 for r in ok]
    out = {"events": len(records), "verdicts": len(ok),
           "errors": sorted({r.get("error_code") for r in records if r.get("verdict") is None}
                            - {None}),
           "e2v_ms": stats(lat),
           "wait_first_frame_ms": stats(first_wait), "wait_last_frame_ms": stats(last_wait),
           "e2v_minus_first_wait_ms": stats(np.subtract(lat, first_wait)),
           "e2v_minus_last_wait_ms": stats(np.subtract(lat, last_wait))}
    return out


def bench_node(model: Path, policy: str, cfg: BenchConfig, workdir: Path, player_ns: str,
               frames: dict, name: str = "", reference: Callable[[], object] | None = None
               ) -> dict:
    """Start the node (its own process), time startup, play the camera, send events;
    ``reference`` (see ``_events``) is timed between them."""
    from grasp_success_ros.ros.processes import installed_params_file, start_node, stop_node
    from grasp_success_ros.ros.stream_player import StreamPlayer

    name = name or model.suffix[1:]
    log_path = workdir / f"node_{name}_{policy}.log"
    extra = [arg for param in NODE_POLICIES[policy] for arg in ("-p", param)]
    extra += ["-r", f"__ns:={player_ns}", *_runtime_params(model, name, cfg)]
    env = {**os.environ, "RCUTILS_LOGGING_BUFFERED_STREAM": "0", "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    with log_path.open("w") as log_file:
        proc = start_node(model, installed_params_file(), extra, stdout=log_file,
                          stderr=subprocess.STDOUT, env=env)
    result: dict = {"policy": policy, "log": str(log_path)}
    player = None
    try:
        ready_s = None
        while proc.poll() is None and time.monotonic() - t0 < 300:
            if "ready:" in log_path.read_text(errors="replace"):
                ready_s = time.monotonic() - t0
                break
            time.sleep(0.05)
        result["startup_s"] = ready_s
        if ready_s is None:
            result["error"] = f"node did not log ready (exit {proc.poll()}); see {log_path}"
            return result
        player = StreamPlayer(name=f"bench_player_{policy}", namespace=player_ns,
                              diagnostics=True)
        if not player.wait_for_node(60.0, alive=lambda: proc.poll() is None):
            result["error"] = "node did not subscribe"
            return result
        result["subscribed_s"] = time.monotonic() - t0
        rng = np.random.default_rng(1)
        for (w, h), imgs in frames.items():
            row = result[f"{w}x{h}"] = _camera_phase(player, proc.pid, imgs, cfg, rng,
                                                     reference)
            cfg.log(f"  {name:11s} {policy:15s} {w}x{h}: e2v p50 {_fmt(row['e2v_ms']['p50'])} "
                    f"ms, p95 {_fmt(row['e2v_ms']['p95'])} ms, max {_fmt(row['e2v_ms']['max'])}"
                    f" ms ({row['verdicts']}/{cfg.events} verdicts; other processes took "
                    f"{100 * row['other_cpu_share']:.0f} % of the CPU)")
        result["peak_rss_mb"] = _vm_hwm_mb(proc.pid)
        return result
    finally:
        if player is not None:
            player.close()
        stop_node(proc)


def _runtime_params(model: Path, name: str, cfg: BenchConfig) -> list[str]:
    """The node's ``-p`` arguments that run ``model`` as the bench variant ``name`` does:
    ONNX Runtime's providers, or OpenVINO's device and precision."""
    extra = []
    if _for_onnx(model, cfg.providers):
        extra += ["-p", f"onnx_providers:={','.join(cfg.providers)}"]
    choice = runtime_choice(name, cfg.openvino_device)
    if choice is not None:
        extra += ["-p", "onnx_runtime:=openvino", "-p", f"openvino_device:={choice.device}",
                  "-p", f"openvino_precision:={choice.precision}"]
    return extra


def _camera_phase(player, node_pid: int, imgs, cfg: BenchConfig, rng,
                  reference: Callable[[], object] | None) -> dict:
    """One resolution: the camera streams while ``cfg.events`` events are sent one at a
    time, each with its quiet and beside-the-camera timings of ``reference`` (``_events``).
    The node's own stage times (its /diagnostics) say where its milliseconds went."""
    camera = _Camera(player, imgs, cfg.fps)
    try:
        time.sleep(0.5)  # fill the node's buffer
        others = _OtherLoad(node_pid)
        records, quiet, beside = _events(player, cfg.events, timeout=10.0, rng=rng,
                                         reference=reference, camera=camera)
        other_share = others.share()
    finally:
        camera.stop()
    row = _summarise_records(records)
    if reference is not None:
        row["forward_quiet_ms"], row["forward_beside_camera_ms"] = stats(quiet), stats(beside)
    row["node_stage_ms_p50"] = player.stage_times(timeout=3.0)
    row["camera_fps"] = camera.fps()
    row["other_cpu_share"] = other_share
    return row


def _bench_node_policies(model: Path, cfg: BenchConfig, workdir: Path, player_ns: str,
                         frames: dict, name: str) -> dict:
    """Every node configuration of one model; with ``first_after`` the same model's forward
    pass in this process is timed between the events (``_events``)."""
    clf = _classifier(model, name, cfg.providers, cfg.openvino_device)
    x = np.random.default_rng(0).random((1, clf.input_size, clf.input_size, 3), np.float32)
    clf.predict_prepared(x)  # traced and warm before the first event
    return {p: bench_node(model, p, cfg, workdir, player_ns, frames, name,
                          reference=(lambda: clf.predict_prepared(x))
                          if p == "first_after" else None)
            for p in NODE_POLICIES}


def bench_cameras(model: Path, cfg: BenchConfig, workdir: Path, player_ns: str,
                  frames: list) -> dict:
    """The node's peak RSS (VmHWM) with one camera (the default topics) and with
    ``cfg.cameras`` (the ``cameras`` parameter), each camera streaming ``frames`` at
    ``cfg.fps`` and getting ``cfg.events`` events, all cameras' at the same moment."""
    rows = {"cameras": cfg.cameras,
            "one": _camera_run(model, 1, cfg, workdir, player_ns, frames),
            "many": _camera_run(model, cfg.cameras, cfg, workdir, player_ns, frames)}
    one, many = rows["one"].get("peak_rss_mb"), rows["many"].get("peak_rss_mb")
    rows["rss_ratio"] = _ratio(many, one)
    cfg.log(f"node with {cfg.cameras} cameras vs 1: peak RSS {_fmt(many, 0)} / {_fmt(one, 0)}"
            f" MB = {_fmt(rows['rss_ratio'], 2)}x")
    return rows


def _camera_run(model: Path, n: int, cfg: BenchConfig, workdir: Path, player_ns: str,
                frames: list) -> dict:
    from grasp_success_ros.ros.processes import installed_params_file, start_node, stop_node
    from grasp_success_ros.ros.stream_player import StreamPlayer

    names = [f"cam{i}" for i in range(n)] if n > 1 else [""]
    extra = ["-r", f"__ns:={player_ns}"]
    if n > 1:
        extra += ["-p", f"cameras:=[{', '.join(names)}]"]
    log_path = workdir / f"node_{n}_cameras.log"
    with log_path.open("w") as log_file:
        proc = start_node(model, installed_params_file(), extra, stdout=log_file,
                          stderr=subprocess.STDOUT)
    players, cameras = [], []
    try:
        for i, name in enumerate(names):
            players.append(StreamPlayer(name=f"bench_camera_{i}", namespace=player_ns,
                                        camera=name))
            if not players[-1].wait_for_node(300.0, alive=lambda: proc.poll() is None):
                return {"error": f"node did not subscribe; see {log_path}"}
        cameras = [_Camera(player, frames, cfg.fps) for player in players]
        time.sleep(0.5)  # fill the node's buffers
        for i in range(cfg.events):
            for player in players:
                player.publish_event()
            for player in players:
                player.wait_for_results(i + 1, 10.0)
            time.sleep(0.2)
        answered = [len(player.wait_for_results(cfg.events, 1.0)) for player in players]
        return {"cameras": n, "events": cfg.events * n, "answered": sum(answered),
                "peak_rss_mb": _vm_hwm_mb(proc.pid)}
    finally:
        for camera in cameras:
            camera.stop()
        for player in players:
            player.close()
        stop_node(proc)


def _fmt(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


# --------------------------------------------------------------------------- the whole run


def run_bench(cfg: BenchConfig) -> dict:
    from grasp_success_ros.core.errors import ConfigError
    from grasp_success_ros.model.runtimes import RUNTIMES

    for r in cfg.runtimes:
        if r not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {RUNTIMES}, not {r!r}")
    report: dict = {"machine": machine_info(), "config": {
        "model": cfg.model or f"{cfg.backbone} {cfg.input_size} px, GAP head, random weights",
        "runtimes": list(cfg.runtimes), "providers": list(cfg.providers),
        "openvino_device": cfg.openvino_device, "runs": cfg.runs,
        "batch": cfg.batch,
        "events_per_config": cfg.events, "fps": cfg.fps, "cameras": cfg.cameras,
        "resolutions": [f"{w}x{h}" for w, h in cfg.resolutions]}}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grasp_bench_") as tmp:
        workdir = Path(tmp)
        report["export"] = {}
        paths = prepare_models(cfg, workdir, report["export"])
        runtimes = [r for r in cfg.runtimes if r in paths]
        if not runtimes:
            raise ConfigError(f"{cfg.model} runs only in the {', '.join(paths)} runtime; "
                              f"pass --runtime {', '.join(paths)}")
        chosen = runtimes[0]

        report["forward_ms"], report["load_s"], report["device"] = {}, {}, {}
        variants = runtimes + [v for v in paths if v not in runtimes and "-" in v]
        for r in variants:
            report["forward_ms"][r] = bench_forward(paths[r], cfg.runs, cfg.batch,
                                                    cfg.providers, r, cfg.openvino_device)
            f = report["forward_ms"][r]
            report["load_s"][r], report["device"][r] = f.pop("load_s"), f.pop("device")
            cfg.log(f"forward {r:11s} on {report['device'][r]}: load "
                    f"{report['load_s'][r]:.1f} s, batch 1 p50 "
                    f"{_fmt(f['batch1']['p50'])} ms, batch {cfg.batch} p50 "
                    f"{_fmt(f[f'batch{cfg.batch}']['p50'])} ms")
        report["bag_eval"] = bench_bag_eval(paths[chosen], workdir, providers=cfg.providers,
                                            name=chosen, device=cfg.openvino_device)
        for policy, row in report["bag_eval"].items():
            cfg.log(f"bag-eval {chosen} {policy}: {row['frames_per_s']:.1f} frames/s, "
                    f"{row['events_per_s']:.1f} events/s ({row['events']} events, 640x480)")
        if cfg.accuracy_data:
            report["accuracy"] = bench_accuracy(paths, cfg.accuracy_data, cfg.providers,
                                                cfg.openvino_device)
            for name, row in report["accuracy"].items():
                cfg.log(f"accuracy {name:11s}: {row['accuracy']:.4f} on {row['images']} images")
        if "keras" in paths:
            report["seed_predict_ms"] = bench_seed_predict(paths["keras"], cfg.runs, workdir)
            cfg.log(f"seed model.predict: p50 "
                    f"{_fmt(report['seed_predict_ms']['with_image_load']['p50'])} ms")
            report["predict_process"] = bench_predict_process(paths["keras"], workdir)
            cfg.log(f"grasp-success predict (own process): "
                    f"{report['predict_process']['wall_s']:.1f} s, peak RSS "
                    f"{_fmt(report['predict_process']['peak_rss_mb'], 0)} MB")

        if cfg.dds:
            import rclpy

            from grasp_success_ros.data.synth import render_scene

            rng = np.random.default_rng(2)
            frames = {(w, h): [render_scene(rng, i % 2 == 0, h, w) for i in range(4)]
                      for w, h in cfg.resolutions}
            ns = f"/grasp_bench_{os.getpid()}"
            rclpy.init()
            try:
                # every timed variant, quantized ones included: which one to deploy is
                # decided by the node's latency, not by the bare forward pass alone
                report["node"] = {r: _bench_node_policies(paths[r], cfg, workdir, ns, frames, r)
                                  for r in variants}
                if cfg.cameras > 1:
                    report["cameras"] = bench_cameras(paths[chosen], cfg, workdir, ns,
                                                      frames[cfg.resolutions[0]])
            finally:
                rclpy.try_shutdown()
    report["wall_s"] = time.monotonic() - t_start
    report.update(summary(report, chosen, cfg))
    return report


def summary(report: dict, chosen: str, cfg: BenchConfig) -> dict:
    """The headline numbers for ``chosen`` and the ratios against the targets."""
    res = f"{cfg.resolutions[0][0]}x{cfg.resolutions[0][1]}"
    fwd = report["forward_ms"][chosen]["batch1"]["p50"]
    seed = report.get("seed_predict_ms", {}).get("with_image_load", {}).get("p50")
    node = report.get("node", {}).get(chosen, {})
    one = node.get("first_after", {}).get(res, {})
    five = node.get("n_after", {}).get(res, {})
    e2v = one.get("e2v_ms", {})
    startups = [p.get("startup_s") for p in node.values() if p.get("startup_s") is not None]
    rss = [p.get("peak_rss_mb") for p in node.values() if p.get("peak_rss_mb") is not None]
    fp32 = {r: v["batch1"]["p50"] for r, v in report["forward_ms"].items() if "-" not in r}
    best = min(fp32, key=fp32.get)
    cores = report["machine"]["cores"]
    irv2 = cfg.model is None and cfg.backbone == "inception_resnet_v2" and cfg.input_size == 350
    # The clock is not visible in a VM, so the result is stated as the clock at which the
    # measured speed would be the cores' peak: the runtime is at >= 80 % of peak unless the
    # cores run faster than 1.25 x that clock.
    per_cycle = cores * fp32_flop_per_cycle(report["machine"]["avx512f"])
    gflops = IRV2_350_GFLOP / (fp32[best] * 1e-3) if irv2 else None
    e2v_net = one.get("e2v_minus_first_wait_ms", {}).get("p50")
    ratios = {
        "e2v_over_forward": _ratio(e2v.get("p50"), fwd),
        "e2v_minus_wait_over_forward": _ratio(e2v_net, fwd),
        "e2v_over_seed_predict": _ratio(e2v.get("p50"), seed),
        "n5_over_n1": _ratio(five.get("e2v_ms", {}).get("p50"), e2v.get("p50")),

        **{f"{v}_speedup_over_fp32": _ratio(fp32.get(v.split("-")[0]),
                                            report["forward_ms"][v]["batch1"]["p50"])
           for v in report["forward_ms"] if "-" in v},
        **_openvino_ratio(report["forward_ms"]),
    }
    return {
        "runtime": chosen,
        "ratios_by_runtime": {r: _node_ratios(report, r, res, seed)
                              for r in report.get("node", {})},
        "node_targets": {r: node_targets(report, r, res) for r in report.get("node", {})},
        "forward_ms_p50": fwd,
        "forward_ms_p95": report["forward_ms"][chosen]["batch1"]["p95"],
        "seed_predict_ms_p50": seed,
        "event_to_verdict_ms_p50": e2v.get("p50"),
        "event_to_verdict_ms_p95": e2v.get("p95"),
        "event_to_verdict_minus_wait_ms_p50": e2v_net,
        "wait_first_frame_ms_p50": one.get("wait_first_frame_ms", {}).get("p50"),
        "five_frame_event_to_verdict_ms_p50": five.get("e2v_ms", {}).get("p50"),
        "startup_s": max(startups) if startups else None,
        "bag_eval_frames_per_s": report.get("bag_eval", {}).get("first_after", {}).get(
            "frames_per_s"),
        "peak_rss_mb": max(rss) if rss else None,
        "best_fp32_runtime": best,
        "best_fp32_gflops": gflops,
        "best_fp32_at_peak_of_ghz": _ratio(gflops, per_cycle),
        "peak_flop_per_cycle": per_cycle,
        "ratios": ratios,
        "targets": TARGETS,
    }


def _openvino_ratio(forward_ms: dict) -> dict:
    """Issue 25's target, OpenVINO bf16 forward batch 1 at <= 0.6 x ONNX Runtime FP32's,
    where both were timed."""
    if "openvino-bf16" not in forward_ms or "onnx" not in forward_ms:
        return {}
    return {"openvino-bf16_over_onnx_fp32": _ratio(forward_ms["openvino-bf16"]["batch1"]["p50"],
                                                   forward_ms["onnx"]["batch1"]["p50"])}


def _node_ratios(report: dict, runtime: str, res: str, seed: float | None) -> dict:
    """The node ratios of one runtime (or quantized variant) against its own forward pass."""
    node = report["node"][runtime]
    one = node.get("first_after", {}).get(res, {}).get("e2v_ms", {}).get("p50")
    five = node.get("n_after", {}).get(res, {}).get("e2v_ms", {}).get("p50")
    fwd = report["forward_ms"][runtime]["batch1"]["p50"]
    return {"e2v_over_forward": _ratio(one, fwd), "e2v_over_seed_predict": _ratio(one, seed),
            "n5_over_n1": _ratio(five, one)}


def node_targets(report: dict, runtime: str, res: str) -> dict:
    """Issue 13's targets for one runtime, from one run: the node's own overhead (first_after
    e2v minus the frame wait) against the forward pass timed beside the same camera stream
    in the same minutes (``_camera_phase``; the run's first forward timing when there is
    none) and, stricter, against the quiet one timed just before, at p50; its tail (p95
    over p50); and streaming n_after against the n-th frame's arrival plus 1.2 forward
    passes, with the batched way beside it."""
    node, fwd = report["node"][runtime], report["forward_ms"][runtime]["batch1"]["p50"]
    one = node.get("first_after", {}).get(res, {})
    net = one.get("e2v_minus_first_wait_ms", {})
    beside = one.get("forward_beside_camera_ms", {}).get("p50")
    quiet = one.get("forward_quiet_ms", {}).get("p50")
    ref = fwd if beside is None else beside
    quiet_ref = fwd if quiet is None else quiet
    stream = node.get("n_after", {}).get(res, {})
    batched = node.get("n_after_batched", {}).get(res, {}).get("e2v_ms", {}).get("p50")
    arrival = stream.get("wait_last_frame_ms", {}).get("p50")
    bound = None if arrival is None else arrival + STREAM_FORWARDS * fwd
    streamed = stream.get("e2v_ms", {}).get("p50")
    p50, p95 = net.get("p50"), net.get("p95")
    node_fwd = one.get("node_stage_ms_p50", {}).get("forward")
    return {
        "forward_ms_p50": fwd, "forward_quiet_ms_p50": quiet,
        "forward_beside_camera_ms_p50": beside, "node_forward_ms_p50": node_fwd,
        "overhead_e2v_minus_wait_ms_p50": p50, "overhead_e2v_minus_wait_ms_p95": p95,
        "overhead_ok": None if p50 is None else p50 <= ref + OVERHEAD_MS,
        "overhead_ok_quiet": None if p50 is None else p50 <= quiet_ref + OVERHEAD_MS,
        "tail_ok": None if p95 is None else p95 <= TAIL_FACTOR * p50,
        "n_after_streaming_e2v_ms_p50": streamed, "n_after_batched_e2v_ms_p50": batched,
        "nth_frame_arrival_ms_p50": arrival, "streaming_bound_ms": bound,
        "streaming_ok": None if streamed is None or bound is None else streamed <= bound,
    }


def _pass(ok) -> str:
    return "-" if ok is None else "pass" if ok else "FAIL"


def format_targets(report: dict) -> list[str]:
    """Issue 13's per-runtime targets as table rows."""
    lines = [f"\nnode targets (e2v - wait <= forward + {OVERHEAD_MS:.0f} ms, beside the camera "
             f"and quiet; p95 <= {TAIL_FACTOR} x p50; streaming n_after <= n-th frame + "
             f"{STREAM_FORWARDS} x forward):",
             "| runtime | forward p50 at start / quiet / beside camera | node's own forward p50 "
             "| e2v-wait p50 / p95 | overhead (beside camera / quiet) | tail | n_after streaming "
             "/ batched e2v p50 | n-th frame + 1.2 fwd | streaming |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r, t in report.get("node_targets", {}).items():
        lines.append(
            f"| {r} | {_fmt(t['forward_ms_p50'])} / {_fmt(t['forward_quiet_ms_p50'])} / "
            f"{_fmt(t['forward_beside_camera_ms_p50'])} | {_fmt(t['node_forward_ms_p50'])}"
            f" | {_fmt(t['overhead_e2v_minus_wait_ms_p50'])}"
            f" / {_fmt(t['overhead_e2v_minus_wait_ms_p95'])} | {_pass(t['overhead_ok'])} / "
            f"{_pass(t['overhead_ok_quiet'])} | "
            f"{_pass(t['tail_ok'])} | {_fmt(t['n_after_streaming_e2v_ms_p50'])} / "
            f"{_fmt(t['n_after_batched_e2v_ms_p50'])} | {_fmt(t['streaming_bound_ms'])} | "
            f"{_pass(t['streaming_ok'])} |")
    return lines


def format_table(report: dict) -> str:
    """A Markdown table of the run."""
    lines = ["| measurement | " + " | ".join(report["forward_ms"]) + " |",
             "| --- |" + " --- |" * len(report["forward_ms"])]
    runtimes = list(report["forward_ms"])

    def row(name, getter):
        cells = []
        for r in runtimes:
            try:
                cells.append(getter(r))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    fwd = report["forward_ms"]
    batch = report["config"]["batch"]
    row("device", lambda r: report["device"][r])
    row("forward batch 1, p50 / p95 ms",
        lambda r: f"{_fmt(fwd[r]['batch1']['p50'])} / {_fmt(fwd[r]['batch1']['p95'])}")
    row(f"forward batch {batch}, p50 / p95 ms", lambda r: (
        f"{_fmt(fwd[r][f'batch{batch}']['p50'])} / {_fmt(fwd[r][f'batch{batch}']['p95'])}"))
    node = report.get("node", {})
    for res in report["config"]["resolutions"]:
        for policy in NODE_POLICIES:
            def cell(r, policy=policy, res=res):
                s = node[r][policy][res]
                net = s["e2v_minus_first_wait_ms" if policy == "first_after"
                        else "e2v_minus_last_wait_ms"]["p50"]
                return (f"{_fmt(s['e2v_ms']['p50'])} / {_fmt(s['e2v_ms']['p95'])} "
                        f"(-wait {_fmt(net)}; {s['verdicts']}/{s['events']})")
            row(f"event-to-verdict {policy} {res}, p50 / p95 ms", cell)
    row("load, s", lambda r: _fmt(report["load_s"][r], 2))
    row("export wall s / peak RSS MB (own process)", lambda r: (
        f"{_fmt(report['export'][r]['wall_s'])} / "
        f"{_fmt(report['export'][r]['peak_rss_mb'], 0)}"))
    row("other processes' CPU share during first_after events", lambda r: ", ".join(
        f"{100 * node[r]['first_after'][res]['other_cpu_share']:.0f} %"
        for res in report["config"]["resolutions"]))
    row("startup to ready, s (first_after / n_after)", lambda r: (
        f"{_fmt(node[r]['first_after']['startup_s'])} / "
        f"{_fmt(node[r]['n_after']['startup_s'])}"))
    row("node peak RSS (VmHWM), MB", lambda r: _fmt(
        max(node[r][p]["peak_rss_mb"] for p in NODE_POLICIES), 0))
    seed = report.get("seed_predict_ms")
    if seed:
        lines.append(f"\nseed `model.predict` (keras, image load included): p50 "
                     f"{_fmt(seed['with_image_load']['p50'])} ms, p95 "
                     f"{_fmt(seed['with_image_load']['p95'])} ms; predict only p50 "
                     f"{_fmt(seed['predict_only']['p50'])} ms")
    if "predict_process" in report:
        lines.append(f"`grasp-success predict` (own process, one image): "
                     f"{report['predict_process']['wall_s']:.1f} s, peak RSS "
                     f"{_fmt(report['predict_process']['peak_rss_mb'], 0)} MB")
    for policy, row in report.get("bag_eval", {}).items():
        lines.append(f"bag-eval ({report['runtime']}, {policy}, 640x480 bag): "
                     f"{row['frames_per_s']:.1f} frames/s judged, {row['events_per_s']:.2f} "
                     f"events/s")
    for name, row in report.get("accuracy", {}).items():
        change = row.get("accuracy_change_points")
        lines.append(f"accuracy {name}: {row['accuracy']:.4f} on {row['images']} images"
                     + ("" if change is None else f" ({change:+.2f} points vs keras, "
                        f"max |dP| {row['max_abs_dp_vs_keras']:.3g})"))
    lines.append("")
    lines.append(f"ratios ({report['runtime']}):")
    for k, v in report["ratios"].items():
        target = TARGETS.get(k)
        lines.append(f"- {k}: {_fmt(v, 2)}" + (f" (target <= {target})" if target else ""))
    for runtime, ratios in report.get("ratios_by_runtime", {}).items():
        lines.append(f"- {runtime}: " + ", ".join(f"{k} {_fmt(v, 2)}"
                                                  for k, v in ratios.items()))
    lines.append(f"- startup_s: {_fmt(report['startup_s'])} (target <= {TARGETS['startup_s']})")
    lines.append(f"- peak_rss_mb: {_fmt(report['peak_rss_mb'], 0)} "
                 f"(target <= {TARGETS['peak_rss_mb']:.0f})")
    if "cameras" in report:
        rows = report["cameras"]
        lines.append(f"- node peak RSS, {rows['cameras']} cameras / 1: "
                     f"{_fmt(rows['rss_ratio'], 2)} (target <= 1.2)")
    lines += format_targets(report)
    return "\n".join(lines)


def write_json(report: dict, path: str | Path) -> None:
    write_text(path, json.dumps(report, indent=2, default=str) + "\n")
