"""``grasp-success bench``: forward pass, seed ``model.predict`` and the live node, side by side."""

from __future__ import annotations

import argparse

from grasp_success_ros.cli.tools import add_card_mismatch_option, add_providers_option
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.params import OPENVINO_DEVICES
from grasp_success_ros.model.export import QUANTIZATIONS
from grasp_success_ros.model.runtimes import RUNTIMES


def _comma_list(choices: tuple[str, ...], what: str):
    """An argparse type: a comma-separated list drawn from ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        if not names or any(n not in choices for n in names):
            raise argparse.ArgumentTypeError(
                f"{what} are a comma-separated list of {', '.join(choices)}, not {text!r}")
        return names

    return parse


def _bench(args: argparse.Namespace) -> int:
    from grasp_success_ros.bench.config import BenchConfig, quick_config
    from grasp_success_ros.bench.harness import run_bench
    from grasp_success_ros.bench.results import write_json
    from grasp_success_ros.bench.table import format_table

    if args.runs is not None and args.runs < 1:
        raise ConfigError("--runs must be at least 1")
    if args.cameras is not None and args.cameras < 1:
        raise ConfigError("--cameras must be at least 1")
    options = dict(model=args.model, runtimes=args.runtime, runs=args.runs, events=args.events,
                   dds=not args.no_dds, quantize=args.quantize,
                   accuracy_data=args.accuracy_data, calibration=args.calibration,
                   providers=args.providers, cameras=args.cameras,
                   accept_card_mismatch=args.accept_card_mismatch,
                   openvino_device=args.openvino_device)
    if args.quick:
        cfg = quick_config(**options)
    else:
        cfg = BenchConfig(**{k: v for k, v in options.items() if v is not None})
    report = run_bench(cfg)
    print(format_table(report))
    print(f"bench took {report.wall_s:.0f} s")
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0


def add_bench_command(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark the forward pass, the seed's model.predict and the live node",
        description=__doc__)
    p.add_argument("--model", help="a .keras / .h5 / .onnx / .tflite model (default: a fresh "
                   "InceptionResNetV2 at 350 px, GAP head, random weights)")
    p.add_argument("--runtime", type=_comma_list(RUNTIMES, "runtimes"), default=("keras",),
                   help="keras, onnx, tflite, openvino (the ONNX export run by OpenVINO) or a "
                   "comma-separated list; the first is the one the headline numbers are for "
                   "(default keras)")
    add_card_mismatch_option(p)
    add_providers_option(p)
    p.add_argument("--openvino-device", choices=OPENVINO_DEVICES, default=None,
                   help="where the openvino runtime runs (default CPU)")
    p.add_argument("--runs", type=int, help="timed forward runs after warm-up (default 20)")
    p.add_argument("--events", type=int, help="grasp events per node configuration (default 15)")
    p.add_argument("--no-dds", action="store_true", help="skip the live-node measurements")
    p.add_argument("--cameras", type=int, help="also measure the node's peak RSS with this "
                   "many cameras (the cameras parameter) against one (target <= 1.2x)")
    p.add_argument("--quantize", type=_comma_list(QUANTIZATIONS, "quantizations"), default=(),
                   metavar="fp16,int8,bf16",
                   help="also time fp16 / int8 exports of each onnx / tflite runtime and the "
                   "bf16 variants of the keras and openvino runtimes (openvino bf16: the ONNX "
                   "export is checked with --check-openvino bf16 on the calibration images)")
    p.add_argument("--calibration", metavar="DIR", help="int8 calibration images, like the "
                   "robot's (default: 64 synthetic scenes)")
    p.add_argument("--accuracy-data", metavar="DIR",
                   help="labelled class folders: report the accuracy of every variant on them "
                   "(the cost of quantization; use a trained --model)")
    p.add_argument("--quick", action="store_true",
                   help="MobileNetV3-Small at 96 px, few runs, a short DDS phase")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.set_defaults(func=_bench)
