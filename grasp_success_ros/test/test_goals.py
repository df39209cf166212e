"""VerifyGrasp goals in the grasp service, without DDS: a cancelled goal's event gets exactly
one answer (``canceled``), whatever a pass is doing at the same moment; grasp ids travel from
the goal or the trigger into the record; the goal's status follows its verdict."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from grasp_success_ros.core.grasp_service import GraspService
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.core.triggers import TriggerInfo, trigger_info


class Brightness:
    """P(success) = mean pixel / 255 (as test_grasp_service.py's); ``gate``, when given,
    holds every forward pass until it is set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.source, self.device, self.gate = "bright.onnx", "numpy", gate
        self.started = threading.Event()

    def prepare(self, images):
        return np.stack(images).astype(np.float32)

    def predict_prepared(self, batch):
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10.0)
        return np.clip(batch.mean(axis=(1, 2, 3)) / 255.0, 0.0, 1.0)


class Timeline:
    """A steady clock the test moves by hand (the service reads no clock of its own)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def service(scorer=None, policy=None):
    clock = Timeline()
    svc = GraspService(1, lambda payload: payload, 90, True, steady=clock)
    svc.serve(scorer or Brightness(), policy or PolicyConfig())
    svc.activate()
    return svc, clock


def goal(svc, t: float, grasp_id: str = ""):
    info = TriggerInfo(t, "action", grasp_id=grasp_id)
    return svc.event(0, info, round(t * 1e9), goal=True).event


def feed(svc, clock, t: float, level: int) -> None:
    clock.t = t
    svc.frame(0, t, t, np.full((4, 4, 3), level, np.uint8), "hand")


def test_a_waiting_goal_cancelled_gets_one_canceled_record_at_once_and_nothing_later():
    svc, clock = service()
    event = goal(svc, 10.0, grasp_id="cup-3")
    clock.t += 0.04
    answer = svc.cancel(event.event_id)
    record = answer.record
    assert record.event_id == event.event_id and record.verdict is None
    assert record.error_code == "canceled" and record.grasp_id == "cup-3"
    assert record.latency_ms == pytest.approx(40.0)
    assert svc.pending_count() == 0 and svc.stats.as_dict()["failures"] == 1
    feed(svc, clock, 10.03, 200)
    assert svc.answer_ready(10.03).answers == [] and svc.next_deadline(10.03) is None
    assert svc.cancel(event.event_id) is None  # one answer per event, a second cancel too


def test_cancelling_an_answered_event_gives_nothing():
    svc, clock = service()
    event = goal(svc, 10.0)
    feed(svc, clock, 10.03, 200)
    [answer] = svc.answer_ready(10.03).answers
    assert answer.record.verdict is True
    assert svc.cancel(event.event_id) is None


def test_cancelling_an_event_answered_at_intake_or_never_taken_gives_nothing():
    svc, _ = service()
    svc.deactivate(10.0)
    intake = svc.event(0, TriggerInfo(10.0, "action"), 10_000_000_000, goal=True)
    assert intake.answer.record.error_code == "deactivated"
    assert svc.cancel(intake.event.event_id) is None
    assert svc.cancel(12345) is None


def test_cancelling_one_goal_leaves_the_other_waiting_goal_to_its_verdict():
    svc, clock = service()
    first, second = goal(svc, 10.0), goal(svc, 10.0)
    assert svc.cancel(first.event_id).record.error_code == "canceled"
    feed(svc, clock, 10.03, 20)
    [answer] = svc.answer_ready(10.03).answers
    assert answer.event.event_id == second.event_id and answer.record.verdict is False


def test_a_cancel_during_the_pass_that_judges_the_event_waits_and_gives_nothing():
    """The pass holds the answer lock while the model runs: the cancel waits for it, sees
    the event answered, and returns None."""
    gate = threading.Event()
    scorer = Brightness(gate)
    svc, clock = service(scorer)
    event = goal(svc, 10.0)
    feed(svc, clock, 10.03, 200)
    passed = []
    judging = threading.Thread(target=lambda: passed.extend(svc.answer_ready(10.03).answers))
    judging.start()
    assert scorer.started.wait(5.0)
    cancelled = []
    cancelling = threading.Thread(target=lambda: cancelled.append(svc.cancel(event.event_id)))
    cancelling.start()
    cancelling.join(0.1)
    assert cancelling.is_alive()  # waits for the pass
    gate.set()
    judging.join(5.0)
    cancelling.join(5.0)
    assert cancelled == [None] and [a.record.verdict for a in passed] == [True]


def race_cancels_against_a_pass(delay_s: float) -> tuple[list[int], list[int], int]:
    """Four waiting goals whose frame is here; two threads cancel them (in two orders) while
    a third judges them ``delay_s`` after all are let go (so either may come first).
    Returns (event ids, answered ids, pending)."""
    svc, clock = service()
    ids = [goal(svc, 10.0).event_id for _ in range(4)]
    feed(svc, clock, 10.03, 200)
    answers, start = [], threading.Barrier(3)

    def cancel_all(order):
        start.wait()
        answers.extend(a for a in map(svc.cancel, order) if a is not None)

    def judge():
        start.wait()
        time.sleep(delay_s)
        answers.extend(svc.answer_ready(10.03).answers)

    threads = [threading.Thread(target=cancel_all, args=(ids[::2],)),
               threading.Thread(target=cancel_all, args=(ids[::-1],)),
               threading.Thread(target=judge)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    return ids, sorted(a.event.event_id for a in answers), svc.pending_count()


def test_cancels_and_a_pass_racing_answer_every_event_exactly_once():
    for k in range(60):
        ids, answered, pending = race_cancels_against_a_pass((k % 6) * 2e-5)
        assert answered == ids and pending == 0


def test_header_and_string_triggers_carry_their_grasp_id_into_the_record():
    header = SimpleNamespace(frame_id="cup-3", stamp=SimpleNamespace(sec=10, nanosec=0))
    text = SimpleNamespace(data="bottle-7")
    assert trigger_info("header", header, 9.0).grasp_id == "cup-3"
    assert trigger_info("header", header, 9.0).trigger == "header:cup-3"
    assert trigger_info("string", text, 9.0).grasp_id == "bottle-7"
    assert trigger_info("string", text, 9.0).trigger == "string:bottle-7"
    assert trigger_info("empty", SimpleNamespace(), 9.0).grasp_id == ""
    svc, clock = service()
    svc.event(0, trigger_info("header", header, 9.99), round(9.99 * 1e9))
    feed(svc, clock, 10.03, 200)
    [answer] = svc.answer_ready(10.03).answers
    assert answer.record.grasp_id == "cup-3" and answer.record.verdict is True


# --- the action server's rules (ros/verify.py), without a server -------------------------


class Handle:
    def __init__(self) -> None:
        self.ended = None

    def succeed(self):
        self.ended = "SUCCEEDED"

    def abort(self):
        self.ended = "ABORTED"

    def canceled(self):
        self.ended = "CANCELED"


@pytest.mark.parametrize(("status", "code", "ended"), [
    (1, "", "SUCCEEDED"), (2, "", "SUCCEEDED"), (0, "uncertain", "SUCCEEDED"),
    (0, "no_fresh_frame", "SUCCEEDED"), (0, "bad_image", "SUCCEEDED"),
    (0, "deactivated", "ABORTED"), (0, "inference_error", "ABORTED"),
    (0, "canceled", "CANCELED")])
def test_a_goal_ends_by_its_verdict(status, code, ended):
    pytest.importorskip("grasp_success_msgs", reason="source install/setup.bash (make build)")
    from grasp_success_msgs.msg import GraspVerdict

    from grasp_success_ros.ros.verify import end_goal

    handle = Handle()
    end_goal(handle, GraspVerdict(status=status, error_code=code))
    assert handle.ended == ended


def test_a_goal_names_its_camera_or_gets_the_first():
    pytest.importorskip("grasp_success_msgs", reason="source install/setup.bash (make build)")
    from grasp_success_ros.ros.verify import camera_index, unknown_camera

    assert camera_index(["left", "right"], "right") == 1
    assert camera_index(["left", "right"], "") == 0 and camera_index([""], "") == 0
    assert camera_index(["left", "right"], "middle") is None
    assert camera_index([""], "left") is None
    assert unknown_camera(["left", "right"], "middle") == (
        "unknown camera 'middle'; this node's cameras: left, right")
    assert "one camera" in unknown_camera([""], "left")
