"""``grasp-success``: the command line around the core (synth, train, demo)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grasp_success_ros import __version__
from grasp_success_ros.errors import GraspSuccessError


def _synth(args: argparse.Namespace) -> int:
    from grasp_success_ros.synth import write_dataset

    counts = write_dataset(args.out_dir, args.images, seed=args.seed, height=args.height,
                           width=args.width)
    print(f"wrote {counts['success']} success and {counts['failure']} failure images "
          f"to {args.out_dir}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from grasp_success_ros.training import TrainConfig, train

    cfg = TrainConfig(backbone=args.backbone, input_size=args.input_size, head=args.head,
                      weights=None if args.weights == "none" else args.weights,
                      epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, optimizer=args.optimizer,
                      seed=args.seed, success_class=args.success_class)
    train(args.train_dir, args.valid_dir, args.model_out, cfg)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from grasp_success_ros.demo import run_demo

    return run_demo(Path(args.model), args.grasps, args.seed, args.width, args.height)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grasp-success", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="draw synthetic grasp scenes into success/ and failure/")
    p.add_argument("out_dir")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.set_defaults(func=_synth)

    p = sub.add_parser("train", help="train a classifier from class folders (seed train.py)")
    p.add_argument("train_dir")
    p.add_argument("valid_dir")
    p.add_argument("model_out", help="output .keras file; its card is written beside it")
    p.add_argument("--backbone", default="inception_resnet_v2",
                   choices=("inception_resnet_v2", "inception_v3", "mobilenet_v3_small"))
    p.add_argument("--head", default="gap", choices=("gap", "flatten"))
    p.add_argument("--input-size", type=int, default=350)
    p.add_argument("--weights", default="imagenet", help="imagenet | none | PATH")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--optimizer", default="rmsprop", choices=("rmsprop", "adam"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--success-class", default=None)
    p.set_defaults(func=_train)

    p = sub.add_parser("demo", help="run the installed node on a synthetic grasp stream")
    p.add_argument("--model", required=True)
    p.add_argument("--grasps", type=int, default=20)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraspSuccessError as exc:
        if args.debug:
            raise
        print(f"grasp-success {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
