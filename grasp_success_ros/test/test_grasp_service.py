"""The grasp service (core/grasp_service.py) on timelines of our own: the node's decision
behaviour, in milliseconds, without DDS. The scorer is a real function of the pixels (its
P(success) is the frame's brightness), so a record's numbers say which frames judged it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from grasp_success_ros.core.grasp_service import GraspService
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.core.triggers import TriggerInfo


class Brightness:
    """P(success) = mean pixel / 255; counts its forward passes and their batch sizes."""

    def __init__(self, source: str = "bright.onnx", gain: float = 1.0) -> None:
        self.source, self.gain, self.batches = source, gain, []
        self.device = "numpy"

    def prepare(self, images):
        return np.stack(images).astype(np.float32)

    def predict_prepared(self, batch):
        self.batches.append(len(batch))
        return np.clip(batch.mean(axis=(1, 2, 3)) / 255.0 * self.gain, 0.0, 1.0)


class Timeline:
    """A steady clock the test moves by hand (the service reads no clock of its own)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def image(level: int) -> np.ndarray:
    return np.full((4, 4, 3), level, np.uint8)


def decode(payload):
    if isinstance(payload, str):
        raise ValueError(f"cannot decode {payload!r}")
    return payload


def service(policy=None, cameras=1, streaming=True, scorer=None, buffer_size=90):
    clock = Timeline()
    svc = GraspService(cameras, decode, buffer_size, streaming, steady=clock)
    svc.serve(scorer or Brightness(), policy or PolicyConfig())
    svc.activate()
    return svc, clock


def trigger(t: float) -> TriggerInfo:
    return TriggerInfo(t, "empty")


def ns(t: float) -> int:
    return round(t * 1e9)


def feed(svc, clock, camera, t, level, arrival=None):
    clock.t = arrival if arrival is not None else t
    svc.frame(camera, t, clock.t, image(level), "hand")


def test_an_event_is_answered_by_the_first_frame_after_it():
    svc, clock = service()
    feed(svc, clock, 0, 10.0, 50)
    intake = svc.event(0, trigger(10.01), ns(10.01))
    assert intake.answer is None and svc.answer_ready(10.01).answers == []
    feed(svc, clock, 0, 10.03, 204)
    [answer] = svc.answer_ready(10.03).answers
    assert answer.record.verdict is True and answer.record.frame_stamps == [10.03]
    assert answer.record.p_success == pytest.approx(0.8)
    assert [f.stamp for f in answer.frames] == [10.03]


def test_a_waiting_event_fails_once_its_deadline_has_passed_on_the_frames_clock():
    svc, clock = service(PolicyConfig(deadline_s=0.5))
    feed(svc, clock, 0, 9.99, 50)
    svc.event(0, trigger(10.0), ns(10.0))
    assert svc.next_deadline(10.2) == pytest.approx(0.301)
    assert svc.answer_ready(10.4).answers == []
    [answer] = svc.answer_ready(10.51).answers
    assert answer.record.error_code == "no_fresh_frame"
    assert svc.next_deadline(10.6) is None


def test_a_stopped_clock_is_overtaken_by_the_steady_backstop():
    svc, clock = service(PolicyConfig(deadline_s=0.5))
    svc.event(0, trigger(10.0), ns(10.0))
    clock.t += 0.5 + 5.0 + 0.01  # the frames' clock stands at 10.0; the steady one moved
    [answer] = svc.answer_ready(10.0).answers
    assert answer.record.error_code == "no_fresh_frame"


def test_an_event_stamped_an_hour_ahead_is_answered_by_the_backstop_not_held_for_an_hour():
    svc, clock = service(PolicyConfig(deadline_s=0.5))
    svc.event(0, trigger(10.0 + 3600.0), ns(10.0))  # received at steady 100.0
    for k in range(50):  # frames keep coming for 5 s, all stamped before the event
        clock.t = 100.0 + k * 0.1
        svc.frame(0, 10.0 + k * 0.1, 10.0 + k * 0.1, image(200), "hand")
        assert svc.answer_ready(10.0 + k * 0.1).answers == []
    assert svc.next_deadline(14.9) == pytest.approx(0.5 + 5.0 - 4.9 + 0.001)
    clock.t = 100.0 + 0.5 + 5.0 + 0.01  # the steady backstop: deadline_s + 5 s after arrival
    [answer] = svc.answer_ready(15.51).answers
    assert answer.record.error_code == "no_fresh_frame"


def test_frames_between_the_two_thresholds_get_an_uncertain_record_with_their_scores():
    svc, clock = service(PolicyConfig(threshold=0.7, threshold_failure=0.3))
    svc.event(0, trigger(10.0), ns(10.0))
    feed(svc, clock, 0, 10.02, 128)
    [answer] = svc.answer_ready(10.02).answers
    assert answer.record.error_code == "uncertain" and answer.record.verdict is None
    assert answer.record.p_success == pytest.approx(128 / 255, abs=1e-6)


def test_events_of_two_cameras_ready_together_share_one_forward_pass():
    scorer = Brightness()
    svc, clock = service(cameras=2, scorer=scorer)
    svc.event(0, trigger(10.0), ns(10.0))
    svc.event(1, trigger(10.0), ns(10.0))
    feed(svc, clock, 0, 10.02, 200)
    feed(svc, clock, 1, 10.02, 20)
    answers = svc.answer_ready(10.02).answers
    assert sorted((a.camera, a.record.verdict) for a in answers) == [(0, True), (1, False)]
    assert scorer.batches == [2]


def test_streaming_costs_one_pass_per_frame_and_gives_the_batched_record():
    policy = PolicyConfig(selection="n_after", n_frames=3)
    records = {}
    for streaming in (True, False):
        scorer = Brightness()
        svc, clock = service(policy, streaming=streaming, scorer=scorer)
        svc.event(0, trigger(10.0), ns(10.0))
        answers = []
        for k, level in enumerate((100, 150, 200)):
            feed(svc, clock, 0, 10.01 + k * 0.03, level)
            answers += svc.answer_ready(clock.t).answers
        [answer] = answers
        records[streaming] = (answer.record.frame_p_success, answer.record.p_success,
                              answer.record.verdict, scorer.batches)
    assert records[True][:3] == records[False][:3]
    assert records[True][3] == [1, 1, 1] and records[False][3] == [3]


def test_a_goal_reports_its_frames_as_they_come_and_only_when_the_count_changes():
    svc, clock = service(PolicyConfig(selection="n_after", n_frames=3))
    intake = svc.event(0, trigger(10.0), ns(10.0), goal=True)
    feed(svc, clock, 0, 10.01, 100)
    first = svc.answer_ready(10.01).progress
    again = svc.answer_ready(10.011).progress
    feed(svc, clock, 0, 10.04, 100)
    second = svc.answer_ready(10.04).progress
    assert [(p.event_id, p.collected, p.needed) for p in first] == [(intake.event.event_id, 1, 3)]
    assert again == [] and [p.collected for p in second] == [2]


def test_a_goals_overrides_judge_its_event_only():
    svc, clock = service()
    goal = svc.event(0, trigger(10.0), ns(10.0), overrides={"selection": "n_after",
                                                          "n_frames": 2}, goal=True)
    plain = svc.event(0, trigger(10.0), ns(10.0))
    feed(svc, clock, 0, 10.01, 100)
    [first] = svc.answer_ready(10.01).answers
    feed(svc, clock, 0, 10.04, 100)
    [second] = svc.answer_ready(10.04).answers
    assert first.event is plain.event and second.event is goal.event
    assert len(second.record.frame_stamps) == 2 and second.record.policy == "n_after(2,mean)"


def test_deactivation_answers_every_pending_event_and_goal_once():
    svc, clock = service(PolicyConfig(selection="n_after", n_frames=2))
    ready = svc.event(0, trigger(10.0), ns(10.0))
    waiting = svc.event(0, trigger(10.05), ns(10.05), goal=True)
    feed(svc, clock, 0, 10.01, 100)
    feed(svc, clock, 0, 10.02, 100)
    answers = svc.deactivate(10.02).answers
    by_event = {a.event.event_id: a.record for a in answers}
    assert by_event[ready.event.event_id].verdict is False
    assert by_event[waiting.event.event_id].error_code == "deactivated"
    assert svc.pending_count() == 0 and svc.answer_ready(20.0).answers == []


def test_an_event_while_inactive_is_answered_at_once_not_dropped():
    svc, clock = service()
    svc.deactivate(10.0)
    intake = svc.event(0, trigger(10.0), ns(10.0))
    assert intake.answer.record.error_code == "deactivated"
    assert svc.pending_count() == 0


def test_a_rejected_trigger_gets_its_failure_record_at_once():
    svc, clock = service()
    intake = svc.event(0, TriggerInfo(10.0, "bool", ("not_completed", "Bool false")), ns(10.0))
    assert intake.answer.record.error_code == "not_completed" and svc.pending_count() == 0


def test_a_frame_stamped_ahead_of_its_arrival_judges_nothing():
    svc, clock = service()
    svc.event(0, trigger(10.0), ns(10.0))
    clock.t = 10.0
    wanted, note = svc.frame(0, 10.5, 10.0, image(200), "hand")
    [answer] = svc.answer_ready(10.0).answers
    assert wanted and "clock runs ahead" in note
    assert answer.record.error_code == "clock_skew"


def test_frames_timed_by_arrival_ignore_their_stamps():
    svc, clock = service(PolicyConfig(frame_stamp="arrival"))
    svc.event(0, trigger(10.0), ns(10.0))
    clock.t = 10.02
    _, note = svc.frame(0, 99.0, 10.02, image(200), "hand")
    [answer] = svc.answer_ready(10.02).answers
    assert note is None and answer.record.frame_stamps == [10.02] and answer.record.ok


def test_without_a_clock_every_event_is_a_no_clock_record():
    svc, clock = service()
    svc.frame(0, 10.0, 0.0, image(200), "hand", clock_set=False)
    svc.event(0, trigger(0.0), 0, clock_set=False)
    [answer] = svc.answer_ready(0.0, clock_set=False).answers
    assert answer.record.error_code == "no_clock" and "10.000" in answer.record.error


def test_an_undecodable_frame_costs_its_event_only():
    svc, clock = service(cameras=2)
    svc.event(0, trigger(10.0), ns(10.0))
    svc.event(1, trigger(10.0), ns(10.0))
    clock.t = 10.02
    svc.frame(0, 10.02, 10.02, "garbage", "hand")
    feed(svc, clock, 1, 10.02, 200)
    answers = {a.camera: a.record for a in svc.answer_ready(10.02).answers}
    assert answers[0].error_code == "bad_image" and answers[1].verdict is True


def test_a_model_that_fails_gives_inference_error_records():
    class Broken(Brightness):
        def predict_prepared(self, batch):
            return np.full(len(batch), np.nan)

    svc, clock = service(scorer=Broken())
    svc.event(0, trigger(10.0), ns(10.0))
    feed(svc, clock, 0, 10.02, 200)
    [answer] = svc.answer_ready(10.02).answers
    assert answer.record.error_code == "inference_error"


def test_latency_is_measured_on_the_steady_clock_it_is_given():
    svc, clock = service()
    clock.t = 50.0
    svc.event(0, trigger(10.0), ns(10.0))
    clock.t = 50.25
    svc.frame(0, 10.02, 10.02, image(200), "hand")
    [answer] = svc.answer_ready(10.02).answers
    assert answer.record.latency_ms == pytest.approx(250.0)


def test_a_staged_model_is_swapped_in_at_commit_with_its_own_policy():
    svc, clock = service()
    svc.stage(Brightness("new.onnx"))
    swapped = svc.commit(lambda scorer: PolicyConfig(threshold=0.9))
    svc.event(0, trigger(10.0), ns(10.0))
    feed(svc, clock, 0, 10.02, 200)
    [answer] = svc.answer_ready(10.02).answers
    assert swapped == ("bright.onnx", "new.onnx")
    assert answer.record.model == "new.onnx" and answer.record.verdict is False


def test_hot_swap_under_load_answers_every_event_once_with_one_whole_model():
    svc, clock = service(PolicyConfig(selection="n_after", n_frames=2))
    models = [Brightness("a.onnx", 1.0), Brightness("b.onnx", 0.5)]
    events, answers, stop = [], [], threading.Event()

    def swap():
        k = 0
        while not stop.is_set():
            svc.serve(models[k % 2], PolicyConfig(selection="n_after", n_frames=2))
            k += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for i in range(200):
            t = 10.0 + i * 0.01
            events.append(svc.event(0, trigger(t), ns(t)).event.event_id)
            feed(svc, clock, 0, t + 0.001, 200)
            answers += svc.answer_ready(t + 0.001).answers
    finally:
        stop.set()
        swapper.join()
    answers += svc.deactivate(20.0).answers
    assert sorted(a.event.event_id for a in answers) == events
    for a in (a for a in answers if a.record.judged):  # both frames by one model
        expected = {"a.onnx": 200 / 255, "b.onnx": 100 / 255}[a.record.model]
        assert a.record.frame_p_success == pytest.approx([expected] * 2, abs=1e-5)


def test_the_buffer_keeps_only_the_newest_frames():
    svc, clock = service(PolicyConfig(selection="latest", max_frame_age_s=10.0),
                         buffer_size=3)
    for k in range(5):
        feed(svc, clock, 0, 10.0 + k, 10 * k)
    svc.event(0, trigger(20.0), ns(20.0))
    [answer] = svc.answer_ready(20.0).answers
    assert answer.record.frame_stamps == [14.0]
    assert [f.stamp for f in svc.cameras[0].buffer.snapshot()] == [12.0, 13.0, 14.0]
