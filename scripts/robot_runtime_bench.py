#!/usr/bin/env python3
"""The robot runtime against the full install, side by side in one run: install size, the
node's start-up time (process start to lifecycle state active) and its peak resident memory
after a few judged events, for each (venv, model) pair, runs alternating.

    source .venv/bin/activate && source install/setup.bash   # the full venv runs this script
    python scripts/robot_runtime_bench.py --robot-venv /tmp/robot --onnx m.onnx --keras m.keras

``--robot-venv`` is a venv made with ``pip install -r requirements-ros.txt -r
requirements-robot.txt``; ``--full-venv`` (default: this one) one with requirements.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "grasp_success_ros"))

ACTIVE = 3  # lifecycle_msgs/State.PRIMARY_STATE_ACTIVE


def site_mb(venv: Path) -> float:
    """Everything installed into the venv's site-packages, in MB."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    files = (f for f in site.rglob("*") if f.is_file() and not f.is_symlink())
    return sum(f.stat().st_size for f in files) / 1e6


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmHWM for pid {pid}")


def wait_active(player, ns: str, proc, timeout: float = 180.0) -> bool:
    from lifecycle_msgs.srv import GetState

    client = player.create_client(GetState, f"{ns}/grasp_success_node/get_state")
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if client.wait_for_service(0.05):
            future = client.call_async(GetState.Request())
            stop = time.monotonic() + 2.0
            while not future.done() and time.monotonic() < stop:
                time.sleep(0.005)
            if future.done() and future.result().current_state.id == ACTIVE:
                player.destroy_client(client)
                return True
        time.sleep(0.02)
    player.destroy_client(client)
    return False


def one_run(python: Path, model: Path, ns: str, events: int) -> tuple[float, float, int]:
    """(start-up s, peak RSS MB, events answered) of one node process."""
    import numpy as np

    from grasp_success_ros.data.synth import render_scene
    from grasp_success_ros.ros.processes import stop_node
    from grasp_success_ros.ros.stream_player import StreamPlayer

    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    player = StreamPlayer(name="robot_bench", namespace=ns)
    t0 = time.monotonic()
    proc = subprocess.Popen([str(python), "-m", "grasp_success_ros.ros.node", "--ros-args",
                             "-r", f"__ns:={ns}", "-p", f"model_path:={model}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_active(player, ns, proc):
            raise RuntimeError(f"{python} {model}: the node did not become active")
        startup = time.monotonic() - t0
        player.wait_for_node(30.0)
        rng = np.random.default_rng(0)
        for _ in range(events):
            player.publish_event()
            for _ in range(3):
                player.publish_frame(render_scene(rng, True, 240, 320))
                time.sleep(1 / 30)
            time.sleep(0.3)
        answered = len(player.wait_for_results(events, timeout=10.0))
        return startup, peak_rss_mb(proc.pid), answered
    finally:
        player.close()
        stop_node(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robot-venv", type=Path, required=True)
    ap.add_argument("--full-venv", type=Path, default=Path(sys.prefix))
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--keras", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=10)
    args = ap.parse_args()
    import rclpy

    rclpy.init()
    configs = [("robot runtime", args.robot_venv, args.onnx),
               ("full install", args.full_venv, args.onnx),
               ("full install", args.full_venv, args.keras)]
    results: dict[int, list[tuple[float, float, int]]] = {i: [] for i in range(len(configs))}
    for run in range(args.runs):  # alternating, so a drifting machine hits every config alike
        for i, (_, venv, model) in enumerate(configs):
            results[i].append(one_run(venv / "bin" / "python", model, f"/rb{run}_{i}",
                                      args.events))
    rclpy.shutdown()
    print("| install | model | site-packages MB | start-up s (median) | peak RSS MB (median) "
          "| events answered |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i, (name, venv, model) in enumerate(configs):
        runs = results[i]
        print(f"| {name} | {model.suffix} | {site_mb(venv):.0f} | "
              f"{statistics.median(r[0] for r in runs):.2f} | "
              f"{statistics.median(r[1] for r in runs):.0f} | "
              f"{sum(r[2] for r in runs)}/{args.events * len(runs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
