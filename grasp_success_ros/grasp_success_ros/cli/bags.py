"""The bag subcommands of ``grasp-success``: bag-eval, extract, replay, and ``synth --bag``'s
writing."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grasp_success_ros.bags.engines import ENGINES
from grasp_success_ros.bags.topics import (
    DEFAULT_IMAGE_TOPIC,
    DEFAULT_LABEL_TOPIC,
    DEFAULT_TRIGGER_TOPIC,
    BagTopics,
    CameraTopicsMap,
    HandTopics,
)
from grasp_success_ros.cli.bag_params import add_policy_options, node_default
from grasp_success_ros.cli.tools import add_card_mismatch_option, add_providers_option
from grasp_success_ros.core.errors import BagError
from grasp_success_ros.core.params import PARAMS
from grasp_success_ros.data.atomic import write_text

NODE_DEFAULTS = {p.name: p for p in PARAMS}


def _default(name: str):
    return NODE_DEFAULTS[name].default


def _add_topic_options(p: argparse.ArgumentParser, labels: bool = True) -> None:
    """The topic options; default None (the node's topics, or with bag-eval's --params-file
    its cameras'), so that one given is told from one left out."""
    g = p.add_argument_group("topics (the node's defaults)")
    g.add_argument("--image-topic", default=None,
                   help=f"default: {DEFAULT_IMAGE_TOPIC} (with --params-file: its camera's)")
    g.add_argument("--trigger-topic", default=None,
                   help=f"default: {DEFAULT_TRIGGER_TOPIC} (with --params-file: its camera's)")
    g.add_argument("--trigger-type", default=None, choices=NODE_DEFAULTS["trigger_type"].choices,
                   help=node_default("trigger_type", "message type on the trigger topic, as "
                                     "the node's trigger_type"))
    if labels:
        g.add_argument("--label-topic", default=None,
                       help=f"std_msgs/Bool ground truth; the first one at or after each event "
                       f"(default: {DEFAULT_LABEL_TOPIC}; with cameras from --params-file, in "
                       f"each camera's namespace: /NAMESPACE{DEFAULT_LABEL_TOPIC})")
        g.add_argument("--labels", default=None, metavar="CSV",
                       help="ground truth CSV (columns label and event (1-based) or time (s)); "
                            "default: the label topic, else BAG/labels.csv or BAG.csv; one "
                            "camera's only")
        g.add_argument("--label-tolerance", type=float, default=0.5, metavar="S",
                       help="max distance of a CSV time from its event")


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the bags are processed")
    g.add_argument("--engine", default="local", choices=ENGINES,
                   help="local: threads here; ray: one Ray task per bag (pip install "
                        "'grasp_success_ros[ray]'); results are the same")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to use (ray://HEAD:10001, or auto for the one this "
                        "machine joined); default: start a local Ray instance")
    g.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="bags processed in parallel (local threads or Ray workers)")


def _progress(args, n: int, title: str):
    """The engines' ``on_bag_done``: a progress bar step per bag (None: no bar)."""
    from grasp_success_ros.cli.progress import Progress

    if args.no_progress:
        return None
    bar = Progress(n, title)
    return lambda name, note: bar.step(f"{name}: {note}")


def _report_errors(command: str, errors: dict[str, str], n_bags: int) -> int:
    """A bag's error is reported and the others' results kept; all failing is an error."""
    if not errors:
        return 0
    if len(errors) == n_bags:
        raise BagError("; ".join(errors.values()))
    for msg in errors.values():
        print(f"grasp-success {command}: {msg}", file=sys.stderr)
    return 2


def _topics(args) -> BagTopics:
    """extract's topics: the options, else the node's; the hand's with --hand-profile."""
    hand = None
    if getattr(args, "hand_profile", None):
        from grasp_success_ros.data.hand_profiles import load_profile

        hand = HandTopics.of(load_profile(args.hand_profile))
    return BagTopics(image=args.image_topic or DEFAULT_IMAGE_TOPIC,
                     trigger=args.trigger_topic or DEFAULT_TRIGGER_TOPIC,
                     label=getattr(args, "label_topic", None) or DEFAULT_LABEL_TOPIC,
                     trigger_type=args.trigger_type or _default("trigger_type"), hand=hand)


def _labels(args) -> Path | None:
    if args.labels is None:
        return None
    if len(args.bags) > 1:
        raise BagError("--labels takes one bag; put labels.csv beside each bag instead")
    if not Path(args.labels).is_file():
        raise BagError(f"labels file not found: {args.labels}")
    return Path(args.labels)


# ------------------------------------------------------------------------- bag-eval


def _bag_eval(args: argparse.Namespace) -> int:
    from grasp_success_ros.bags.evaluate import evaluate_bags, summarize
    from grasp_success_ros.cli.bag_params import eval_setup
    from grasp_success_ros.model.classifier import GraspClassifier

    setup = eval_setup(args)
    labels = _labels(args)
    if args.review_dir:
        from grasp_success_ros.evaluation.review import check_review_dir

        check_review_dir(args.review_dir)  # before the evaluation, not after it
    classifier, notes = GraspClassifier.from_path(args.model,
                                                  allow_custom_code=args.allow_custom_code,
                                                  providers=args.providers,
                                                  accept_card_mismatch=args.accept_card_mismatch)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    policy = setup.config.policy(classifier.card.threshold, classifier.card.threshold_failure)
    results, errors, sources = evaluate_bags(
        args.bags, classifier, policy, setup.topics, labels, args.label_tolerance,
        jobs=args.jobs, on_bag_done=_progress(args, len(args.bags), "bag-eval"),
        engine=args.engine, address=args.address,
        model_path=args.model, allow_custom_code=args.allow_custom_code,
        providers=args.providers, accept_card_mismatch=args.accept_card_mismatch,
        settings=setup.settings)
    summary = summarize(results, policy.threshold, policy.threshold_failure)
    summary["label_sources"] = sources
    _bag_eval_outputs(args, summary, results, errors, setup.topics, policy, classifier.card)
    return _report_errors("bag-eval", errors, len(args.bags))


def _bag_eval_outputs(args, summary: dict, results, errors: dict[str, str], topics,
                      policy, card) -> None:
    """The report (text or JSON) and, with --out / --review-dir, the files."""
    from grasp_success_ros.bags.report import format_report, to_json, write_csv, write_plots

    if args.json:
        for warning in summary["warnings"]:  # as evaluate --json: on stderr too
            print(f"warning: {warning}", file=sys.stderr)
        print(to_json(summary, results, errors))
    else:
        print(format_report(summary, results, per_event=not args.quiet))
    if args.out:
        out = Path(args.out)
        write_csv(out / "events.csv", results)
        write_text(out / "report.json", to_json(summary, results, errors) + "\n")
        plots = write_plots(out, summary, results, policy.threshold)
        if not args.json:
            print(f"wrote {out / 'events.csv'}, {out / 'report.json'}"
                  + "".join(f", {p}" for p in plots)
                  + ("" if plots else " (no plots: matplotlib is not installed)"))
    if args.out or args.review_dir:
        line = _review(args, results, topics, policy, card)
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.out:
        report = _html_report(args, results, summary, topics, card, policy.frame_stamp)
        print(f"report: {report}", file=sys.stderr if args.json else sys.stdout)


def _html_report(args, results, summary: dict, topics: BagTopics | CameraTopicsMap, card,
                 frame_stamp: str) -> Path:
    """report.html in --out: the report, the plots, the contact sheet and every event with
    the frame it was judged on."""
    from grasp_success_ros.bags.report import format_report
    from grasp_success_ros.bags.review import judged_frames
    from grasp_success_ros.evaluation.report_html import ReportRow, write_report

    out = Path(args.out)
    frames = judged_frames(results, args.bags, topics, frame_stamp)
    rows = [ReportRow(f"{r.bag} {r.camera + ' ' if r.camera else ''}event "
                      f"{r.record.event_id}", r.truth, r.record.verdict,
                      r.record.p_success, r.record.error or f"t = {r.record.event_stamp:.3f}",
                      frames.get((r.bag, r.record.event_id))) for r in results]
    figures = sorted(p for p in out.glob("*.png"))
    return write_report(out, "bag-eval " + " ".join(Path(b).name for b in args.bags),
                        format_report(summary, results, per_event=False), figures, rows,
                        (card.success_class, card.failure_class), unit="event")


def _review(args, results, topics: BagTopics | CameraTopicsMap, policy, card) -> str:
    """The contact sheet of the mistakes (in --out) and, with --review-dir, their frames
    exported for a person to correct (``bags/review.py``, ``evaluation/review.py``)."""
    from grasp_success_ros.bags.review import bag_cases
    from grasp_success_ros.evaluation.review import (
        contact_sheet,
        counts,
        describe,
        export_review,
        to_check,
    )

    cases, missing = bag_cases(results, args.bags, topics,
                               include_correct=args.review_all and bool(args.review_dir),
                               frame_stamp=policy.frame_stamp)
    threshold = policy.threshold
    classes = (card.success_class, card.failure_class)
    written = []
    if args.out:
        sheet = Path(args.out) / "contact_sheet.png"
        sheet.unlink(missing_ok=True)  # never leave an earlier run's sheet beside this report
        if to_check(cases):
            written.append(contact_sheet(cases, sheet, threshold, classes))
    if args.review_dir:
        export_review(cases, args.review_dir, threshold, classes)
        written.append(Path(args.review_dir))
    notes = [f"{n} {what}" for what, n in
             (("events without a frame", missing["no_frame"]),
              ("undecodable frames", missing["bad_frame"])) if n]
    return describe(counts(cases), written) + (f" (not shown: {', '.join(notes)})"
                                               if notes else "")


def _add_bag_eval(sub) -> None:
    p = sub.add_parser("bag-eval", help="judge every grasp event in rosbag2 recordings as the "
                                        "node would, against ground truth")
    p.add_argument("bags", nargs="+", metavar="BAG", help="bag folders (or .db3/.mcap files)")
    p.add_argument("--model", required=True, help=".keras model (card beside it) or seed .h5")
    p.add_argument("--allow-custom-code", action="store_true")
    add_card_mismatch_option(p)
    add_providers_option(p)
    _add_topic_options(p)
    add_policy_options(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write DIR/events.csv (every event), DIR/report.json and plots")
    p.add_argument("--review-dir", default=None, metavar="DIR",
                   help="write the frames of the mistakes into DIR/<label>/<kind of mistake>/ "
                   "for a person to correct (then train --extra-train DIR); DIR must be new "
                   "or empty. --out DIR also gets the contact sheet of the mistakes")
    p.add_argument("--review-all", action="store_true",
                   help="with --review-dir: also the frames judged right (DIR/<label>/correct/)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    _add_engine_options(p)
    p.add_argument("--quiet", action="store_true", help="no per-event lines")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_bag_eval)


# ------------------------------------------------------------------------- extract


def _extract(args: argparse.Namespace) -> int:
    from grasp_success_ros.bags.extract import (
        ExtractOptions,
        extract_bags,
        format_summary,
        write_summary,
    )

    opts = ExtractOptions(window_s=args.window, settle_s=args.settle_s, before_s=args.before,
                          before_gap_s=args.before_gap, dedup=args.dedup,
                          image_format=args.format,
                          label_tolerance_s=args.label_tolerance).validate()
    topics, labels = _topics(args), _labels(args)
    if args.label_from:
        return _extract_labels(args, topics, opts, labels)
    per_bag, errors = extract_bags(args.bags, args.out_dir, topics, opts, labels,
                                   engine=args.engine, jobs=args.jobs, address=args.address,
                                   on_bag_done=None if len(args.bags) == 1 else
                                   _progress(args, len(args.bags), "extract"))
    if per_bag:
        print(format_summary(per_bag))
        path = write_summary(Path(args.out_dir), per_bag)
        print(f"wrote {args.out_dir}/success and {args.out_dir}/failure; counts in {path}")
    return _report_errors("extract", errors, len(args.bags))


def _extract_labels(args: argparse.Namespace, topics: BagTopics, opts, labels) -> int:
    """``extract --label-from joints``: an unlabelled recording's events filed by the hand's
    joints, the camera's disagreements for review (``bags/hand_labels.py``)."""
    from grasp_success_ros.bags.hand_labels import (
        REVIEW,
        TO_REVIEW,
        LabelOptions,
        format_labels,
        label_bags,
    )

    if topics.hand is None:
        raise BagError("--label-from joints needs the hand: give --hand-profile NAME_OR_YAML")
    camera = None
    if args.model and args.engine == "local":
        from grasp_success_ros.model.classifier import GraspClassifier

        camera, notes = GraspClassifier.from_path(args.model,
                                                  allow_custom_code=args.allow_custom_code)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    lopts = LabelOptions(args.threshold, args.threshold_failure, args.hand_model or "")
    per_bag, errors = label_bags(args.bags, args.out_dir, topics, lopts, opts, camera,
                                 args.model or "", labels, args.engine, args.jobs,
                                 args.address, None if len(args.bags) == 1 else
                                 _progress(args, len(args.bags), "extract"))
    if per_bag:
        print(format_labels(per_bag))
        out = Path(args.out_dir)
        print(f"wrote {out}/success and {out}/failure (the joints' labels), {out}/{REVIEW}/BAG "
              f"(camera and joints disagree: check these), {out}/{TO_REVIEW} (joints unsure: "
              f"sort these); every event in {out}/proposals.csv")
    return _report_errors("extract", errors, len(args.bags))


def _add_label_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("labels from the hand (an unlabelled recording)")
    g.add_argument("--label-from", default=None, choices=("joints",),
                   help="propose labels from the hand's joints (needs --hand-profile): "
                   "frames by the joints' verdict into OUT_DIR/success|failure, the joints "
                   "unsure into OUT_DIR/_to_review, the camera (--model) disagreeing into "
                   "OUT_DIR/_review/BAG for a person to check; OUT_DIR/proposals.csv")
    g.add_argument("--hand-model", default=None, metavar="CARD",
                   help="a hand card (train-hand) whose joint model judges instead of the "
                   "profile's rule")
    g.add_argument("--model", default=None, metavar="MODEL",
                   help="the camera's model: its disagreements with the joints go to review "
                   "(without one, none are filed)")
    g.add_argument("--allow-custom-code", action="store_true")
    g.add_argument("--threshold", type=float, default=0.7,
                   help="a witness says success at P(success) >= this (both witnesses)")
    g.add_argument("--threshold-failure", type=float, default=0.3,
                   help="...and failure at P(success) <= this; between: unsure")


def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="class folders (success/, failure/) from labelled "
                                       "events in bags, for training")
    p.add_argument("bags", nargs="+", metavar="BAG")
    p.add_argument("out_dir", metavar="OUT_DIR")
    _add_topic_options(p)
    p.add_argument("--window", type=float, default=0.5, metavar="S",
                   help="frames stamped within S seconds after the event (+ settle)")
    p.add_argument("--settle-s", type=float, default=0.0)
    p.add_argument("--before", type=float, default=0.0, metavar="S",
                   help="also S seconds of frames before the grasp, as failures (0: off)")
    p.add_argument("--before-gap", type=float, default=0.3, metavar="S",
                   help="...ending this long before the event")
    p.add_argument("--dedup", type=float, default=1.0,
                   help="drop a frame whose 32x32 grey thumbnail differs from the previous "
                        "kept one by less than this (mean abs, 0-255); 0 keeps all")
    p.add_argument("--format", default="png", choices=("png", "jpg"))
    p.add_argument("--hand-profile", default=None, metavar="NAME_OR_YAML",
                   help="also each labelled event's joint features (the node's, over the "
                   "profile's window) into OUT_DIR/_joints/<bag>.csv")
    _add_label_options(p)
    _add_engine_options(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_extract)


# ------------------------------------------------------------------------- replay


def _replay(args: argparse.Namespace) -> int:
    import rclpy

    from grasp_success_ros.ros.replay import ReplayOptions, parse_remaps, replay

    opts = ReplayOptions(rate=args.rate, loop=args.loop, start_offset_s=args.start_offset,
                         clock=args.clock is not None, clock_rate_hz=args.clock or 100.0,
                         topics=args.topics or (), remaps=parse_remaps(args.remap),
                         wait_for=args.wait_for, wait_timeout_s=args.wait_timeout,
                         delay_s=args.delay).validate()
    rclpy.init(args=[])  # our options are argparse's, not ROS arguments
    try:
        log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
        sent = replay(args.bag, opts, log=log)
        if not args.quiet:
            print(f"replayed {sent} messages from {args.bag}")
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()
    return 0


def _add_replay(sub) -> None:
    p = sub.add_parser("replay", help="publish a bag's messages live at the recorded pace "
                                      "(without rosbag2; `ros2 bag play` on a ROS install)")
    p.add_argument("bag", metavar="BAG")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--loop", action="store_true")
    p.add_argument("--start-offset", type=float, default=0.0, metavar="S",
                   help="start S seconds into the bag")
    p.add_argument("--clock", type=float, nargs="?", const=100.0, default=None, metavar="HZ",
                   help="publish /clock (for use_sim_time) before every message and at HZ "
                        "(default 100)")
    p.add_argument("--topics", nargs="+", default=None, help="only these topics")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO")
    p.add_argument("--wait-for", action="append", default=[], metavar="TOPIC",
                   help="wait until TOPIC (as published) has a subscriber; repeatable")
    p.add_argument("--wait-timeout", type=float, default=60.0, metavar="S")
    p.add_argument("--delay", type=float, default=0.0, metavar="S",
                   help="sleep S seconds before the first message (after --wait-for), so "
                        "best-effort subscribers that match late miss nothing")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_replay)


# ------------------------------------------------------------------------- synth --bag


def synth_bag(args: argparse.Namespace) -> int:
    """``synth --bag OUT``: a synthetic grasp session as a rosbag2 instead of image folders
    (the synth command and its options are cli/main.py's)."""
    from grasp_success_ros.bags.writer import write_session

    s = write_session(args.bag, args.grasps, seed=args.seed, fps=args.fps,
                      height=args.height, width=args.width, storage=args.storage,
                      trigger_type=args.trigger_type, objects=args.objects,
                      **({"hand_profile": args.hand_profile} if args.hand_profile else {}))
    hand = f", {s.joint_states} joint states ({args.hand_profile})" if args.hand_profile else ""
    print(f"wrote {s.path} ({args.storage}): {s.frames} frames, {s.events} events "
          f"({s.successes} successful){hand}, {s.duration_s:.1f} s")
    return 0


def add_bag_commands(sub) -> None:
    _add_bag_eval(sub)
    _add_extract(sub)
    _add_replay(sub)
