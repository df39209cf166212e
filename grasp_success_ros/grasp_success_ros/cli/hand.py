"""``grasp-success train-hand``: a hand card from labelled recordings with the hand's joints.

The bags are judged by the one engine bag-eval and the node share (``bags/evaluate.py``),
so the camera's P and the hand's features the card is fitted on are exactly what the node
will compute; ``training/hand.py`` fits the joint model on ``--train`` and its calibration
and the fusion on ``--holdout`` (other seeds or sessions). The card is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from grasp_success_ros.cli.tools import add_card_mismatch_option, add_providers_option
from grasp_success_ros.core.errors import BagError, ConfigError
from grasp_success_ros.core.params import PARAMS, TRIGGER_TYPES

CARD_SUFFIX = ".hand.json"


def card_name(out: str | Path) -> str:
    """The fused result's name in every verdict: ``fitted:`` and the card file's stem
    (``models/allegro.hand.json`` -> ``fitted:allegro``)."""
    name = Path(out).name
    stem = name[: -len(CARD_SUFFIX)] if name.endswith(CARD_SUFFIX) else Path(name).stem
    return f"fitted:{stem}"


def _judged(bags: Sequence[str], option: str, classifier, policy, topics, args) -> list:
    """(record, truth) of every labelled event of ``bags``; BagError (one line, naming the
    option) for a bag that cannot be judged with the hand or has no ground truth."""
    from grasp_success_ros.bags.evaluate import evaluate_bags

    results, errors, sources = evaluate_bags(bags, classifier, policy, topics, jobs=args.jobs)
    if errors:
        path, error = next(iter(errors.items()))
        raise BagError(f"{option} {path}: {error}")
    unlabelled = [bag for bag, source in sources.items() if source is None]
    if unlabelled:
        raise BagError(f"{option} {unlabelled[0]}: no ground truth (no label topic, no "
                       f"labels CSV): train-hand needs labelled grasps")
    return [(r.record, bool(r.truth)) for r in results if r.truth is not None]


def _card_path(args: argparse.Namespace) -> None:
    """OUT after the last --holdout bag: argparse gives it to --holdout (a bag is never a
    .json file), so it is taken back from there."""
    if args.out is None and len(args.holdout) > 1 and args.holdout[-1].endswith(".json"):
        args.out = args.holdout.pop()
    if args.out is None:
        raise ConfigError("train-hand needs OUT.hand.json, the hand card to write")


def _train_hand(args: argparse.Namespace) -> int:
    from grasp_success_ros.bags.topics import BagTopics, HandTopics
    from grasp_success_ros.core.params import NodeConfig
    from grasp_success_ros.data.hand_cards import save_hand_card
    from grasp_success_ros.data.hand_profiles import load_profile
    from grasp_success_ros.model.classifier import GraspClassifier
    from grasp_success_ros.training.hand import HandRows, train_hand

    _card_path(args)
    profile = load_profile(args.hand_profile)
    classifier, notes = GraspClassifier.from_path(args.model, providers=args.providers,
                                                  accept_card_mismatch=args.accept_card_mismatch)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    policy = NodeConfig.from_values({"model_path": args.model}).policy(
        classifier.card.threshold, classifier.card.threshold_failure)
    topics = BagTopics(trigger_type=args.trigger_type, hand=HandTopics.of(profile))
    rows = {option: HandRows.of(_judged(bags, option, classifier, policy, topics, args), option)
            for option, bags in (("--train", args.train), ("--holdout", args.holdout))}
    fitted_on = {"train": [Path(b).name for b in args.train],
                 "holdout": [Path(b).name for b in args.holdout],
                 "vision_model": [str(args.model)]}
    card = train_hand(rows["--train"], rows["--holdout"], profile.hand, card_name(args.out),
                      fitted_on)
    path = save_hand_card(card, args.out)
    print(_metrics_line(card.metrics))
    print(f"wrote {path} ({profile.hand}, fusion {card.fusion.name}: weights "
          + ", ".join(f"{k} {v:.2f}" for k, v in card.fusion.weights.items())
          + f", bias {card.fusion.bias:.2f})")
    return 0


def _metrics_line(metrics: dict) -> str:
    """The held-out accuracies (the fusion's is in-sample there: it was fitted on them)."""
    def shown(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    return (f"{metrics['train_grasps']} train / {metrics['holdout_grasps']} holdout grasps; "
            f"holdout accuracy: vision {shown('holdout_accuracy_vision')}, joints "
            f"{shown('holdout_accuracy_joints')}, fused {shown('holdout_accuracy_fused')} "
            f"(the fusion was fitted on these: judge the card on other bags with bag-eval "
            f"--hand-model)")


def add_hand_command(sub) -> None:
    p = sub.add_parser("train-hand", help="a hand card (joint model + fusion) from labelled "
                                          "recordings with the hand's joints")
    p.add_argument("out", nargs="?", default=None, metavar="OUT.hand.json",
                   help="the hand card to write (it may follow --holdout's bags)")
    p.add_argument("--hand-profile", required=True, metavar="NAME_OR_YAML",
                   help="the hand (allegro_v4, allegro_v5, robotiq_2f85 or a YAML path)")
    p.add_argument("--model", required=True, help="the vision model the node serves beside "
                   "the hand (.keras, .onnx, .tflite; card beside it)")
    p.add_argument("--train", nargs="+", required=True, metavar="BAG",
                   help="labelled bags the joint model is fitted on")
    p.add_argument("--holdout", nargs="+", required=True, metavar="BAG",
                   help="other labelled bags (other seeds or sessions): the joint model's "
                   "calibration and the fusion are fitted on them")
    p.add_argument("--trigger-type", default=_default_trigger(), choices=TRIGGER_TYPES)
    add_card_mismatch_option(p)
    add_providers_option(p)
    p.add_argument("--jobs", type=int, default=2, help="bags judged in parallel")
    p.set_defaults(func=_train_hand)


def _default_trigger() -> str:
    return next(p.default for p in PARAMS if p.name == "trigger_type")
