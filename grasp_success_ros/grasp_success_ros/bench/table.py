"""The bench report as Markdown: a column per variant, a row per measurement; a measurement
that was not taken is shown as "-"."""

from __future__ import annotations

from collections.abc import Callable

from grasp_success_ros.bench.config import (
    NODE_POLICIES,
    OVERHEAD_MS,
    STREAM_FORWARDS,
    TAIL_FACTOR,
    TARGETS,
)
from grasp_success_ros.bench.results import BenchReport, NodeTargets, Stats

MISSING = "-"


def show(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def passed(ok: bool | None) -> str:
    return MISSING if ok is None else "pass" if ok else "FAIL"


def _p50_p95(stats: Stats | None) -> str:
    if stats is None:
        return MISSING
    return f"{show(stats.p50)} / {show(stats.p95)}"


def format_table(report: BenchReport) -> str:
    """A Markdown table of the run, then the other measurements and the ratios."""
    return "\n".join([*_variant_rows(report), *_other_lines(report), "",
                      *_ratio_lines(report), *format_targets(report)])


def _variant_rows(report: BenchReport) -> list[str]:
    """The table: one column per variant whose forward pass was timed."""
    variants = list(report.forward)
    lines = [f"| measurement | {' | '.join(variants)} |", "| --- |" + " --- |" * len(variants)]

    def row(name: str, cell: Callable[[str], str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(v) for v in variants) + " |")

    batch = report.config.batch
    row("device", lambda v: report.forward[v].device)
    row("forward batch 1, p50 / p95 ms", lambda v: _p50_p95(report.forward[v].batch(1)))
    row(f"forward batch {batch}, p50 / p95 ms",
        lambda v: _p50_p95(report.forward[v].batch(batch)))
    for res in report.config.resolutions:
        for policy in NODE_POLICIES:
            row(f"event-to-verdict {policy} {res}, p50 / p95 ms",
                lambda v, p=policy, r=res: _e2v_cell(report, v, p, r))
    row("load, s", lambda v: show(report.forward[v].load_s, 2))
    row("export wall s / peak RSS MB (own process)", lambda v: _export_cell(report, v))
    row("other processes' CPU share during first_after events",
        lambda v: _other_cpu_cell(report, v))
    row("startup to active, s (first_after / n_after)", lambda v: " / ".join(
        show(_node_value(report, v, p, "startup_s")) for p in ("first_after", "n_after")))
    row("node peak RSS (VmHWM), MB", lambda v: show(_node_peak_rss(report, v), 0))
    return lines


def _e2v_cell(report: BenchReport, variant: str, policy: str, res: str) -> str:
    phase = report.phase(variant, policy, res)
    if phase is None:
        return MISSING
    net = phase.e2v_minus_wait(policy).p50
    return (f"{_p50_p95(phase.e2v_ms)} (-wait {show(net)}; "
            f"{phase.verdicts}/{phase.events})")


def _export_cell(report: BenchReport, variant: str) -> str:
    run = report.export.get(variant)
    if run is None:
        return MISSING
    return f"{show(run.wall_s)} / {show(run.peak_rss_mb, 0)}"


def _other_cpu_cell(report: BenchReport, variant: str) -> str:
    shares = [p.other_cpu_share if p is not None else None
              for p in (report.phase(variant, "first_after", r)
                        for r in report.config.resolutions)]
    if any(s is None for s in shares):
        return MISSING
    return ", ".join(f"{100 * s:.0f} %" for s in shares)


def _node_value(report: BenchReport, variant: str, policy: str, name: str) -> float | None:
    run = (report.node or {}).get(variant, {}).get(policy)
    return None if run is None else getattr(run, name)


def _node_peak_rss(report: BenchReport, variant: str) -> float | None:
    """The highest peak of the node configurations, known only once all were measured."""
    peaks = [_node_value(report, variant, p, "peak_rss_mb") for p in NODE_POLICIES]
    return None if any(p is None for p in peaks) else max(peaks)


def _other_lines(report: BenchReport) -> list[str]:
    """The measurements made once (seed predict, predict, bag-eval) and the accuracy."""
    lines = []
    seed = report.seed_predict_ms
    if seed is not None:
        lines.append(f"\nseed `model.predict` (keras, image load included): p50 "
                     f"{show(seed.with_image_load.p50)} ms, p95 "
                     f"{show(seed.with_image_load.p95)} ms; predict only p50 "
                     f"{show(seed.predict_only.p50)} ms")
    run = report.predict_process
    if run is not None:
        lines.append(f"`grasp-success predict` (own process, one image): "
                     f"{run.wall_s:.1f} s, peak RSS {show(run.peak_rss_mb, 0)} MB")
    runtime = report.summary.runtime if report.summary else MISSING
    for policy, bag in report.bag_eval.items():
        lines.append(f"bag-eval ({runtime}, {policy}, 640x480 bag): "
                     f"{bag.frames_per_s:.1f} frames/s judged, {bag.events_per_s:.2f} "
                     f"events/s")
    for name, acc in (report.accuracy or {}).items():
        change, dp = acc.accuracy_change_points, acc.max_abs_dp_vs_keras
        lines.append(f"accuracy {name}: {acc.accuracy:.4f} on {acc.images} images"
                     + ("" if change is None or dp is None else
                        f" ({change:+.2f} points vs keras, max |dP| {dp:.3g})"))
    return lines


def _ratio_lines(report: BenchReport) -> list[str]:
    """The ratios of the first runtime against their targets, then every runtime's."""
    s = report.summary
    if s is None:
        return []
    lines = [f"ratios ({s.runtime}):"]
    for k, v in s.ratios.items():
        target = TARGETS.get(k)
        lines.append(f"- {k}: {show(v, 2)}" + (f" (target <= {target})" if target else ""))
    for runtime, r in s.ratios_by_runtime.items():
        lines.append(f"- {runtime}: e2v_over_forward {show(r.e2v_over_forward, 2)}, "
                     f"e2v_over_seed_predict {show(r.e2v_over_seed_predict, 2)}, "
                     f"n5_over_n1 {show(r.n5_over_n1, 2)}")
    lines.append(f"- startup_s: {show(s.startup_s)} (target <= {TARGETS['startup_s']})")
    lines.append(f"- peak_rss_mb: {show(s.peak_rss_mb, 0)} "
                 f"(target <= {TARGETS['peak_rss_mb']:.0f})")
    if report.cameras is not None:
        lines.append(f"- node peak RSS, {report.cameras.cameras} cameras / 1: "
                     f"{show(report.cameras.rss_ratio, 2)} (target <= 1.2)")
    return lines


def format_targets(report: BenchReport) -> list[str]:
    """Issue 13's per-runtime targets as table rows."""
    lines = [f"\nnode targets (e2v - wait <= forward + {OVERHEAD_MS:.0f} ms, beside the camera "
             f"and quiet; p95 <= {TAIL_FACTOR} x p50; streaming n_after <= n-th frame + "
             f"{STREAM_FORWARDS} x forward):",
             "| runtime | forward p50 at start / quiet / beside camera | node's own forward p50 "
             "| e2v-wait p50 / p95 | overhead (beside camera / quiet) | tail | n_after streaming "
             "/ batched e2v p50 | n-th frame + 1.2 fwd | streaming |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    targets = report.summary.node_targets if report.summary else {}
    lines += [_target_row(r, t) for r, t in targets.items()]
    return lines


def _target_row(runtime: str, t: NodeTargets) -> str:
    return (f"| {runtime} | {show(t.forward_ms_p50)} / {show(t.forward_quiet_ms_p50)} / "
            f"{show(t.forward_beside_camera_ms_p50)} | {show(t.node_forward_ms_p50)}"
            f" | {show(t.overhead_e2v_minus_wait_ms_p50)}"
            f" / {show(t.overhead_e2v_minus_wait_ms_p95)} | {passed(t.overhead_ok)} / "
            f"{passed(t.overhead_ok_quiet)} | {passed(t.tail_ok)} | "
            f"{show(t.n_after_streaming_e2v_ms_p50)} / {show(t.n_after_batched_e2v_ms_p50)} | "
            f"{show(t.streaming_bound_ms)} | {passed(t.streaming_ok)} |")
