"""``grasp-success bench --quick --json``: the whole bench runs against the colcon-built node
and reports every headline number; behaviour only, never wall-clock thresholds."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros

KEYS = ("forward_ms_p50", "seed_predict_ms_p50", "event_to_verdict_ms_p50",
        "event_to_verdict_ms_p95", "startup_s", "peak_rss_mb")
RATIOS = ("e2v_over_forward", "e2v_minus_wait_over_forward", "e2v_over_seed_predict",
          "n5_over_n1")


def test_quick_bench_reports_positive_numbers_load_time_predict_memory_and_others_cpu(
        ros_install, tmp_path):
    out = tmp_path / "bench.json"
    cmd = (f"source {shlex.quote(str(ros_install / 'setup.bash'))} && "
           f"{shlex.quote(sys.executable)} -m grasp_success_ros.cli.main bench --quick --runs 3 "
           f"--events 3 --json {shlex.quote(str(out))}")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(report[key], float | int) and report[key] > 0, (key, report[key])
    for key in RATIOS:
        assert report["ratios"][key] > 0, (key, report["ratios"])
    for policy in ("first_after", "n_after", "n_after_batched"):
        run = report["node"]["keras"][policy]
        assert run["640x480"]["events"] == 3 and run["640x480"]["verdicts"] >= 1, run
        assert run["startup_s"] > 0 and run["peak_rss_mb"] > 0
    assert report["bag_eval"]["first_after"]["frames_per_s"] > 0
    assert "| forward batch 1" in proc.stdout
    assert report["device"]["keras"] in ("CPU", "GPU:0") and "| device | " in proc.stdout
    assert report["load_s"]["keras"] > 0
    assert report["predict_process"]["peak_rss_mb"] > 0 and report["predict_process"]["wall_s"] > 0
    row = report["node"]["keras"]["first_after"]["640x480"]
    assert 0 <= row["other_cpu_share"] <= 1
    assert row["e2v_ms"]["max"] >= row["e2v_ms"]["p95"] >= row["e2v_ms"]["p50"]
    assert "peak RSS" in proc.stdout and "other processes" in proc.stdout
    targets = report["node_targets"]["keras"]
    assert targets["n_after_streaming_e2v_ms_p50"] > 0 and targets["n_after_batched_e2v_ms_p50"] > 0
    assert targets["streaming_bound_ms"] > targets["nth_frame_arrival_ms_p50"] > 0
    assert isinstance(targets["overhead_ok"], bool) and isinstance(targets["tail_ok"], bool)
    assert isinstance(targets["overhead_ok_quiet"], bool)
    beside = row["forward_beside_camera_ms"]  # timed between the events, in the same minutes
    assert beside["n"] == 3 and beside["p50"] > 0
    assert targets["forward_beside_camera_ms_p50"] == beside["p50"]
    assert row["forward_quiet_ms"]["n"] == 3  # camera paused just before each event
    assert targets["forward_quiet_ms_p50"] == row["forward_quiet_ms"]["p50"]
    assert row["node_stage_ms_p50"]["forward"] > 0  # the node's own, from its /diagnostics
    assert targets["node_forward_ms_p50"] == row["node_stage_ms_p50"]["forward"]
    assert "| keras |" in proc.stdout and "node targets" in proc.stdout


def test_bench_times_int8_next_to_fp32_and_measures_its_accuracy_cost(trained_model, tmp_path):
    from grasp_success_ros.data.synth import write_dataset

    data = tmp_path / "test_set"
    write_dataset(data, 60, seed=3)
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "grasp_success_ros", "bench", "--model", str(trained_model),
           "--runtime", "onnx", "--quantize", "int8", "--accuracy-data", str(data),
           "--no-dds", "--runs", "2", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["forward_ms"]) == {"onnx", "onnx-int8"}
    assert set(report["export"]) == {"onnx", "onnx-int8"}
    assert all(row["peak_rss_mb"] > 0 and row["wall_s"] > 0 for row in report["export"].values())
    assert report["ratios"]["onnx-int8_speedup_over_fp32"] > 0
    accuracy = report["accuracy"]
    assert set(accuracy) == {"keras", "onnx", "onnx-int8"}
    assert all(row["images"] == 60 for row in accuracy.values())
    assert accuracy["onnx"]["accuracy"] == accuracy["keras"]["accuracy"]
    assert accuracy["onnx"]["max_abs_dp_vs_keras"] < 1e-4
    assert "accuracy_change_points" in accuracy["onnx-int8"]
