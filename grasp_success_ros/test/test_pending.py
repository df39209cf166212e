"""The node's bookkeeping under real threads: pending events and answer counts stay exact
while the camera, trigger, worker and diagnostics threads use them at once."""

from __future__ import annotations

import threading

from grasp_success_ros.core.judge import GraspEvent, GraspRecord
from grasp_success_ros.core.pending import AnswerStats, PendingEvents

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
