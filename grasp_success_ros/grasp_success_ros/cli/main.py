"""``grasp-success``: the command line around the core (synth, train, demo)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grasp_success_ros import __version__
from grasp_success_ros.bags.writer import STORAGES
from grasp_success_ros.cli.bags import add_bag_commands, synth_bag
from grasp_success_ros.cli.bench import add_bench_command
from grasp_success_ros.cli.distill import add_distill_command
from grasp_success_ros.cli.hand import add_hand_command
from grasp_success_ros.cli.tools import add_tool_commands
from grasp_success_ros.core.errors import ConfigError, GraspSuccessError, missing_dependency
from grasp_success_ros.core.params import TRIGGER_TYPES
from grasp_success_ros.data.synth import OBJECT_KINDS
from grasp_success_ros.model.native_logs import native_notices_filtered
from grasp_success_ros.ros.dds_profile import use_large_image_profile

# Commands whose process publishes camera frames over DDS (see dds_profile.py).
IMAGE_PUBLISHERS = ("demo", "replay", "bench")


def _synth(args: argparse.Namespace) -> int:
    if args.bag is not None:
        return synth_bag(args)
    if args.out_dir is None:
        raise ConfigError("synth needs OUT_DIR (image folders) or --bag OUT (a rosbag2)")
    from grasp_success_ros.data.synth import write_dataset

    counts = write_dataset(args.out_dir, args.images, seed=args.seed, height=args.height,
                           width=args.width, objects=args.objects)
    print(f"wrote {counts['success']} success and {counts['failure']} failure images "
          f"to {args.out_dir}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from grasp_success_ros.cli.demo import run_demo

    return run_demo(Path(args.model), args.grasps, args.seed, args.width, args.height)


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="draw synthetic grasp scenes into success/ and failure/")
    p.add_argument("out_dir", nargs="?", default=None, metavar="OUT_DIR",
                   help="where the image folders go (not with --bag)")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--objects", default="colourful", choices=OBJECT_KINDS,
                   help="colourful (default) or white objects: a kind of scene a model "
                   "trained on the default scenes has not seen")
    g = p.add_argument_group("rosbag2 session (--bag)")
    g.add_argument("--bag", default=None, metavar="OUT",
                   help="write a grasp session as a rosbag2 (camera 30 Hz, events, labels)")
    g.add_argument("--grasps", type=int, default=20)
    g.add_argument("--storage", default="sqlite3", choices=STORAGES)
    g.add_argument("--trigger-type", default="empty", choices=TRIGGER_TYPES)
    g.add_argument("--fps", type=float, default=30.0)
    g.add_argument("--hand-profile", default=None, metavar="NAME_OR_YAML",
                   help="also the hand's joint states (and commands, tactile) from this "
                   "profile (allegro_v4, allegro_v5, robotiq_2f85 or a YAML path), the grasps "
                   "in the scene kinds where one witness cannot tell, with their kind and "
                   "slip labels")
    p.set_defaults(func=_synth)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grasp-success", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    add_tool_commands(sub)  # train, predict, evaluate, calibrate, export

    _add_synth(sub)

    p = sub.add_parser("demo", help="run the installed node on a synthetic grasp stream")
    p.add_argument("--model", required=True)
    p.add_argument("--grasps", type=int, default=20)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.set_defaults(func=_demo)
    add_bag_commands(sub)
    add_bench_command(sub)
    add_distill_command(sub)
    add_hand_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors of the package end it with one line and exit code 2, Ctrl-C
    with one line and 130 (an interrupted ``train`` says what it wrote: README)."""
    args = build_parser().parse_args(argv)
    if args.command in IMAGE_PUBLISHERS:
        use_large_image_profile()
    if args.debug:
        return _run(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_notices_filtered():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        try:
            return args.func(args)
        except ModuleNotFoundError as exc:  # the robot runtime leaves TensorFlow out
            raise missing_dependency(exc, args.command) or exc from None
    except GraspSuccessError as exc:
        if args.debug:
            raise
        print(f"grasp-success {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every file is written atomically: nothing is half done
        if args.debug:
            raise
        print(f"grasp-success {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
