"""The bench's typed results: what the table shows for a measurement that was not taken,
how a report survives its JSON, and the summary built from typed fields (no node, no model)."""

from __future__ import annotations

import json

from grasp_success_ros.bench.config import BenchConfig
from grasp_success_ros.bench.results import (
    BagEvalRun,
    BenchReport,
    CameraPhase,
    ConfigRecord,
    ForwardResult,
    Machine,
    NodeRun,
    ProcessRun,
    SeedPredict,
    Stats,
    Variant,
    encode,
    read_json,
    write_json,
)
from grasp_success_ros.bench.summary import summarise
from grasp_success_ros.bench.table import format_table

RES = "640x480"


def _phase(e2v: list[float], with_yardsticks: bool) -> CameraPhase:
    return CameraPhase(
        events=3, verdicts=len(e2v), errors=[], e2v_ms=Stats.of(e2v),
        wait_first_frame_ms=Stats.of([10.0] * len(e2v)),
        wait_last_frame_ms=Stats.of([140.0] * len(e2v)),
        e2v_minus_first_wait_ms=Stats.of([v - 10.0 for v in e2v]),
        e2v_minus_last_wait_ms=Stats.of([v - 140.0 for v in e2v]),
        forward_quiet_ms=Stats.of([20.0, 21.0, 22.0]) if with_yardsticks else None,
        forward_beside_camera_ms=Stats.of([25.0, 26.0, 27.0]) if with_yardsticks else None,
        node_stage_ms_p50={"forward": 24.0}, camera_fps=29.9, other_cpu_share=0.05)


def _report(node_rss: float | None = 600.0) -> BenchReport:
    """keras and its int8 variant timed; the node ran keras first_after and n_after only."""
    forward = {"keras": ForwardResult(1.5, "CPU", {1: Stats.of([30.0, 32.0]),
                                                    5: Stats.of([120.0])}),
               "onnx-int8": ForwardResult(0.2, "CPUExecutionProvider",
                                          {1: Stats.of([10.0]), 5: Stats.of([40.0])})}
    node = {"keras": {
        "first_after": NodeRun(policy="first_after", log="a.log", startup_s=2.0,
                               subscribed_s=2.1, phases={RES: _phase([50.0, 60.0], True)},
                               peak_rss_mb=node_rss),
        "n_after": NodeRun(policy="n_after", log="b.log", startup_s=2.5,
                           error="node did not subscribe")}}
    report = BenchReport(
        machine=Machine(cpu="test cpu", cores=2, avx512f=True, load_avg=[0.5, 0.4, 0.3],
                        python="3.11"),
        config=ConfigRecord(model="m.keras", runtimes=["keras"], providers=[],
                            openvino_device="CPU", runs=2, batch=5, events_per_config=3,
                            fps=30.0, cameras=1, resolutions=[RES]),
        variants={"keras": Variant("keras"), "onnx-int8": Variant("onnx", "int8")},
        export={"onnx-int8": ProcessRun(wall_s=3.0, peak_rss_mb=None, log="e.log")},
        forward=forward,
        bag_eval={"first_after": BagEvalRun(events=20, frames_judged=20, wall_s=2.0,
                                            events_per_s=10.0, frames_per_s=10.0)},
        seed_predict_ms=SeedPredict(with_image_load=Stats.of([80.0]),
                                    predict_only=Stats.of([70.0])),
        node=node, wall_s=12.0)
    report.summary = summarise(report, "keras", BenchConfig(model="m.keras",
                                                            resolutions=((640, 480),)))
    return report


def _cells(table: str, row: str) -> list[str]:
    line = next(ln for ln in table.splitlines() if ln.startswith(f"| {row}"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_a_measurement_not_taken_is_shown_as_a_dash():
    table = format_table(_report())
    assert _cells(table, "event-to-verdict n_after 640x480") == ["-", "-"]  # node failed
    assert _cells(table, "event-to-verdict first_after 640x480")[1] == "-"  # int8 not run
    assert _cells(table, "export wall s / peak RSS MB") == ["-", "3.0 / -"]
    assert _cells(table, "startup to active, s") == ["2.0 / 2.5", "- / -"]


def test_the_node_peak_is_shown_only_when_every_configuration_measured_it():
    assert _cells(format_table(_report()), "node peak RSS") == ["-", "-"]


def test_measured_cells_show_p50_p95_the_wait_and_the_verdict_count():
    table = format_table(_report())
    assert _cells(table, "event-to-verdict first_after 640x480")[0] == \
        "55.0 / 59.5 (-wait 45.0; 2/3)"
    assert _cells(table, "device") == ["CPU", "CPUExecutionProvider"]


def test_a_quantized_variant_is_known_by_its_precision_not_its_name():
    variant = Variant("openvino", "bf16")
    assert variant.quantized and variant.name == "openvino-bf16"
    assert variant.fp32 == Variant("openvino") and not variant.fp32.quantized
    summary = _report().summary
    assert summary.best_fp32_runtime == "keras"  # the int8 variant is faster, but not FP32
    assert summary.ratios["onnx-int8_speedup_over_fp32"] is None  # no onnx FP32 timed


def test_the_summary_reads_the_first_runtimes_node_and_leaves_the_rest_none():
    summary = _report().summary
    assert summary.event_to_verdict_ms_p50 == 55.0 and summary.startup_s == 2.5
    assert summary.five_frame_event_to_verdict_ms_p50 is None
    assert summary.ratios["n5_over_n1"] is None
    targets = summary.node_targets["keras"]
    assert targets.forward_beside_camera_ms_p50 == 26.0 and targets.overhead_ok is False
    assert targets.streaming_ok is None


def test_a_report_survives_its_json(tmp_path):
    report = _report()
    write_json(report, tmp_path / "bench.json")
    assert read_json(tmp_path / "bench.json") == report


def test_the_json_keeps_the_layout_its_readers_know(tmp_path):
    write_json(_report(), tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["forward_ms"]["keras"]["batch1"]["p50"] == 31.0
    assert data["load_s"] == {"keras": 1.5, "onnx-int8": 0.2}
    assert data["device"]["onnx-int8"] == "CPUExecutionProvider"
    run = data["node"]["keras"]["first_after"]
    assert run[RES]["e2v_ms"]["n"] == 2 and run["startup_s"] == 2.0
    assert "error" not in run and data["node"]["keras"]["n_after"]["error"]
    assert "forward_quiet_ms" in run[RES] and "accuracy" not in data
    assert data["event_to_verdict_ms_p50"] == 55.0 and data["runtime"] == "keras"
    assert data["ratios"]["e2v_over_forward"] == 55.0 / 31.0
    assert data["variants"]["onnx-int8"] == {"runtime": "onnx", "precision": "int8"}


def test_nothing_timed_is_stats_of_none():
    assert encode(Stats.of([])) == {"n": 0, "p50": None, "p95": None, "mean": None,
                                    "max": None}
