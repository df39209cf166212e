#!/usr/bin/env python3
"""The review loop on synthetic scenes, with its variants: README "The review loop" table.

A model trained on colourful objects only meets white ones (``synth --objects white``); a
session of them is reviewed (``evaluate --review-dir``, with and without ``--review-all``) and
a model is fine-tuned from the deployed model's backbone on the old images plus each review
folder, and without one (the control).  Mistakes are counted on other white-object images
and on colourful ones.  ``test/test_review.py`` runs the ``--review-all`` row as a test.

    python scripts/review_loop.py /tmp/loop models/demo/demo.keras --seeds 0 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grasp_success_ros.cli import main as cli  # noqa: E402
from grasp_success_ros.data.synth import write_dataset  # noqa: E402
from grasp_success_ros.model.loading import load_model  # noqa: E402
from grasp_success_ros.training.fitting import backbone_of  # noqa: E402

SIZE = {"height": 72, "width": 96}


def run(*argv) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main([str(a) for a in argv])
    if code:
        raise SystemExit(f"grasp-success {argv[0]} failed:\n{buf.getvalue()}")
    return buf.getvalue()


def mistakes(model: Path, folder: Path, root: Path) -> str:
    c = json.loads(run("evaluate", folder, model, "--out-dir", root / "scratch", "--json"))[
        "confusion"]
    return f"false failures {c['fn']:3d}, false successes {c['fp']:3d}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="work folder (emptied)")
    ap.add_argument("model", type=Path, help="deployed model: MobileNetV3-Small at 96 px")
    ap.add_argument("--seeds", nargs="+", default=["0"])
    args = ap.parse_args()
    root = args.root
    shutil.rmtree(root, ignore_errors=True)
    write_dataset(root / "old", 300, seed=11, **SIZE)
    write_dataset(root / "valid", 100, seed=12, **SIZE)
    write_dataset(root / "session", 400, seed=13, objects="white", **SIZE)
    write_dataset(root / "later", 200, seed=14, objects="white", **SIZE)
    weights = root / "backbone.weights.h5"
    backbone_of(load_model(args.model).model).save_weights(weights)
    run("evaluate", root / "session", args.model, "--out-dir", root / "ev",
        "--review-dir", root / "mistakes")
    run("evaluate", root / "session", args.model, "--out-dir", root / "ev",
        "--review-dir", root / "all", "--review-all")
    print(f"deployed: white {mistakes(args.model, root / 'later', root)}; colourful "
          f"{mistakes(args.model, root / 'valid', root)}", flush=True)
    for seed in args.seeds:
        for name, extra in (("control", []), ("mistakes", ["--extra-train", root / "mistakes"]),
                            ("review-all", ["--extra-train", root / "all"])):
            out, start = root / f"{name}_{seed}.keras", time.monotonic()
            run("train", root / "old", root / "valid", out, *extra, "--backbone",
                "mobilenet_v3_small", "--input-size", 96, "--weights", weights,
                "--freeze-backbone", "no", "--epochs", 2, "--learning-rate", "1e-3",
                "--optimizer", "adam", "--augment", "none", "--no-early-stopping",
                "--no-tensorboard", "--quiet", "--seed", seed)
            print(f"{name:10s} seed {seed} ({time.monotonic() - start:.0f} s): white "
                  f"{mistakes(out, root / 'later', root)}; colourful "
                  f"{mistakes(out, root / 'valid', root)}", flush=True)


if __name__ == "__main__":
    main()
