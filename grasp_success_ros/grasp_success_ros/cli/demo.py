"""``grasp-success demo``: the installed node judging a synthetic grasp stream over DDS."""

from __future__ import annotations

import sys
from pathlib import Path


def run_demo(model: Path, grasps: int, seed: int, width: int, height: int) -> int:
    import rclpy

    from grasp_success_ros.data.synth import grasp_stream
    from grasp_success_ros.evaluation.metrics import accuracy, seed_line
    from grasp_success_ros.ros.processes import installed_params_file, start_node, stop_node
    from grasp_success_ros.ros.rclpy_compat import settle_interrupt
    from grasp_success_ros.ros.stream_player import StreamPlayer

    print(f"starting grasp_success_node with {model} ...", flush=True)
    node = start_node(model, installed_params_file())
    rclpy.init()
    player = StreamPlayer()
    try:
        if not player.wait_for_node(180.0, alive=lambda: node.poll() is None):
            print("the node did not come up (see its log above)", file=sys.stderr)
            return 1
        print(f"node ready; playing {grasps} synthetic grasps at 30 Hz, {width}x{height}",
              flush=True)
        labels = player.play(grasp_stream(seed, grasps, width=width, height=height))
        results = player.wait_for_results(len(labels), timeout=30.0)
        verdicts = [r["verdict"] for r in results] + [None] * (len(labels) - len(results))
        for i, (truth, r) in enumerate(zip(labels, results, strict=False), 1):
            shown = {True: "SUCCESS", False: "FAILURE", None: "none"}[r["verdict"]]
            detail = r["error"] or f"confidence {r['confidence']:.3f}"
            mark = "ok" if r["verdict"] is truth else "WRONG"
            print(f"grasp {i:3d}: truth {'SUCCESS' if truth else 'FAILURE'}  verdict {shown:7s} "
                  f"{detail}  latency {r['latency_ms']:.0f} ms  {mark}")
        print(seed_line(labels, verdicts, noun="grasps"))
        print(f"answered {len(results)} of {len(labels)} events; "
              f"accuracy {accuracy(labels, verdicts):.3f}")
        return 0 if len(results) == len(labels) else 1
    except KeyboardInterrupt:  # before the player's executor shuts down (rclpy_compat)
        settle_interrupt(player.context)
        raise
    finally:
        player.close()
        rclpy.try_shutdown()
        stop_node(node)
