"""``grasp-success distill``: a small, fast student from a big teacher, judged side by side
(accuracy on VALID_DIR and the forward time of both, measured by ``bench``'s code)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from grasp_success_ros.cli.tools import add_card_mismatch_option
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.data.atomic import write_text
from grasp_success_ros.training.config import (
    DISTILL_OPTIONS,
    STUDENT_DEFAULTS,
    TrainConfig,
    add_options,
    given_options,
)

if TYPE_CHECKING:
    from grasp_success_ros.bench.results import ForwardResult

FORWARD_BATCH = 8  # besides batch 1, the batch whose forward time the report holds too


def report_path(student_out: str | Path) -> Path:
    """Where the side-by-side report goes: ``student.keras`` -> ``student.distill.json``."""
    return Path(student_out).with_suffix(".distill.json")


def _side(ev, forward: ForwardResult, path: str, card) -> dict:
    return {"model": path, "backbone": card.backbone, "input_size": card.input_size,
            "accuracy": ev.metrics()["accuracy"], "images": len(ev.truth),
            "forward_ms_p50": forward.batch(1).p50, "forward": forward.to_json()}


def distill_report(result, teacher: str, student: str, valid_dir: str, runs: int) -> dict:
    """Both models' accuracy on VALID_DIR and forward time (batch 1 and 8, ``runs`` timed
    runs each, one after the other in this process), and the ratios between them."""
    from grasp_success_ros.bench.measure import bench_forward

    t_fwd = bench_forward(Path(teacher), runs, FORWARD_BATCH)
    s_fwd = bench_forward(Path(student), runs, FORWARD_BATCH)
    t = _side(result.teacher, t_fwd, teacher, result.teacher_card)
    s = _side(result.student, s_fwd, student, result.card)
    return {"valid_dir": str(valid_dir), "teacher": t, "student": s,
            "accuracy_change_points": 100.0 * (s["accuracy"] - t["accuracy"]),
            "forward_speedup": t["forward_ms_p50"] / s["forward_ms_p50"],
            "agreement": result.agreement(),
            "alpha": result.card.training["distilled_from"]["alpha"]}


def format_report(report: dict) -> str:
    """The side-by-side table printed after distilling."""
    t, s = report["teacher"], report["student"]
    rows = [("", "teacher", "student"),
            ("backbone", t["backbone"], s["backbone"]),
            ("input px", str(t["input_size"]), str(s["input_size"])),
            (f"accuracy ({t['images']} images)", f"{t['accuracy']:.4f}", f"{s['accuracy']:.4f}"),
            ("forward ms p50 (batch 1)", f"{t['forward_ms_p50']:.2f}",
             f"{s['forward_ms_p50']:.2f}")]
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>20}  {c:>20}" for a, b, c in rows]
    lines.append(f"student vs teacher: {report['accuracy_change_points']:+.2f} points, "
                 f"{report['forward_speedup']:.1f}x faster, same verdict on "
                 f"{100 * report['agreement']:.1f} % of the images")
    return "\n".join(lines)


def _distill(args: argparse.Namespace) -> int:
    from grasp_success_ros.cli.tools import json_dump
    from grasp_success_ros.training.distill import distill

    if args.runs < 1:
        raise ConfigError("--runs must be at least 1")
    cfg = TrainConfig(**{**STUDENT_DEFAULTS, **given_options(args, DISTILL_OPTIONS)})
    result = distill(args.teacher, args.train_dir, args.valid_dir, args.student_out, cfg,
                     args.alpha, args.unlabelled, args.allow_custom_code,
                     accept_card_mismatch=args.accept_card_mismatch)
    report = distill_report(result, args.teacher, args.student_out, args.valid_dir, args.runs)
    path = report_path(args.student_out)
    write_text(path, json_dump(report) + "\n")
    print(format_report(report))
    print(f"wrote {path}")
    return 0


def add_distill_command(sub) -> None:
    p = sub.add_parser(
        "distill", help="train a small, fast student on a big teacher's P(success)",
        description="Trains STUDENT_OUT (.keras, card beside it) on TEACHER's P(success) for "
        "TRAIN_DIR's images, blended with their class folder's label by --alpha, and for the "
        "images of --unlabelled folders (teacher only); picks its best epoch on VALID_DIR, "
        "then reports teacher and student accuracy on VALID_DIR and forward time side by "
        "side (printed, and STUDENT.distill.json beside the student). The student trains with "
        "Adam on a cosine schedule, without augmentation.",
        epilog="exit code: 0 done, 2 an error (in one line)")
    p.add_argument("teacher", help=".keras, seed .h5, .onnx or .tflite model (card beside it)")
    p.add_argument("train_dir", help="folder with a success and a failure folder")
    p.add_argument("valid_dir", help="labelled folder the student is picked and judged on")
    p.add_argument("student_out", help="output .keras file; its card is written beside it")
    p.add_argument("--unlabelled", action="append", default=[], metavar="DIR",
                   help="a folder of images without labels (searched recursively, e.g. "
                   "frames from extract): the teacher's P(success) is their target; repeatable")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="weight of the label in a labelled image's target: alpha * label + "
                   "(1 - alpha) * teacher (default 0.5; 0 = the teacher alone)")
    add_options(p, DISTILL_OPTIONS, STUDENT_DEFAULTS)
    p.add_argument("--runs", type=int, default=20,
                   help="timed forward runs per model and batch size (default 20)")
    p.add_argument("--allow-custom-code", action="store_true",
                   help="load a teacher that carries Python code (Lambda layers): trusted "
                   "files only")
    add_card_mismatch_option(p)
    p.set_defaults(func=_distill)
