"""A one-minute soak in the suite: 1280x720 frames at 30 Hz, an event every 2 s; every event
answered exactly once and the node's memory flat after warm-up (scripts/soak.py runs the
same loop for 10 minutes)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import rclpy
import rosnode
from conftest import REPO

from grasp_success_ros.ros.stream_player import StreamPlayer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# The 90-frame buffer of 2.7 MB frames (250 MB) and the allocator settle within about 30 s
# on 2 busy cores; memory is compared from then on.
SECONDS, WARMUP_S = 70.0, 35.0


def load_soak():
    spec = importlib.util.spec_from_file_location("soak", REPO / "scripts" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module
    spec.loader.exec_module(module)
    return module


def test_one_minute_of_hd_frames_and_events(ros_install, trained_model, tmp_path):
    soak = load_soak()
    log = tmp_path / "node.log"
    # rosnode.start runs `bash -c "source ... && exec node"`: after the exec the Popen pid is
    # the node itself.
    proc = rosnode.start(ros_install, trained_model, log, "-r", "__ns:=/soak")
    rclpy.init()
    player = StreamPlayer(name="soak_player", namespace="/soak")
    try:
        assert player.wait_for_node(180.0, alive=lambda: proc.poll() is None), log.read_text()
        report = soak.run_soak(player, proc.pid, SECONDS, 1280, 720, event_period=2.0,
                               rss_period=1.0)
        print("\n" + report.summary(WARMUP_S))
        assert proc.poll() is None, log.read_text()[-3000:]
        assert report.events >= 25
        assert len(report.records) == report.events, report.summary(WARMUP_S)
        assert sorted(report.answered_ids.values()) == [1] * report.events
        # Failure records (no_fresh_frame when best-effort HD frames are dropped on a busy
        # machine: here the test itself renders 1280x720 frames on the same 2 cores) are
        # answers; silence is not. How many verdicts is a speed question (BENCHMARKS.md).
        assert report.verdicts > 0, report.summary(WARMUP_S)
        print(report.summary(WARMUP_S))
        early, late = report.peaks_after(WARMUP_S)
        assert late <= early * 1.05 + 10.0, report.summary(WARMUP_S)
    finally:
        player.close()
        rclpy.try_shutdown()
        assert rosnode.stop(proc) == 0, log.read_text()[-3000:]
