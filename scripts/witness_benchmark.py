#!/usr/bin/env python3
"""More than one witness, measured in one run (issue 24, "Done when"): synthetic sessions with
the Allegro v4's joints for three disjoint seed sets (train, holdout, evaluation), a hand card
fitted with ``grasp-success train-hand``, then ``grasp-success bag-eval`` on the evaluation
bags with the card and ``--hold-watch``; a Markdown table of vision only, joints only and
fused (the default fusion with the profile's rule, and the fitted card), the coverage at
99 % precision with the uncertain band, plain scenes alone, and the hold watch against the
labelled carry slips.

    source .venv/bin/activate
    python scripts/witness_benchmark.py --model models/demo/demo.keras --out /tmp/witnesses

The default fusion's numbers are the same engine's, recomputed from each evaluation record's
joint features with the profile's rule (``core/joints.rule_p_success``) and
``DEFAULT_FUSION`` (what ``bag-eval --hand-profile allegro_v4`` without a card says), so the
evaluation bags are read once. The coverage at 99 % precision is a property of the
evaluation set's risk-coverage curve (the least confident verdicts left uncertain first).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# the Python package inside its ROS package folder, when run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "grasp_success_ros"))

from grasp_success_ros.cli import main as cli  # noqa: E402
from grasp_success_ros.core.fusion import DEFAULT_FUSION  # noqa: E402
from grasp_success_ros.core.joints import FEATURE_NAMES, HandFeatures, rule_p_success  # noqa: E402
from grasp_success_ros.evaluation.metrics import coverage_at_precision  # noqa: E402

HAND = "allegro_v4"
SETS = {"train": 1000, "holdout": 2000, "eval": 3000}  # first seeds: disjoint by thousands
PRECISION = 0.99
THRESHOLD = 0.5  # the demo model's card threshold, one threshold (no band of its own)


def write_bags(root: Path, grasps: dict[str, int], per_bag: int, size: tuple[int, int],
               workers: int) -> dict[str, list[Path]]:
    """Each set's bags (``per_bag`` grasps each, consecutive seeds), written in parallel."""
    from grasp_success_ros.bags.writer import write_session

    jobs = {}
    with ProcessPoolExecutor(workers) as pool:
        for name, n in grasps.items():
            for k in range(-(-n // per_bag)):
                path = root / f"{name}_{k:02d}"
                count = min(per_bag, n - k * per_bag)
                jobs[path] = (name, pool.submit(write_session, path, count, SETS[name] + k,
                                                height=size[1], width=size[0],
                                                hand_profile=HAND))
        for future in (f for _, f in jobs.values()):
            future.result()
    return {name: [p for p, (n, _) in jobs.items() if n == name] for name in grasps}


def run_cli(argv: list[str]) -> str:
    """One grasp-success command in this process; its stdout (exit code 0 or SystemExit)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"grasp-success {argv[0]} exited {code}")
    return out.getvalue()


def rule_fused(event: dict) -> tuple[float | None, float | None]:
    """(joints by the profile's rule, default fusion) of one evaluation record."""
    f = event.get("joint_features")
    if f is None:
        return None, event.get("p_vision")
    features = HandFeatures(*[np.nan if f[k] is None else f[k] for k in FEATURE_NAMES],
                            samples=f["samples"])
    p_joints = round(rule_p_success(features), 6)
    sources = {"vision": event["p_vision"], "joints": p_joints}
    return p_joints, DEFAULT_FUSION.p_success({k: v for k, v in sources.items()
                                               if v is not None})


def columns(events: list[dict]) -> dict[str, list]:
    """Per labelled event: truth, scene, and each source's P (None: it did not judge)."""
    rows = [e for e in events if e["truth"] is not None]
    rule = [rule_fused(e) for e in rows]
    return {"truth": [bool(e["truth"]) for e in rows], "scene": [e.get("scene", "") for e in rows],
            "vision": [e["p_vision"] for e in rows],
            "joints (rule)": [r[0] for r in rule], "fused (default)": [r[1] for r in rule],
            "joints (card)": [e["p_joints"] for e in rows],
            "fused (card)": [e["p_success"] for e in rows]}


def scores(cols: dict[str, list], source: str, only: str | None = None) -> dict:
    """Accuracy (no P: wrong) and coverage at 99 % precision of one source's P."""
    keep = [i for i, s in enumerate(cols["scene"]) if only is None or s == only]
    truth = np.array([cols["truth"][i] for i in keep])
    p = np.array([np.nan if cols[source][i] is None else cols[source][i] for i in keep])
    judged = np.isfinite(p)
    right = (p[judged] >= THRESHOLD) == truth[judged]
    return {"accuracy": float(right.sum() / len(truth)) if len(truth) else None,
            "coverage_99": coverage_at_precision(truth, p, THRESHOLD, PRECISION) or 0.0,
            "events": len(truth)}


SOURCES = ("vision", "joints (rule)", "fused (default)", "joints (card)", "fused (card)")


def table(cols: dict[str, list], holds: dict) -> tuple[str, dict]:
    """The Markdown table and the targets (name -> met)."""
    overall = {s: scores(cols, s) for s in SOURCES}
    plain = {s: scores(cols, s, "plain") for s in SOURCES}

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f} %"

    lines = ["| | " + " | ".join(SOURCES) + " |", "| --- |" + " --- |" * len(SOURCES),
             "| accuracy, all scenes | " + " | ".join(pct(overall[s]["accuracy"])
                                                      for s in SOURCES) + " |",
             f"| coverage at {PRECISION:.0%} precision | "
             + " | ".join(pct(overall[s]["coverage_99"]) for s in SOURCES) + " |",
             f"| accuracy, plain scenes ({plain['vision']['events']}) | "
             + " | ".join(pct(plain[s]["accuracy"]) for s in SOURCES) + " |"]
    lat = holds["latency_ms"]
    lines += ["", "| the hold watch (fitted card, --hold-watch) | |", "| --- | --- |",
              f"| carry slips reported LOST | {holds['slips_lost']} of {holds['slips']} "
              f"({pct(holds['slips_lost_share'])}; {holds['slips_with_hold']} had a hold) |",
              f"| LOST after the labelled slip onset, p50 / p95 / max | {lat['p50']} / "
              f"{lat['p95']} / {lat['max']} ms |",
              f"| LOST for holds with no slip | {holds['false_lost']} of "
              f"{holds['holds_without_slip']} |",
              f"| holds: ended | {holds['ended']} |"]
    return "\n".join(lines), targets(overall, plain, holds)


def targets(overall: dict, plain: dict, holds: dict) -> dict[str, bool]:
    """Issue 24's "Done when" numbers, for the fitted card (the default fusion beside)."""
    acc = {s: overall[s]["accuracy"] for s in SOURCES}
    best_plain = max(plain[s]["accuracy"] for s in ("vision", "joints (card)"))
    lat = holds["latency_ms"]
    return {
        "fused accuracy above each single source": acc["fused (card)"] > max(
            acc["vision"], acc["joints (card)"], acc["joints (rule)"]),
        "fused coverage at 99 % precision above vision alone":
            overall["fused (card)"]["coverage_99"] > overall["vision"]["coverage_99"],
        "plain scenes: fused at least as good as the best single source":
            plain["fused (card)"]["accuracy"] >= best_plain,
        ">= 95 % of carry slips reported LOST": (holds["slips_lost_share"] or 0) >= 0.95,
        "LOST p95 within 100 ms of the slip onset": lat["p95"] is not None and
            lat["p95"] <= 100.0,
        "no LOST for holds that end normally": holds["false_lost"] == 0,
    }


def machine() -> str:
    """The CPU model and the cores this run had."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor()
    import os

    return f"{model}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/demo/demo.keras")
    p.add_argument("--out", default="witness_benchmark", help="bags, card, reports")
    p.add_argument("--train", type=int, default=200, help="grasps")
    p.add_argument("--holdout", type=int, default=200, help="grasps")
    p.add_argument("--eval", type=int, default=400, help="grasps")
    p.add_argument("--per-bag", type=int, default=50, help="grasps per bag")
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--hold-camera-every", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="bags written in parallel")
    return p.parse_args()


def main() -> int:
    args = parse()
    out, t0 = Path(args.out), time.monotonic()
    bags = write_bags(out / "bags", {"train": args.train, "holdout": args.holdout,
                                     "eval": args.eval}, args.per_bag,
                      (args.width, args.height), args.workers)
    t_bags = time.monotonic() - t0
    card = out / f"{HAND}.hand.json"
    trained = run_cli(["train-hand", "--hand-profile", HAND, "--model", args.model,
                       "--train", *bags["train"], "--holdout", *bags["holdout"], card])
    t_train = time.monotonic() - t0 - t_bags
    report = json.loads(run_cli(["bag-eval", *bags["eval"], "--model", args.model,
                                 "--hand-profile", HAND, "--hand-model", card, "--hold-watch",
                                 "--hold-camera-every", args.hold_camera_every, "--json",
                                 "--no-progress"]))
    t_eval = time.monotonic() - t0 - t_bags - t_train
    (out / "eval_report.json").write_text(json.dumps(report))
    text, met = table(columns(report["events"]), report["summary"]["holds"])
    lines = [f"witness benchmark: {args.train}/{args.holdout}/{args.eval} grasps (train/"
             f"holdout/evaluation seeds {SETS['train']}+/{SETS['holdout']}+/{SETS['eval']}+), "
             f"{args.width}x{args.height}, {HAND}, vision {args.model}",
             f"machine: {machine()}",
             f"time: bags {t_bags:.0f} s, train-hand {t_train:.0f} s, bag-eval {t_eval:.0f} s",
             trained.strip(), "", text, "", "targets:"]
    lines += [f"- {'met' if ok else 'NOT met'}: {name}" for name, ok in met.items()]
    (out / "witness_benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
