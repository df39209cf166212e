"""The live node measured over DDS: the installed node in its own process, a second
participant playing a 30 Hz camera and sending grasp events one at a time; start-up is process
start to lifecycle state ``active`` (its ``~/get_state``), then event-to-verdict per camera
resolution, then the node's peak resident memory."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from grasp_success_ros.bench.config import NODE_POLICIES, BenchConfig, resolution_label
from grasp_success_ros.bench.measure import classifier, once_ms, onnx_providers, runtime_choice
from grasp_success_ros.bench.results import (
    CameraPhase,
    CameraRun,
    CamerasRun,
    NodeRun,
    Stats,
    Variant,
)
from grasp_success_ros.bench.summary import ratio
from grasp_success_ros.bench.system import OtherLoad, vm_hwm_mb
from grasp_success_ros.bench.table import show

Frames = dict[tuple[int, int], list]  # pre-rendered RGB frames by (width, height)


@contextmanager
def dds_session(cfg: BenchConfig) -> Iterator[tuple[str, Frames]]:
    """rclpy for the node phase, with the bench's own namespace (it meets no other node on
    the domain) and the camera's frames, rendered once."""
    from grasp_success_ros.data.synth import render_scene
    from grasp_success_ros.ros.processes import ros_context

    rng = np.random.default_rng(2)
    frames = {(w, h): [render_scene(rng, i % 2 == 0, h, w) for i in range(4)]
              for w, h in cfg.resolutions}
    with ros_context():
        yield f"/grasp_bench_{os.getpid()}", frames


class Camera:
    """Publishes pre-rendered frames (stamped now) at a steady rate from its own thread;
    ``pause`` / ``resume`` let a quiet yardstick be timed between the events."""

    def __init__(self, player, frames, fps: float) -> None:
        self.player = player
        self.msgs = [player.image(f) for f in frames]
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


def send_events(player, n: int, timeout: float, rng,
                reference: Callable[[], object] | None = None, camera: Camera | None = None
                ) -> tuple[list[dict], list[float], list[float]]:
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
            quiet.append(once_ms(reference))
            camera.resume()
        time.sleep(0.15 + rng.random() * 0.1)
        player.publish_event()
        player.wait_for_results(i + 1, timeout)
        if reference is not None:
            beside.append(once_ms(reference))
    return player.wait_for_results(n, 1.0), quiet, beside


def summarise_records(records: list[dict]) -> CameraPhase:
    """The node's answers as latencies: event to verdict, the frames' waits, and the two
    differences that leave the node's own share."""
    ok = [r for r in records if r.get("verdict") is not None]
    lat = [r["latency_ms"] for r in ok]
    first_wait = [(r["frame_stamps"][0] - r["event_stamp"]) * 1e3 for r in ok]
    last_wait = [(r["frame_stamps"][-1] - r["event_stamp"]) * 1e3 for r in ok]
    errors = {r.get("error_code") for r in records if r.get("verdict") is None} - {None}
    return CameraPhase(
        events=len(records), verdicts=len(ok), errors=sorted(errors),
        e2v_ms=Stats.of(lat), wait_first_frame_ms=Stats.of(first_wait),
        wait_last_frame_ms=Stats.of(last_wait),
        e2v_minus_first_wait_ms=Stats.of(np.subtract(lat, first_wait)),
        e2v_minus_last_wait_ms=Stats.of(np.subtract(lat, last_wait)))


def runtime_params(model: Path, variant: Variant, cfg: BenchConfig) -> list[str]:
    """The node's ``-p`` arguments that run ``model`` as the bench variant does: ONNX
    Runtime's providers, or OpenVINO's device and precision."""
    extra = []
    if onnx_providers(model, cfg.providers):
        extra += ["-p", f"onnx_providers:={','.join(cfg.providers)}"]
    choice = runtime_choice(variant, cfg.openvino_device)
    if choice is not None:
        extra += ["-p", "onnx_runtime:=openvino", "-p", f"openvino_device:={choice.device}",
                  "-p", f"openvino_precision:={choice.precision}"]
    return extra


def _start(model: Path, extra: list[str], log_path: Path) -> subprocess.Popen:
    """The installed node as its own process, its output unbuffered into ``log_path``."""
    from grasp_success_ros.ros.processes import installed_params_file, start_node

    env = {**os.environ, "RCUTILS_LOGGING_BUFFERED_STREAM": "0", "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log_file:
        return start_node(model, installed_params_file(), extra, stdout=log_file,
                          stderr=subprocess.STDOUT, env=env)


def bench_node(model: Path, policy: str, cfg: BenchConfig, workdir: Path, namespace: str,
               frames: Frames, variant: Variant,
               reference: Callable[[], object] | None = None) -> NodeRun:
    """Start the node (its own process), time its start-up to lifecycle state active, play
    the camera, send events; ``reference`` (see ``send_events``) is timed between them."""
    from grasp_success_ros.ros.node_state import NODE_NAME, current_state, wait_until_active
    from grasp_success_ros.ros.processes import stop_node
    from grasp_success_ros.ros.stream_player import StreamPlayer

    log_path = workdir / f"node_{variant.name}_{policy}.log"
    extra = [arg for param in NODE_POLICIES[policy] for arg in ("-p", param)]
    extra += ["-r", f"__ns:={namespace}", *runtime_params(model, variant, cfg)]
    player = StreamPlayer(name=f"bench_player_{policy}", namespace=namespace,
                          diagnostics=True)
    t0 = time.monotonic()
    proc = _start(model, extra, log_path)
    run = NodeRun(policy=policy, log=str(log_path))
    node, alive = f"{namespace}/{NODE_NAME}", lambda: proc.poll() is None
    try:
        if not wait_until_active(player, node, 300.0, alive):
            state = current_state(player, node) if alive() else "exited"
            run.error = (f"node did not become active (state {state}, exit {proc.poll()}); "
                         f"see {log_path}")
            return run
        run.startup_s = time.monotonic() - t0
        if not player.wait_for_node(60.0, alive=alive):
            run.error = "node did not subscribe"
            return run
        run.subscribed_s = time.monotonic() - t0
        rng = np.random.default_rng(1)
        for size, imgs in frames.items():
            phase = camera_phase(player, proc.pid, imgs, cfg, rng, reference)
            run.phases[resolution_label(size)] = phase
            _log_phase(cfg, variant, policy, resolution_label(size), phase)
        run.peak_rss_mb = vm_hwm_mb(proc.pid)
        return run
    finally:
        player.close()
        stop_node(proc)


def _log_phase(cfg: BenchConfig, variant: Variant, policy: str, res: str,
               phase: CameraPhase) -> None:
    e2v = phase.e2v_ms
    cfg.log(f"  {variant.name:11s} {policy:15s} {res}: e2v p50 {show(e2v.p50)} ms, p95 "
            f"{show(e2v.p95)} ms, max {show(e2v.max)} ms ({phase.verdicts}/{cfg.events} "
            f"verdicts; other processes took {100 * phase.other_cpu_share:.0f} % of the CPU)")


def camera_phase(player, node_pid: int, imgs, cfg: BenchConfig, rng,
                 reference: Callable[[], object] | None) -> CameraPhase:
    """One resolution: the camera streams while ``cfg.events`` events are sent one at a
    time, each with its quiet and beside-the-camera timings of ``reference``
    (``send_events``). The node's own stage times (its /diagnostics) say where its
    milliseconds went."""
    camera = Camera(player, imgs, cfg.fps)
    try:
        time.sleep(0.5)  # fill the node's buffer
        others = OtherLoad(node_pid)
        records, quiet, beside = send_events(player, cfg.events, timeout=10.0, rng=rng,
                                             reference=reference, camera=camera)
        other_share = others.share()
    finally:
        camera.stop()
    phase = summarise_records(records)
    if reference is not None:
        phase.forward_quiet_ms, phase.forward_beside_camera_ms = Stats.of(quiet), Stats.of(beside)
    phase.node_stage_ms_p50 = player.stage_times(timeout=3.0)
    phase.camera_fps = camera.fps()
    phase.other_cpu_share = other_share
    return phase


def bench_node_policies(model: Path, cfg: BenchConfig, workdir: Path, namespace: str,
                        frames: Frames, variant: Variant) -> dict[str, NodeRun]:
    """Every node configuration of one model; with ``first_after`` the same model's forward
    pass in this process is timed between the events (``send_events``)."""
    clf = classifier(model, variant, cfg.providers, cfg.openvino_device)
    x = np.random.default_rng(0).random((1, clf.input_size, clf.input_size, 3), np.float32)
    clf.predict_prepared(x)  # traced and warm before the first event
    return {p: bench_node(model, p, cfg, workdir, namespace, frames, variant,
                          reference=(lambda: clf.predict_prepared(x))
                          if p == "first_after" else None)
            for p in NODE_POLICIES}


def bench_cameras(model: Path, cfg: BenchConfig, workdir: Path, namespace: str,
                  frames: list) -> CamerasRun:
    """The node's peak RSS (VmHWM) with one camera (the default topics) and with
    ``cfg.cameras`` (the ``cameras`` parameter), each camera streaming ``frames`` at
    ``cfg.fps`` and getting ``cfg.events`` events, all cameras' at the same moment."""
    one = camera_run(model, 1, cfg, workdir, namespace, frames)
    many = camera_run(model, cfg.cameras, cfg, workdir, namespace, frames)
    rows = CamerasRun(cameras=cfg.cameras, one=one, many=many,
                      rss_ratio=ratio(many.peak_rss_mb, one.peak_rss_mb))
    cfg.log(f"node with {cfg.cameras} cameras vs 1: peak RSS {show(many.peak_rss_mb, 0)} / "
            f"{show(one.peak_rss_mb, 0)} MB = {show(rows.rss_ratio, 2)}x")
    return rows


def camera_run(model: Path, n: int, cfg: BenchConfig, workdir: Path, namespace: str,
               frames: list) -> CameraRun:
    """One node with ``n`` cameras, every camera getting each event at the same moment."""
    from grasp_success_ros.ros.processes import installed_params_file, start_node, stop_node
    from grasp_success_ros.ros.stream_player import StreamPlayer

    names = [f"cam{i}" for i in range(n)] if n > 1 else [""]
    extra = ["-r", f"__ns:={namespace}"]
    if n > 1:
        extra += ["-p", f"cameras:=[{', '.join(names)}]"]
    log_path = workdir / f"node_{n}_cameras.log"
    with log_path.open("w") as log_file:
        proc = start_node(model, installed_params_file(), extra, stdout=log_file,
                          stderr=subprocess.STDOUT)
    players, cameras = [], []
    try:
        for i, name in enumerate(names):
            players.append(StreamPlayer(name=f"bench_camera_{i}", namespace=namespace,
                                        camera=name))
            if not players[-1].wait_for_node(300.0, alive=lambda: proc.poll() is None):
                return CameraRun(cameras=n, error=f"node did not subscribe; see {log_path}")
        cameras = [Camera(player, frames, cfg.fps) for player in players]
        time.sleep(0.5)  # fill the node's buffers
        answered = _events_at_once(players, cfg.events)
        return CameraRun(cameras=n, events=cfg.events * n, answered=answered,
                         peak_rss_mb=vm_hwm_mb(proc.pid))
    finally:
        for camera in cameras:
            camera.stop()
        for player in players:
            player.close()
        stop_node(proc)


def _events_at_once(players: list, events: int) -> int:
    """``events`` events, each sent to every camera at once; the answers received."""
    for i in range(events):
        for player in players:
            player.publish_event()
        for player in players:
            player.wait_for_results(i + 1, 10.0)
        time.sleep(0.2)
    return sum(len(player.wait_for_results(events, 1.0)) for player in players)
