#!/usr/bin/env python3
"""The node under rclpy's EventsExecutor against its own executor (issue 23 item 3), side by
side in one run: idle CPU, CPU per camera frame, event-to-verdict, the forward pass timed quiet
and beside the camera, and whether a callback waits behind a forward pass or a model load.

Kilted's rclpy (9.1.x) has ``rclpy.experimental.EventsExecutor``: it runs every callback on
its one thread and refuses guard conditions ("Guard conditions not supported"), and its
``spin()`` keeps a core busy while nothing happens (``spin_once`` in a loop does not). So the
``events`` node here is the minimum that runs under it: the node's two guard conditions (the
worker's wake-up, whose callback runs the forward passes, and the verify server's cancels)
become threads of their own, and the executor is spun with ``spin_once``; ``events-spin`` is
the same node spun with ``spin()``. The model loads at autostart before any spinning, as with
the node's executor; a swap (``model_path`` set) loads inside the parameter callback, on the
executor's one thread: the swap phase times an event sent while it loads. Nothing here is on
the node's normal path (``grasp_success_node`` keeps ``NodeExecutor``).

    make build-kilted build-kilted/test-model/tiny.onnx
    (unset LD_LIBRARY_PATH PYTHONPATH AMENT_PREFIX_PATH _ROS_WHEELS_BOOTSTRAP_COMPLETE; \\
     source .venv-kilted/bin/activate && source install-kilted/setup.bash && \\
     python scripts/executor_bench.py --model build-kilted/test-model/tiny.onnx --json ex.json)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "grasp_success_ros"))

EXECUTORS = ("node", "events", "events-spin")
# Each CPU window (idle; camera only), in seconds.
WINDOW_S = float(os.environ.get("EXECUTOR_BENCH_WINDOW_S", "10"))
SIZE, FPS = (640, 480), 30.0


# --- the node's side: this script run as the node, under one executor ------------------------

class ThreadedGuard:
    """A guard condition's stand-in for the EventsExecutor, which refuses them: ``trigger``
    wakes a thread of its own that runs the callback (again if triggered meanwhile), so the
    worker's forward passes never hold the executor's one thread."""

    def __init__(self, callback) -> None:
        self._callback, self._wake, self._closed = callback, threading.Event(), False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def trigger(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while self._wake.wait() and not self._closed:
            self._wake.clear()
            self._callback()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()


def events_node_class():
    """GraspSuccessNode with its guard conditions as :class:`ThreadedGuard` threads."""
    from grasp_success_ros.ros.node import GraspSuccessNode

    class EventsNode(GraspSuccessNode):
        def create_guard_condition(self, callback, callback_group=None):
            return ThreadedGuard(callback)

        def destroy_guard_condition(self, guard) -> bool:
            if isinstance(guard, ThreadedGuard):
                guard.close()
                return True
            return super().destroy_guard_condition(guard)

    return EventsNode


def serve(executor_name: str, ros_args: list[str]) -> int:
    """The node (autostarted: the model loads before any spinning) under ``executor_name``."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from grasp_success_ros.ros.node import GraspSuccessNode
    from grasp_success_ros.ros.rclpy_compat import NodeExecutor

    rclpy.init(args=["serve", "--ros-args", *ros_args])
    node = (GraspSuccessNode if executor_name == "node" else events_node_class())()
    if not node.start():
        return 1
    if executor_name == "node":
        executor = NodeExecutor(num_threads=node.executor_threads)
    else:
        from rclpy.experimental import EventsExecutor
        executor = EventsExecutor()
    executor.add_node(node)
    try:
        if executor_name == "events":
            while rclpy.ok():
                executor.spin_once(timeout_sec=1.0)
        else:
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# --- the measuring side ---------------------------------------------------------------------

def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StatePoller:
    """Asks the node's ``~/get_state`` every 50 ms from its own thread: how long a lifecycle
    service waits (behind a forward pass or a model load) while a phase runs."""

    def __init__(self, player, node: str) -> None:
        from lifecycle_msgs.srv import GetState

        self.client = player.create_client(GetState, f"{node}/get_state")
        self.client.wait_for_service(5.0)
        self.ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from lifecycle_msgs.srv import GetState

        while not self._stop.wait(0.05):
            t = time.perf_counter()
            future = self.client.call_async(GetState.Request())
            while not future.done() and time.perf_counter() - t < 30.0:
                time.sleep(0.001)
            self.ms.append((time.perf_counter() - t) * 1e3)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return self.ms


def stats(values) -> dict:
    v = np.asarray(values, float)
    if not len(v):
        return {"n": 0}
    return {"n": len(v), "p50": round(float(np.percentile(v, 50)), 2),
            "p95": round(float(np.percentile(v, 95)), 2), "max": round(float(v.max()), 2)}


def cpu_windows(player, pid: int, frames) -> dict:
    """The node's CPU idle (no camera) and with the camera at 30 Hz, over ``WINDOW_S`` each."""
    from grasp_success_ros.bench.node_run import Camera

    time.sleep(1.0)
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(WINDOW_S)
    idle = (cpu_s(pid) - c0) / (time.monotonic() - t0)
    camera = Camera(player, frames, FPS)
    time.sleep(1.0)
    c0, t0, sent0 = cpu_s(pid), time.monotonic(), camera.sent
    time.sleep(WINDOW_S)
    busy, wall, sent = cpu_s(pid) - c0, time.monotonic() - t0, camera.sent - sent0
    camera.stop()
    return {"idle_cpu_pct": round(100 * idle, 2), "camera_cpu_pct": round(100 * busy / wall, 2),
            "camera_fps": round(sent / wall, 1),
            "cpu_ms_per_frame": round(1e3 * (busy - idle * wall) / sent, 3)}


def event_phase(player, node: str, frames, events: int, reference) -> dict:
    """Events one at a time with the camera streaming; the forward pass timed quiet and
    beside the camera between them (the bench's yardsticks); lifecycle service latency
    meanwhile."""
    from grasp_success_ros.bench.node_run import Camera, send_events, summarise_records

    camera = Camera(player, frames, FPS)
    poller = StatePoller(player, node)
    try:
        time.sleep(0.5)
        records, quiet, beside = send_events(player, events, 10.0, np.random.default_rng(1),
                                             reference, camera)
    finally:
        state_ms = poller.stop()
        camera.stop()
    phase = summarise_records(records)
    e2v = [r["latency_ms"] for r in records if r.get("verdict") is not None]
    return {"verdicts": f"{phase.verdicts}/{events}", "e2v_ms": stats(e2v),
            "forward_quiet_ms": stats(quiet), "forward_beside_camera_ms": stats(beside),
            "overhead_vs_quiet_ms_p50": round(float(np.median(e2v) - np.median(quiet)), 2),
            "overhead_vs_beside_ms_p50": round(float(np.median(e2v) - np.median(beside)), 2),
            "e2v_minus_last_frame_wait_ms_p50": phase.e2v_minus_last_wait_ms.p50,
            "get_state_ms": stats(state_ms), "node_stage_ms_p50": player.stage_times(3.0)}


def swap_phase(player, node: str, frames, swap_to: Path) -> dict:
    """Set ``model_path`` (a load inside the parameter callback) and send an event just
    after: its event-to-verdict, the swap's own time, get_state meanwhile."""
    from grasp_success_ros.bench.node_run import Camera

    camera = Camera(player, frames, FPS)
    poller = StatePoller(player, node)
    player.clear()
    try:
        time.sleep(0.5)
        done, t = {}, time.perf_counter()
        setter = threading.Thread(target=lambda: done.update(
            result=set_parameter(player, node, "model_path", str(swap_to))))
        setter.start()
        time.sleep(0.05)
        player.publish_event()
        records = player.wait_for_results(1, 30.0)
        setter.join()
        swap_ms = (time.perf_counter() - t) * 1e3
    finally:
        state_ms = poller.stop()
        camera.stop()
    return {"swap_ms": round(swap_ms, 1), "swapped": bool(done["result"].successful),
            "event_during_swap_e2v_ms": records[0]["latency_ms"] if records else None,
            "get_state_ms": stats(state_ms)}


def set_parameter(player, node: str, name: str, value):
    """One parameter set through the node's set_parameters service, as ``ros2 param set``."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = player.create_client(SetParameters, f"{node}/set_parameters")
    client.wait_for_service(10.0)
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return client.call(request, timeout_sec=150.0).results[0]


def measure_one(name: str, model: Path, swap_to: Path, frames, events: int, reference,
                workdir: Path) -> dict:
    """Start this script as the node under executor ``name``; measure it; stop it."""
    from grasp_success_ros.bench.system import vm_hwm_mb
    from grasp_success_ros.ros.node_state import NODE_NAME, wait_until_active
    from grasp_success_ros.ros.processes import installed_params_file, stop_node
    from grasp_success_ros.ros.stream_player import StreamPlayer

    namespace = f"/executor_bench_{os.getpid()}_{name.replace('-', '_')}"
    node = f"{namespace}/{NODE_NAME}"
    log = workdir / f"node_{name}.log"
    cmd = [sys.executable, __file__, "--serve", name, "--ros-args", "--params-file",
           str(installed_params_file()), "-p", f"model_path:={model}", "-r", f"__ns:={namespace}"]
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    player = StreamPlayer(name=f"executor_bench_{name.replace('-', '_')}", namespace=namespace,
                          diagnostics=True)
    row: dict = {"executor": name}
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        if not (wait_until_active(player, node, 120.0, alive)
                and player.wait_for_node(60.0, alive=alive)):
            row["error"] = f"did not become active (exit {proc.poll()}): {log.read_text()[-1500:]}"
            return row
        row["startup_s"] = round(time.monotonic() - t0, 2)
        row.update(cpu_windows(player, proc.pid, frames))
        row["events"] = event_phase(player, node, frames, events, reference)
        row["swap"] = swap_phase(player, node, frames, swap_to)
        row["peak_rss_mb"] = vm_hwm_mb(proc.pid)
        row["alive_after"] = proc.poll() is None
        return row
    finally:
        player.close()
        row["exit"] = stop_node(proc)
        errors = [line for line in log.read_text().splitlines() if "Error" in line]
        if errors:
            row["log_errors"] = errors[-5:]


def run(model: Path, executors: list[str], events: int) -> dict:
    """Every executor, one after the other, in one run on one machine."""
    from grasp_success_ros.bench.measure import classifier
    from grasp_success_ros.data.synth import render_scene
    from grasp_success_ros.ros.processes import ros_context

    rng = np.random.default_rng(2)
    frames = [render_scene(rng, i % 2 == 0, SIZE[1], SIZE[0]) for i in range(4)]
    clf = classifier(model)
    x = np.random.default_rng(0).random((1, clf.input_size, clf.input_size, 3), np.float32)
    clf.predict_prepared(x)
    with tempfile.TemporaryDirectory(prefix="executor_bench_") as tmp:
        workdir = Path(tmp)
        swap_to = workdir / f"swapped{model.suffix}"  # the same model under another name
        shutil.copy(model, swap_to)
        card = model.with_name(model.stem + ".card.json")
        if card.is_file():
            shutil.copy(card, workdir / "swapped.card.json")
        with ros_context():
            rows = [measure_one(name, model, swap_to, frames, events,
                                lambda: clf.predict_prepared(x), workdir)
                    for name in executors]
    return {"model": str(model), "camera": f"{SIZE[0]}x{SIZE[1]} at {FPS:.0f} Hz",
            "window_s": WINDOW_S, "cpus": os.cpu_count(), "rows": rows}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        return serve(sys.argv[2], sys.argv[sys.argv.index("--ros-args") + 1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an .onnx (or .tflite) model")
    parser.add_argument("--executors", default=",".join(EXECUTORS),
                        help=f"comma-separated, of {', '.join(EXECUTORS)}")
    parser.add_argument("--events", type=int, default=15)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    report = run(Path(args.model).resolve(), args.executors.split(","), args.events)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
