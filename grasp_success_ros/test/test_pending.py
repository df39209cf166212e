"""The node's bookkeeping under real threads: pending events and answer counts stay exact
while the camera, trigger, worker and diagnostics threads use them at once; streaming
n_after gives the records of the batched way."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from grasp_success_ros.core.errors import GraspSuccessError
from grasp_success_ros.core.judge import (
    Frame,
    GraspEvent,
    GraspRecord,
    Judgement,
    judge_batch,
    judge_selected,
)
from grasp_success_ros.core.pending import AnswerStats, FrameScores, PendingEvents, StageTimes
from grasp_success_ros.core.policy import PolicyConfig, frames_so_far, select_frames
from grasp_success_ros.data.synth import render_scene

PRODUCERS = 8
EVENTS_EACH = 2000


def record(ok: bool, latency_ms: float) -> GraspRecord:
    return GraspRecord(event_id=1, event_stamp=0.0, verdict=True if ok else None,
                       confidence=None, p_success=None, frame_stamps=[], frame_p_success=[],
                       latency_ms=latency_ms, error=None, error_code=None, threshold=0.5,
                       policy="first_after")


def test_events_added_by_many_threads_are_each_taken_exactly_once():
    pending = PendingEvents()
    start = threading.Barrier(PRODUCERS + 1)
    producers_done = threading.Event()
    taken: list[GraspEvent] = []
    counts_seen: list[tuple[int, int]] = []

    def produce(worker: int) -> None:
        start.wait()
        for i in range(EVENTS_EACH):
            pending.add(GraspEvent(worker * EVENTS_EACH + i, 0.0))

    def take() -> None:
        start.wait()
        while True:
            done = producers_done.is_set()
            for event in pending.snapshot():
                assert pending.remove(event)
                taken.append(event)
            counts_seen.append((len(taken), len(pending)))
            if done and not pending:
                return

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(PRODUCERS)]
    taker = threading.Thread(target=take)
    for t in [*threads, taker]:
        t.start()
    for t in threads:
        t.join()
    producers_done.set()
    taker.join(timeout=60.0)
    assert not taker.is_alive()
    ids = sorted(e.event_id for e in taken)
    assert ids == list(range(PRODUCERS * EVENTS_EACH))
    assert all(t + p <= PRODUCERS * EVENTS_EACH for t, p in counts_seen)
    assert len(pending) == 0 and not pending


def test_an_event_is_removed_once_and_a_second_removal_says_so():
    pending = PendingEvents()
    event = GraspEvent(1, 0.0)
    pending.add(event)
    assert pending and len(pending) == 1
    assert pending.snapshot() == [event]
    assert pending.remove(event) is True
    assert pending.remove(event) is False
    assert not pending


def test_answer_counts_from_many_threads_add_up_exactly():
    stats = AnswerStats()
    start = threading.Barrier(PRODUCERS)

    def answer(worker: int) -> None:
        start.wait()
        for i in range(EVENTS_EACH):
            stats.count(record(ok=(worker + i) % 2 == 0, latency_ms=float(i)))

    threads = [threading.Thread(target=answer, args=(w,)) for w in range(PRODUCERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = stats.as_dict()
    assert counts["verdicts"] == counts["failures"] == PRODUCERS * EVENTS_EACH // 2
    assert counts["last_latency_ms"] == EVENTS_EACH - 1


def test_answer_counts_start_at_zero_with_no_latency():
    counts = AnswerStats().as_dict()
    assert counts["verdicts"] == counts["failures"] == 0
    assert counts["last_latency_ms"] != counts["last_latency_ms"]  # NaN until an answer


def test_stage_times_report_the_median_of_each_stage_over_its_recent_window():
    times = StageTimes(window=3)
    assert times.medians() == {}  # nothing measured: nothing claimed
    for ms in (100.0, 1.0, 2.0, 3.0):  # the first falls out of the window
        times.add("forward", ms)
    times.add("preprocess", 4.0)
    assert times.medians() == {"forward_ms_p50": 2.0, "preprocess_ms_p50": 4.0}


# --- streaming n_after: frames classified as they arrive --------------------------------

N_FRAMES = 4
FRAME_STAMPS = [10.00, 10.05, 10.10, 10.15, 10.20, 10.25]  # the event is at 10.02


@pytest.fixture(scope="module")
def classifier(trained_model):
    from grasp_success_ros.model.classifier import GraspClassifier

    return GraspClassifier.from_path(trained_model)[0]


@pytest.fixture(scope="module")
def camera_frames() -> list[Frame]:
    rng = np.random.default_rng(3)
    return [Frame(s, render_scene(rng, i % 2 == 0, 48, 64))
            for i, s in enumerate(FRAME_STAMPS)]


def batch_sizes_of(predict, sizes: list[int]):
    def counted(images):
        sizes.append(len(images))
        return predict(images)
    return counted


def stream_then_judge(frames, classifier, policy, event, sizes, decode=np.asarray):
    """The node's worker: each arrival classifies the frames so far, the n-th judges."""
    scores = FrameScores()
    predict = batch_sizes_of(classifier.predict, sizes)
    for arrived in range(1, len(frames) + 1):
        here = frames[:arrived]
        stamps = [f.stamp for f in here]
        selection = select_frames(stamps, event.stamp, policy, now=stamps[-1])
        if selection.ready:
            return judge_selected(event, here, selection, predict, decode, policy,
                                  known=scores.known(classifier))
        scores.add(classifier, here, frames_so_far(stamps, event.stamp, policy), predict,
                   decode)
    raise AssertionError("the event never got its frames")


def batched(frames, classifier, policy, event, decode=np.asarray):
    selection = select_frames([f.stamp for f in frames], event.stamp, policy)
    return judge_selected(event, frames, selection, classifier.predict, decode, policy)


@pytest.mark.parametrize("combine", ["mean", "vote"])
def test_streamed_n_after_gives_the_record_of_the_batched_way(classifier, camera_frames,
                                                              combine):
    policy = PolicyConfig(selection="n_after", n_frames=N_FRAMES, combine=combine)
    event = GraspEvent(7, 10.02)
    streamed = stream_then_judge(camera_frames, classifier, policy, event, [])
    whole = batched(camera_frames, classifier, policy, event)
    assert streamed.frame_stamps == whole.frame_stamps == FRAME_STAMPS[1:1 + N_FRAMES]
    assert streamed.verdict == whole.verdict and streamed.error_code == whole.error_code
    np.testing.assert_allclose(streamed.frame_p_success, whole.frame_p_success, atol=1e-5)
    np.testing.assert_allclose(streamed.p_success, whole.p_success, atol=1e-5)


def test_the_n_th_frame_of_a_streamed_event_costs_one_forward_pass(classifier,
                                                                     camera_frames):
    policy = PolicyConfig(selection="n_after", n_frames=N_FRAMES)
    sizes: list[int] = []
    stream_then_judge(camera_frames, classifier, policy, GraspEvent(1, 10.02), sizes)
    assert sizes == [1] * N_FRAMES


def test_a_frame_that_cannot_be_decoded_while_streaming_is_recorded_as_in_the_batched_way(
        classifier, camera_frames):
    policy = PolicyConfig(selection="n_after", n_frames=N_FRAMES)
    broken = FRAME_STAMPS[2]

    def decode(image):
        if image is camera_frames[2].msg:
            raise GraspSuccessError(f"frame {broken} is truncated")
        return image

    event = GraspEvent(2, 10.02)
    streamed = stream_then_judge(camera_frames, classifier, policy, event, [], decode)
    whole = batched(camera_frames, classifier, policy, event, decode)
    assert streamed.error_code == whole.error_code == "bad_image"
    assert streamed.error == whole.error and streamed.frame_stamps == whole.frame_stamps


def test_scores_of_another_model_are_not_used(classifier, camera_frames):
    scores = FrameScores()
    scores.add(classifier, camera_frames, [0, 1], classifier.predict, np.asarray)
    assert set(scores.known(classifier)) == set(FRAME_STAMPS[:2])
    assert scores.known(object()) == {}


def test_scores_of_frames_that_left_the_buffer_are_forgotten(classifier, camera_frames):
    scores = FrameScores()
    scores.add(classifier, camera_frames, [0, 1, 2], classifier.predict, np.asarray)
    scores.retain(FRAME_STAMPS[1:])
    assert set(scores.known(classifier)) == set(FRAME_STAMPS[1:3])


def test_frames_that_piled_up_while_the_worker_was_busy_are_classified_in_one_batch(
        classifier, camera_frames):
    sizes: list[int] = []
    scores = FrameScores()
    scores.add(classifier, camera_frames, [1, 2, 3], batch_sizes_of(classifier.predict, sizes),
               np.asarray)
    assert sizes == [3] and set(scores.known(classifier)) == set(FRAME_STAMPS[1:4])


def two_cameras_at_once(camera_frames):
    """Events of two cameras at the same moment, their frames carrying the same stamps:
    the left judged n_after(3), the right first_after."""
    rng = np.random.default_rng(4)
    right = [Frame(s, render_scene(rng, i % 2 == 1, 48, 64)) for i, s in enumerate(FRAME_STAMPS)]
    jobs = []
    for event, frames, policy in ((GraspEvent(1, 10.02), camera_frames,
                                   PolicyConfig(selection="n_after", n_frames=3)),
                                  (GraspEvent(2, 10.02), right, PolicyConfig())):
        selection = select_frames(FRAME_STAMPS, event.stamp, policy)
        jobs.append(Judgement(event, frames, selection, policy))
    return jobs


def test_coinciding_events_of_two_cameras_are_classified_in_one_batch_each_as_if_alone(
        classifier, camera_frames):
    jobs = two_cameras_at_once(camera_frames)
    sizes: list[int] = []
    together = judge_batch(jobs, batch_sizes_of(classifier.predict, sizes), np.asarray)
    alone = [judge_selected(j.event, j.frames, j.selection, classifier.predict, np.asarray,
                            j.cfg) for j in jobs]
    assert sizes == [4]
    assert [r.event_id for r in together] == [1, 2]
    for batch, single in zip(together, alone, strict=True):
        assert batch.frame_stamps == single.frame_stamps and batch.verdict == single.verdict
        np.testing.assert_allclose(batch.frame_p_success, single.frame_p_success, atol=1e-5)


def test_a_camera_whose_frame_cannot_be_decoded_gets_bad_image_and_the_other_is_still_judged(
        classifier, camera_frames):
    jobs = two_cameras_at_once(camera_frames)
    broken = jobs[1].frames[1].msg

    def decode(image):
        if image is broken:
            raise GraspSuccessError("truncated")
        return image

    sizes: list[int] = []
    left, right = judge_batch(jobs, batch_sizes_of(classifier.predict, sizes), decode)
    assert sizes == [3]
    assert left.ok and right.error_code == "bad_image"
