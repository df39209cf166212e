"""``grasp-success train | predict | evaluate | calibrate | export``: the seeds' tools as one
command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from grasp_success_ros.core.errors import ConfigError, TrainingInterrupted
from grasp_success_ros.model.export import FORMATS, QUANTIZATIONS
from grasp_success_ros.training.config import (
    TRAIN_OPTIONS,
    TrainConfig,
    add_options,
    given_options,
)


def _jsonable(value):
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def json_dump(data) -> str:
    """``data`` as the tools' indented, strict JSON (NaN and inf as null); cli/distill.py's
    report too."""
    return json.dumps(_jsonable(data), indent=1, allow_nan=False)


# --------------------------------------------------------------------------- train


def _train(args: argparse.Namespace) -> int:
    from grasp_success_ros.training.train import train

    # Options left unset take the preset's value, or TrainConfig's default.
    cfg = TrainConfig.from_options(given_options(args, TRAIN_OPTIONS))
    try:
        train(args.train_dir, args.valid_dir, args.model_out, cfg, extra_train=args.extra_train)
    except TrainingInterrupted as exc:
        print(f"grasp-success train: {exc}", file=sys.stderr)
        return 128 + exc.signal if exc.signal else 2  # 130 SIGINT, 143 SIGTERM, as a shell
    return 0


def _add_train(sub) -> None:
    """``train``: its folders, then every option of ``TrainConfig`` (``training/config``)."""
    p = sub.add_parser(
        "train", help="train a classifier from class folders (seed train.py)",
        description="Train from TRAIN_DIR and VALID_DIR, each with a success and a failure "
        "folder (succ/zon_desk, success/failure, pos/neg, ... or --success-class). Writes "
        "MODEL_OUT (.keras) and beside it its card, history CSV, accuracy/loss plots and "
        "TensorBoard logs.")
    p.add_argument("train_dir")
    p.add_argument("valid_dir")
    p.add_argument("model_out", help="output .keras file; its card is written beside it")
    p.add_argument("--extra-train", action="append", default=[], metavar="DIR",
                   help="another training folder (success and failure folders, either may be "
                   "empty), e.g. corrected frames of a --review-dir; repeatable")
    add_options(p, TRAIN_OPTIONS)
    p.set_defaults(func=_train)


# --------------------------------------------------------------------------- predict


def _load(args: argparse.Namespace, providers: tuple[str, ...] = (), onnx_runtime=None):
    from grasp_success_ros.model.classifier import GraspClassifier

    classifier, notes = GraspClassifier.from_path(
        args.model, allow_custom_code=args.allow_custom_code, providers=providers,
        onnx_runtime=onnx_runtime, accept_card_mismatch=args.accept_card_mismatch)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return classifier


def _fmt(args) -> str:
    return "json" if args.json else ("csv" if args.csv else "table")


def _predict(args: argparse.Namespace) -> int:
    from grasp_success_ros.evaluation.predict import (
        format_images,
        judged_exit_code,
        predict_images,
        predict_video,
        video_plot,
    )

    classifier = _load(args, args.providers, onnx_choice(args))
    if args.video:
        pred = predict_video(args.path, classifier, args.threshold, args.window, args.fraction,
                             args.threshold_failure)
        plot = Path(args.plot) if args.plot else Path(args.path).with_suffix(".frames.png")
        video_plot(pred, plot)
        if args.json:
            print(json_dump({**pred.to_dict(), "plot": str(plot)}))
        elif args.csv:
            print(pred.frames_csv())
        else:
            print(pred.summary())
            print(f"per-frame plot: {plot}")
        return 0
    rows = predict_images(args.path, classifier, args.threshold, args.threshold_failure)
    print(format_images(rows, _fmt(args)))
    return judged_exit_code(rows)



def _add_model_argument(p: argparse.ArgumentParser,
                        formats: str = ".keras, seed .h5, .onnx or .tflite") -> None:
    """The MODEL argument and its trust switch, alike in every command that loads one."""
    p.add_argument("model", help=f"{formats} model (card beside it)")
    p.add_argument("--allow-custom-code", action="store_true",
                   help="load a model that carries Python code (Lambda layers): trusted files only")
    add_card_mismatch_option(p)


def add_card_mismatch_option(p: argparse.ArgumentParser) -> None:
    """``--accept-card-mismatch`` (the node's accept_card_mismatch), alike in every command
    that loads a model."""
    p.add_argument("--accept-card-mismatch", action="store_true",
                   help="use a model whose card was written for another file (its recorded "
                   "SHA-256 or size differs), with a warning: the card's output meaning, "
                   "calibration and thresholds may not fit it")


def _bound(card, source: str):
    """A card rewritten for ``source`` (calibrate, evaluate --target-precision) records its
    digest; the other files it described stay only if it described this one (else they
    are another model's)."""
    from grasp_success_ros.model.digest import matches, recorded

    return recorded(card, [source], keep=matches(card, source))


def _providers(text: str) -> tuple[str, ...]:
    from grasp_success_ros.core.params import parse_providers

    try:
        return parse_providers(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_providers_option(p: argparse.ArgumentParser) -> None:
    """``--providers``: ONNX Runtime's execution providers for .onnx models (the node's
    onnx_providers), alike in every command that runs a model."""
    p.add_argument("--providers", type=_providers, default=(), metavar="LIST",
                   help=".onnx models: ONNX Runtime execution providers in order, e.g. "
                   "cuda,cpu or tensorrt (full names too); default: the best available of "
                   "TensorRT, CUDA, CPU; CPU is always the last fallback")


def add_onnx_runtime_options(p: argparse.ArgumentParser, precision: bool = True) -> None:
    """``--onnx-runtime`` and ``--openvino-device`` / ``--openvino-precision`` (the node's
    onnx_runtime, openvino_device, openvino_precision)."""
    from grasp_success_ros.core.params import ONNX_RUNTIMES, OPENVINO_DEVICES, PRECISIONS

    p.add_argument("--onnx-runtime", choices=ONNX_RUNTIMES, default="onnxruntime",
                   help=".onnx models: run them in ONNX Runtime (default) or OpenVINO (the "
                   "optional openvino extra)")
    p.add_argument("--openvino-device", choices=OPENVINO_DEVICES, default="CPU",
                   help="--onnx-runtime openvino: the device (default CPU)")
    if precision:
        p.add_argument("--openvino-precision", choices=PRECISIONS, default="fp32",
                       help="--onnx-runtime openvino: fp32 (default) or bf16 (needs the "
                       "card's parity record: export --check-openvino bf16; fp32 where the "
                       "device has no bf16, with a note saying so)")


def onnx_choice(args: argparse.Namespace):
    """The OnnxRuntimeChoice of ``add_onnx_runtime_options``' options."""
    from grasp_success_ros.core.params import OnnxRuntimeChoice

    return OnnxRuntimeChoice(args.onnx_runtime, args.openvino_device,
                             getattr(args, "openvino_precision", "fp32"))


def _add_threshold_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, default=None,
                   help="success when P(success) >= this (default: the card's thresholds)")
    p.add_argument("--threshold-failure", type=float, default=None,
                   help="with --threshold: failure when P(success) <= this, no verdict "
                   "(uncertain) in between (default: one threshold)")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify an image, a folder of images or a video",
                       description="Per image: file, verdict, P(success), confidence; a file "
                       "that cannot be judged gets a row with the reason. With "
                       "--video: every frame, decided by the video rule (success if more "
                       "than --fraction of the frames in the last --window say success).",
                       epilog="exit code: 0 every image judged, 1 some could not be (see "
                       "their rows), 2 none was (or an error, in one line)")
    p.add_argument("path", help="image file, folder (searched recursively) or video file")
    _add_model_argument(p)
    add_providers_option(p)
    add_onnx_runtime_options(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true")
    out.add_argument("--json", action="store_true")
    _add_threshold_option(p)
    p.add_argument("--video", action="store_true", help="PATH is a video file")
    p.add_argument("--window", type=float, default=0.2,
                   help="video: the last fraction of frames that decide (default 0.2)")
    p.add_argument("--fraction", type=float, default=0.5,
                   help="video: success if more than this share of them say success")
    p.add_argument("--plot", default=None,
                   help="video: per-frame plot PNG (default VIDEO.frames.png beside it)")
    p.set_defaults(func=_predict)


# --------------------------------------------------------------------------- evaluate


def _target_precision_card(args, ev, classifier):
    """The card with the thresholds chosen by ``--target-precision`` (one value: one
    threshold, as before; two: the failure threshold too); (card, choice, band)."""
    from grasp_success_ros.evaluation.evaluate import band_for_precision, threshold_for_precision

    targets = args.target_precision
    if len(targets) > 2:
        raise ConfigError("--target-precision takes one value (successes) or two (successes "
                          "and failures)")
    band = band_for_precision(ev, *targets) if len(targets) == 2 else None
    choice = band.success if band else threshold_for_precision(ev, targets[0])
    chosen = {"target_precision": choice.target, "precision": choice.precision,
              "recall": choice.recall, "test_dir": str(args.test_dir),
              "test_images": len(ev.truth)}
    if band:
        chosen.update(target_precision_failure=band.target_failure,
                      precision_failure=band.precision_failure,
                      recall_failure=band.recall_failure, coverage=band.coverage,
                      error_rate=band.error_rate)
    card = classifier.card.replace(
        threshold=choice.threshold, threshold_failure=band.threshold_failure if band else None,
        training={**classifier.card.training, "threshold_choice": chosen})
    return card, choice, band


def _evaluate(args: argparse.Namespace) -> int:
    from grasp_success_ros.evaluation.evaluate import (
        evaluate_folder,
        report_text,
        threshold_sweep,
        write_plots,
    )
    from grasp_success_ros.model.card import card_path_for

    if args.review_dir:
        from grasp_success_ros.evaluation.review import check_review_dir

        check_review_dir(args.review_dir)  # before the evaluation, not after it
    hand = _hand_events(args)  # refused before the (slow) evaluation
    classifier = _load(args, args.providers, onnx_choice(args))
    ev = evaluate_folder(args.test_dir, classifier, args.success_class, args.threshold,
                         threshold_failure=args.threshold_failure, one_class=True)
    sides = _hand_sides(ev, hand)
    choice = band = card_written = None
    if args.target_precision is not None:
        card, choice, band = _target_precision_card(args, ev, classifier)
        card_written = _bound(card, classifier.source).save(card_path_for(classifier.source))
    out_dir = Path(args.out_dir) if args.out_dir else \
        Path(classifier.source).with_name(Path(classifier.source).stem + ".eval")
    plots = write_plots(ev, out_dir, choice, band)
    review = _review_images(ev, out_dir, args.review_dir, args.review_all)
    sweep = threshold_sweep(ev)
    sheet = [p for p in [out_dir / "contact_sheet.png"] if p.is_file()]
    text = report_text(ev, sweep) + _hand_text(sides)
    report = _html_report(ev, out_dir, [*plots.values(), *sheet], text, args.test_dir)
    if args.json:
        data = {"seed_line": ev.seed_line(), "warnings": ev.warnings(), **ev.metrics(),
                "sweep": sweep, "review": review, "report": str(report),
                "plots": {k: str(v) for k, v in plots.items()},
                "images": _image_rows(ev, sides), "skipped_files": ev.skipped,
                **({"hand": sides[1]} if sides else {})}
        if choice is not None:
            data["threshold_choice"] = {**choice.__dict__, "card": str(card_written)}
        if band is not None:
            data["threshold_choice"].update(
                {k: v for k, v in band.__dict__.items() if k != "success"})
        for warning in data["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        print(json_dump(data))
        return 0
    print(text)
    print(f"plots: {', '.join(str(p) for p in plots.values())}")
    print(f"report: {report}")
    print(review["line"])
    if choice is not None:
        print(band.describe() if band else choice.describe())
        pair = f" and threshold_failure {band.threshold_failure:.4f}" if band else \
            " (one threshold)"
        print(f"wrote threshold {choice.threshold:.4f}{pair} into {card_written}")
    return 0


def _hand_events(args: argparse.Namespace):
    """With --hand-features: the hand witness (--hand-profile's rule, or --hand-model's
    card, refused for another hand) and the extract's events by bag; else None."""
    if args.hand_features is None:
        if args.hand_profile or args.hand_model:
            raise ConfigError("--hand-profile and --hand-model need --hand-features DIR")
        return None
    if not args.hand_profile:
        raise ConfigError("--hand-features needs --hand-profile NAME_OR_YAML (the hand the "
                          "features are of)")
    from grasp_success_ros.core.evidence import hand_witness
    from grasp_success_ros.data.hand_cards import load_hand_card
    from grasp_success_ros.data.hand_profiles import load_profile
    from grasp_success_ros.evaluation.witnesses import read_joint_events

    card = load_hand_card(args.hand_model) if args.hand_model else None
    witness = hand_witness(load_profile(args.hand_profile), card)
    return witness, read_joint_events(args.hand_features, witness)


def _hand_sides(ev, hand):
    """(the join, the side-by-side summary) of vision, joints and fused; None without a
    hand."""
    if hand is None:
        return None
    from grasp_success_ros.evaluation.witnesses import by_source, side_by_side

    sides = side_by_side(ev.paths, ev.p_success, hand[1], hand[0])
    return sides, by_source(ev.truth, sides, ev.threshold, ev.threshold_failure)


def _hand_text(sides) -> str:
    """The side-by-side block after the report ("" without a hand)."""
    if not sides:
        return ""
    from grasp_success_ros.evaluation.witnesses import hand_lines

    return "\n\n" + "\n".join(hand_lines(sides[1]))


def _image_rows(ev, sides) -> list[dict]:
    """Each image's truth and P(success); with a hand, its event and each source's P."""
    rows = [{"file": f, "truth": bool(t), "p_success": float(p)}
            for f, t, p in zip(ev.paths, ev.truth, ev.p_success, strict=True)]
    if sides:
        for row, event, pj, pf in zip(rows, sides[0].events, sides[0].p["joints"],
                                      sides[0].p["fused"], strict=True):
            row.update(event=None if event is None else {"bag": event.bag,
                                                         "event_id": event.event_id},
                       p_joints=None if event is None else float(pj), p_fused=float(pf))
    return rows


def _review_images(ev, out_dir: Path, review_dir: str | None, review_all: bool) -> dict:
    """The contact sheet of the mistakes in OUT_DIR and, with --review-dir, their export
    for a person to correct (``evaluation/review.py``)."""
    from grasp_success_ros.evaluation.review import (
        contact_sheet,
        counts,
        describe,
        export_review,
        file_cases,
        to_check,
    )

    cases = file_cases(ev.paths, ev.truth, ev.verdicts, ev.p_success,
                       include_correct=review_all and bool(review_dir))
    classes = (ev.success_class, ev.failure_class)
    sheet = out_dir / "contact_sheet.png"
    sheet.unlink(missing_ok=True)  # never leave an earlier run's sheet beside these plots
    written = [contact_sheet(cases, sheet, ev.threshold, classes)] if to_check(cases) else []
    if review_dir:
        export_review(cases, review_dir, ev.threshold, classes)
        written.append(Path(review_dir))
    return {"counts": counts(cases), "written": [str(p) for p in written],
            "line": describe(counts(cases), written)}


def _html_report(ev, out_dir: Path, figures: list[Path], text: str, test_dir: str) -> Path:
    """report.html beside the plots: the console report, the plots and every image."""
    from grasp_success_ros.core.errors import ImageConversionError
    from grasp_success_ros.data.preprocessing import load_image_rgb
    from grasp_success_ros.evaluation.report_html import ReportRow, write_report

    def image(path: str):
        try:
            return load_image_rgb(path)
        except ImageConversionError:
            return None

    rows = [ReportRow(Path(f).name, bool(t), v, float(p), f, image(f))
            for f, t, v, p in zip(ev.paths, ev.truth, ev.verdicts, ev.p_success, strict=True)]
    return write_report(out_dir, f"evaluate {test_dir}", text, figures, rows,
                        (ev.success_class, ev.failure_class), unit="image")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy and more on a labelled test folder",
                       description="The seed's line, per class counts and accuracy, confusion "
                       "matrix, precision/recall/F1, ROC AUC, calibration (ECE, Brier, log "
                       "loss before and after the card's), a threshold sweep, and plots "
                       "(per-image outputs, ROC, precision-recall, reliability, "
                       "risk-coverage).")
    p.add_argument("test_dir", help="folder with a success and a failure folder (or one of "
                   "them alone: the scores that need both classes are n/a)")
    _add_model_argument(p)
    add_providers_option(p)
    add_onnx_runtime_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object for machines")
    _add_threshold_option(p)
    p.add_argument("--target-precision", type=float, nargs="+", default=None,
                   metavar=("SUCCESS", "FAILURE"),
                   help="choose the lowest threshold whose precision on predicted successes "
                   "reaches SUCCESS on TEST_DIR and write it into the model card; with "
                   "FAILURE also the highest threshold_failure below it whose precision on "
                   "predicted failures reaches FAILURE (no verdict between the two)")
    p.add_argument("--out-dir", default=None,
                   help="where the plots and the contact sheet of the mistakes go (default "
                   "MODEL.eval/ beside the model)")
    p.add_argument("--review-dir", default=None, metavar="DIR",
                   help="copy the mistaken images into DIR/<label>/<kind of mistake>/ for a "
                   "person to correct (then train --extra-train DIR); DIR must be new or empty")
    p.add_argument("--review-all", action="store_true",
                   help="with --review-dir: also the correctly judged images (DIR/<label>/"
                   "correct/), so retraining sees a new kind of scene in both classes")
    p.add_argument("--success-class", default=None)
    g = p.add_argument_group("hand", "vision only, joints only and fused side by side")
    g.add_argument("--hand-features", default=None, metavar="DIR",
                   help="an extract OUT made with --hand-profile (or its _joints folder): "
                   "each image <bag>_<stamp>.png is joined to the latest event of its bag at "
                   "or before it, whose joint features give the joints' P")
    g.add_argument("--hand-profile", default=None, metavar="NAME_OR_YAML",
                   help="the hand the features are of (needed with --hand-features)")
    g.add_argument("--hand-model", default=None, metavar="CARD",
                   help="a hand card (train-hand): its joint model and fusion instead of "
                   "the profile's rule and the default fusion")
    p.set_defaults(func=_evaluate)


# --------------------------------------------------------------------------- calibrate


def _calibrate(args: argparse.Namespace) -> int:
    from grasp_success_ros.evaluation.evaluate import evaluate_folder, fit_calibration
    from grasp_success_ros.evaluation.metrics import calibration_line
    from grasp_success_ros.model.card import card_path_for

    classifier = _load(args)
    ev = evaluate_folder(args.data_dir, classifier, args.success_class)
    fitted = fit_calibration(ev.truth, ev.p_uncalibrated, str(args.data_dir))
    card = classifier.card.with_calibration(fitted)
    path = _bound(card, classifier.source).save(card_path_for(classifier.source))
    if args.json:
        print(json_dump({"card": str(path), "temperature": fitted.temperature,
                         "images": fitted.images, "at_bound": fitted.at_bound,
                         "threshold": card.threshold,
                         "threshold_failure": card.threshold_failure, **fitted.scores}))
        return 0
    print(f"temperature {fitted.temperature:.4g} fitted on {fitted.images} images of "
          f"{args.data_dir}")
    print(f"  before: {calibration_line(fitted.scores['before'])}")
    print(f"  after:  {calibration_line(fitted.scores['after'])}")
    if fitted.at_bound:
        print("warning: the temperature is at its limit: the set is (nearly) perfectly "
              "separated, so it says little about calibration; use more images")
    print(f"wrote the calibration into {path} (thresholds carried over: "
          f"{card.threshold:.4g}" + (f", {card.threshold_failure:.4g}"
                                     if card.threshold_failure is not None else "") + ")")
    return 0


def _add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the calibration of P(success) and write it "
                       "into the model card",
                       description="Fits temperature scaling on DATA_DIR (a success and a "
                       "failure folder the model was not trained on, e.g. the validation "
                       "set) and writes it into MODEL's card (a seed .h5 without one gets "
                       "one). The card's thresholds are carried over, so no verdict changes.")
    _add_model_argument(p)
    p.add_argument("data_dir", help="folder with a success and a failure folder")
    p.add_argument("--success-class", default=None)
    p.add_argument("--json", action="store_true", help="one JSON object for machines")
    p.set_defaults(func=_calibrate)


# --------------------------------------------------------------------------- export


def _export(args: argparse.Namespace) -> int:
    from grasp_success_ros.model.export import export_model

    if args.quantize == "int8" and not args.calibration:
        raise ConfigError("--quantize int8 needs --calibration DIR (images like the robot's)")
    if args.check_openvino and (args.format != "onnx" or args.quantize):
        raise ConfigError("--check-openvino bf16 checks a plain --format onnx export")
    result = export_model(args.model, args.format, args.quantize, args.calibration, args.out,
                          args.samples, args.allow_custom_code,
                          log=lambda s: print(s, file=sys.stderr),
                          accept_card_mismatch=args.accept_card_mismatch,
                          check_openvino=args.check_openvino)
    print(json_dump(result.__dict__) if args.json else result.summary())
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX or TFLite, with its card",
                       description="Writes MODEL.onnx / MODEL.tflite (MODEL.int8.tflite ... "
                       "when quantized; MODEL.bf16.keras for --format keras --quantize bf16) "
                       "and its card, and compares its outputs with the Keras model's.")
    _add_model_argument(p, ".keras or seed .h5")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--quantize", default=None, choices=QUANTIZATIONS,
                   help="fp16 / int8 for onnx and tflite; bf16 (the only one) for keras")
    p.add_argument("--calibration", default=None,
                   help="folder of images for int8 calibration (searched recursively)")
    p.add_argument("--samples", default=None,
                   help="folder of images for the parity check (default: the calibration "
                   "folder; random images are always added)")
    p.add_argument("--out", default=None, help="output file (default beside the model)")
    p.add_argument("--check-openvino", choices=("bf16",), default=None,
                   help="--format onnx: also run the file in OpenVINO bf16 and FP32 on the "
                   "samples and write the parity record into its card (what the openvino "
                   "runtime needs to serve bf16); needs a CPU with bf16")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_export)


def add_tool_commands(sub) -> None:
    """Add train, predict, evaluate, calibrate and export to the ``grasp-success``
    sub-parsers."""
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_calibrate(sub)
    _add_export(sub)
