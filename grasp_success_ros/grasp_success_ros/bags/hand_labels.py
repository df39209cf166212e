"""Labels from the hand (``extract --label-from joints``): an *unlabelled* recording's grasp
events sorted by what the hand's joints say, so that a lab labels hundreds of grasps by
checking only the cases where the camera disagrees.

Each event's frames (extract's window after it) are filed by the joints' verdict (the
profile's rule, or a hand card's joint model) under one band: success at P >= threshold,
failure at P <= threshold_failure, nothing in between. With a camera model the frames'
mean P(success) is judged with the same band (a witness counts only when it is sure):

    OUT/success/, OUT/failure/   the joints' verdict, the camera agreeing, unsure or absent
    OUT/_review/<bag>/           the joints and the camera disagree: the review loop's layout
                                 (``evaluation/review.py``), the joints' verdict as the label
                                 and the camera's as the verdict, so the person moves a frame
                                 whose label is wrong into the other class folder
    OUT/_to_review/              the joints unsure, or no joint state in the window: a person
                                 sorts these frames into OUT/success or OUT/failure
    OUT/proposals.csv, .json     every event: both witnesses' P, where it went and why

The underscore folders are skipped by ``train`` (``data/folders.class_folders``), so OUT
stays a training set; a review folder trains with ``--extra-train`` once checked.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from grasp_success_ros.bags.extract import (
    CLASSES,
    ExtractOptions,
    after_event,
    joint_features,
    kept_frames,
    write_frame,
)
from grasp_success_ros.bags.labels import labelled_session
from grasp_success_ros.bags.reader import BagEvent, frame_decoder, load_frames
from grasp_success_ros.bags.topics import BagTopics
from grasp_success_ros.core.errors import BagError, ConfigError
from grasp_success_ros.core.evidence import JointScorer, hand_witness
from grasp_success_ros.core.grasp_service import Scorer
from grasp_success_ros.core.policy import mean_rule
from grasp_success_ros.data.atomic import atomic_open, write_text
from grasp_success_ros.data.frame_names import frame_name
from grasp_success_ros.evaluation.review import ReviewCase, check_review_dir, export_review

TO_REVIEW = "_to_review"
REVIEW = "_review"
MANIFEST = "proposals"
FILED = ("success", "failure", "review", "to_review")
COLUMNS = ("bag", "event_id", "event_stamp", "filed", "proposed", "p_joints", "p_vision",
           "camera", "frames", "reason", "truth", "scene")


@dataclass(frozen=True)
class LabelOptions:
    """How the witnesses become labels: one band for both (module docstring); a hand card
    (``hand_model``, a path) for the joints instead of the profile's rule."""

    threshold: float = 0.7
    threshold_failure: float = 0.3
    hand_model: str = ""

    def validate(self) -> LabelOptions:
        if not 0.0 <= self.threshold_failure < self.threshold <= 1.0:
            raise ConfigError("labels need 0 <= threshold_failure < threshold <= 1 (a band)")
        return self

    def verdict(self, p: float | None) -> bool | None:
        """A witness's verdict under the band; None: unsure or no P."""
        return None if p is None else \
            mean_rule([p], self.threshold, self.threshold_failure).verdict


@dataclass
class Proposal:
    """One event: where its frames went and why (a manifest row)."""

    bag: str
    event_id: int
    event_stamp: float
    filed: str  # one of FILED
    proposed: str  # the joints' label: success, failure or "" (none)
    p_joints: float | None
    p_vision: float | None
    camera: str  # the camera's verdict: success, failure, "" (unsure or no model)
    reason: str
    frames: int = 0
    truth: bool | None = None  # the bag's own label where it has one (to measure, never used)
    scene: str = ""


def _word(verdict: bool | None) -> str:
    return "" if verdict is None else CLASSES[0] if verdict else CLASSES[1]


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3f}"


def file_event(p_joints: float | None, p_vision: float | None, opts: LabelOptions,
               has_camera: bool) -> tuple[str, str]:
    """(where an event's frames go, why): the joints decide, the camera can only send the
    event to review by disagreeing with them."""
    joints, camera = opts.verdict(p_joints), opts.verdict(p_vision)
    if p_joints is None:
        return "to_review", "joints: no joint state in the window"
    if joints is None:
        return "to_review", (f"joints unsure: P {p_joints:.3f} between "
                             f"{opts.threshold_failure:g} and {opts.threshold:g}")
    said = f"joints say {_word(joints)} (P {p_joints:.3f})"
    if camera is not None and camera != joints:
        return "review", f"{said}, camera says {_word(camera)} (P {p_vision:.3f})"
    seen = "no camera model" if not has_camera else "camera has no frame" \
        if p_vision is None else "camera agrees" if camera is not None else "camera unsure"
    return _word(joints), f"{said}; {seen}" + (f" (P {p_vision:.3f})" if p_vision is not None
                                                else "")


@dataclass
class Labeller:
    """What proposes the labels of a bag's events: the joints' scorer, the optional camera
    model and the options (built once per worker: ``LabelJob``)."""

    joints: JointScorer
    camera: Scorer | None
    opts: LabelOptions
    extract: ExtractOptions = field(default_factory=ExtractOptions)

    def camera_p(self, frames: Sequence[np.ndarray]) -> list[float]:
        """The camera's P(success) of each frame an event labels ([] without a model); the
        event's is their mean, as the node's mean rule over several frames."""
        if self.camera is None or not frames:
            return []
        p = self.camera.predict_prepared(self.camera.prepare(list(frames)))
        return [round(float(v), 6) for v in np.asarray(p, np.float64).reshape(-1)]


def labeller(topics: BagTopics, opts: LabelOptions, camera: Scorer | None = None,
             extract: ExtractOptions | None = None) -> Labeller:
    """The labeller for a hand's bags: its profile's rule, or the hand card
    (``opts.hand_model``) refused when trained for another hand."""
    if topics.hand is None:
        raise ConfigError("labels from the joints need the hand: give --hand-profile")
    card = None
    if opts.hand_model:
        from grasp_success_ros.data.hand_cards import load_hand_card

        card = load_hand_card(opts.hand_model)
    scorer = hand_witness(topics.hand.profile, card).scorer
    return Labeller(scorer, camera, opts.validate(), (extract or ExtractOptions()).validate())


def _counts() -> dict:
    return {**dict.fromkeys(FILED, 0), **{f"{k}_frames": 0 for k in FILED},
            "events": 0, "duplicates": 0, "bad_frames": 0}


def propose_bag(path: str | Path, out_dir: str | Path, topics: BagTopics, lab: Labeller,
                labels_csv: Path | None = None) -> dict:
    """One bag's events filed by the witnesses (module docstring); its counts, with its
    proposals (``Proposal`` as dicts) under "proposals". A bag without the hand's joint
    states is refused (``read_session``): silence is not a verdict."""
    out = Path(out_dir)
    bag, session, _ = labelled_session(Path(path), topics, labels_csv,
                                       lab.extract.label_tolerance_s)
    with bag:
        if not bag.topics[topics.hand.joint_states].count:
            raise BagError(f"bag {path}: the joint states topic {topics.hand.joint_states} "
                           "has no messages: no labels from the joints")
        review_dir = check_review_dir(out / REVIEW / bag.name)
        events = [ev for ev in session.events if ev.rejection is None]
        p_joints = [None if f is None else round(float(lab.joints(f)), 6)
                    for f in joint_features(session, events)]
        stamps = [f.stamp for f in session.frames]
        windows = [list(after_event(stamps, ev.stamp, lab.extract)) for ev in events]
        decode = frame_decoder(session, load_frames(
            session, {session.frames[i].index for w in windows for i in w}))
        staged = out / REVIEW / f".{bag.name}_frames"  # the disagreements until exported
        counts, cases, proposals, written = _counts(), [], [], set()
        try:
            for ev, pj, idx in zip(events, p_joints, windows, strict=True):
                kept = list(kept_frames(session, idx, lab.extract, decode, counts, written))
                written.update(ref.index for ref, _ in kept)
                proposal, found = _file(bag.name, ev, pj, kept, lab, out, staged, path)
                proposals.append(proposal)
                cases += found
                counts[proposal.filed] += 1
                counts[f"{proposal.filed}_frames"] += proposal.frames
            if cases:
                export_review(cases, review_dir, (lab.opts.threshold +
                                                  lab.opts.threshold_failure) / 2, CLASSES)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    counts["events"] = len(events)
    return {**counts, "proposals": [asdict(p) for p in proposals]}


def _file(bag_name: str, ev: BagEvent, p_joints: float | None, kept: list, lab: Labeller,
          out: Path, staged: Path, path: str | Path) -> tuple[Proposal, list[ReviewCase]]:
    """One event's frames written where the witnesses send them; its proposal and, for a
    disagreement, its review cases (frames staged, exported with the bag's others)."""
    frame_p = lab.camera_p([rgb for _, rgb in kept])
    p_vision = round(float(np.mean(frame_p)), 6) if frame_p else None
    filed, reason = file_event(p_joints, p_vision, lab.opts, lab.camera is not None)
    joints, camera = lab.opts.verdict(p_joints), lab.opts.verdict(p_vision)
    folder = {"to_review": out / TO_REVIEW, "review": staged}.get(filed, out / filed)
    cases = []
    for k, (ref, rgb) in enumerate(kept):
        name = frame_name(bag_name, ref.stamp, lab.extract.image_format)
        target = write_frame(folder / name, rgb)
        if filed == "review":
            cases.append(ReviewCase(
                name, f"{path} event {ev.event_id} frame {ref.stamp:.6f}: {reason}",
                bool(joints), camera, frame_p[k], _kind(joints), path=target))
    return Proposal(bag_name, ev.event_id, round(ev.stamp, 9), filed, _word(joints),
                    p_joints, p_vision, _word(camera), reason, len(kept), ev.label,
                    ev.scene), cases


def _kind(joints: bool | None) -> str:
    """The review loop's kind of a disagreement, the joints' verdict taken as the label:
    the camera said the other."""
    return "false_failure" if joints else "false_success"


@dataclass
class LabelJob:
    """``extract --label-from joints``'s work for an engine (``engines.py``): the camera
    model is ``camera`` when given (the local engine shares the caller's), else loaded from
    ``model_path`` where the job runs; ``camera`` is not pickled."""

    out_dir: str
    topics: BagTopics
    opts: LabelOptions
    extract: ExtractOptions
    labels_csv: Path | None = None
    model_path: str = ""
    camera: Scorer | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "camera": None}

    def open(self) -> Callable[[Path], tuple[dict, str]]:
        camera = self.camera
        if camera is None and self.model_path:
            from grasp_success_ros.model.classifier import GraspClassifier

            camera = GraspClassifier.from_path(self.model_path)[0]
        if camera is not None:
            from grasp_success_ros.bags.evaluate import LockedScorer

            camera = LockedScorer(camera)
        lab = labeller(self.topics, self.opts, camera, self.extract)

        def one(path: Path) -> tuple[dict, str]:
            counts = propose_bag(path, self.out_dir, self.topics, lab, self.labels_csv)
            return counts, (f"{counts['success']} success, {counts['failure']} failure, "
                            f"{counts['review']} to check, {counts['to_review']} to sort")

        return one


def label_bags(paths: Sequence[str | Path], out_dir: str | Path, topics: BagTopics,
               opts: LabelOptions, extract: ExtractOptions | None = None,
               camera: Scorer | None = None, model_path: str = "",
               labels_csv: Path | None = None, engine: str = "local", jobs: int = 1,
               address: str | None = None, on_bag_done=None
               ) -> tuple[dict[str, dict], dict[str, str]]:
    """Every bag's events filed (``propose_bag``) on an engine, then the manifest of all
    of them in OUT; ({bag name: counts and proposals}, {bag: error}) in bag order."""
    from grasp_success_ros.bags.engines import run_bags

    labeller(topics, opts)  # a bad option or hand card: one error before any bag is read
    job = LabelJob(str(Path(out_dir).resolve()), topics, opts.validate(),
                   (extract or ExtractOptions()).validate(),
                   Path(labels_csv).resolve() if labels_csv else None,
                   str(Path(model_path).resolve()) if model_path else "",
                   camera if engine == "local" else None)
    outcomes = run_bags(paths, job, engine, jobs, address, on_bag_done)
    per_bag = {Path(o.path).name: o.value for o in outcomes if o.error is None}
    if per_bag:
        write_manifest(Path(out_dir), per_bag)
    return per_bag, {o.path: o.error for o in outcomes if o.error is not None}


def write_manifest(out_dir: Path, per_bag: dict[str, dict]) -> tuple[Path, Path]:
    """OUT/proposals.csv (a row per event) and OUT/proposals.json (the rows and each bag's
    counts): what a lab reads to see what was proposed and why."""
    rows = [row for counts in per_bag.values() for row in counts["proposals"]]
    path = out_dir / f"{MANIFEST}.csv"
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "truth": "" if row["truth"] is None else int(row["truth"]),
                          **{k: "" if row[k] is None else row[k]
                             for k in ("p_joints", "p_vision")}} for row in rows)
    counts = {bag: {k: v for k, v in c.items() if k != "proposals"}
              for bag, c in per_bag.items()}
    json_path = write_text(out_dir / f"{MANIFEST}.json", json.dumps(
        {"counts": counts, "proposals": rows}, indent=2, allow_nan=False) + "\n")
    return path, json_path


def format_labels(per_bag: dict[str, dict]) -> str:
    """The console table: events (and frames) per place they went, per bag and in all."""
    head = f"{'bag':24s}" + "".join(f"{k:>11s}" for k in (*FILED, "events"))
    lines, total = [head], dict.fromkeys((*FILED, "events"), 0)
    for name, c in [*per_bag.items(), ("total", None)]:
        c = c or total
        lines.append(f"{name[:23]:24s}" + "".join(f"{c[k]:11d}" for k in (*FILED, "events")))
        for k in total:
            total[k] += c[k] if c is not total else 0
    frames = {k: sum(c[f"{k}_frames"] for c in per_bag.values()) for k in FILED}
    lines.append("frames: " + ", ".join(f"{k} {n}" for k, n in frames.items()))
    return "\n".join(lines)
