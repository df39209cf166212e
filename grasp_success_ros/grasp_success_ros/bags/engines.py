"""Where the bags of ``bag-eval`` and ``extract`` are processed: ``local`` (threads in this
process) or ``ray`` (one Ray task per bag on a Ray cluster, a local Ray instance when no
address is given). Both engines run the same per-bag function (``run_one``) on a
``BagJob``, so their results are the same; only where the work happens differs.

A ``BagJob`` is a picklable description of the work (options, paths); ``open()`` builds
the per-bag function where it runs (e.g. loads the model once per Ray worker). Ray is an
optional extra (``pip install .[ray]``), imported only when the ray engine is chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grasp_success_ros.core.errors import BagError, ConfigError

ENGINES = ("local", "ray")

BagFn = Callable[[Path], tuple[Any, str]]  # bag path -> (value, progress note); BagError
OnBagDone = Callable[[str, str], None]  # (bag name, note), e.g. for a progress bar


class BagJob(Protocol):
    def open(self) -> BagFn:
        """The per-bag function, built where it runs (loads what it needs once)."""


@dataclass
class BagOutcome:
    """One bag's value, or the error that stopped it."""

    index: int
    path: str
    value: Any = None
    error: str | None = None
    note: str = ""


def run_one(fn: BagFn, index: int, path: str | Path) -> BagOutcome:
    """The per-bag step both engines share: a bag's ``BagError`` is its outcome."""
    try:
        value, note = fn(Path(path))
        return BagOutcome(index, str(path), value, note=note)
    except BagError as exc:
        return BagOutcome(index, str(path), error=str(exc), note="error")


def run_bags(paths: Sequence[str | Path], job: BagJob, engine: str = "local", jobs: int = 2,
             address: str | None = None, on_bag_done: OnBagDone | None = None
             ) -> list[BagOutcome]:
    """Every bag through ``job``, outcomes in bag order (an error stops its bag only)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "ray":
        outcomes = _run_ray(paths, job, jobs, address, on_bag_done)
    else:
        if address is not None:
            raise ConfigError("--address is for --engine ray")
        outcomes = _run_local(paths, job, jobs, on_bag_done)
    return sorted(outcomes, key=lambda o: o.index)


def _run_local(paths, job: BagJob, jobs: int, on_bag_done) -> list[BagOutcome]:
    fn = job.open()

    def one(i: int, path) -> BagOutcome:
        out = run_one(fn, i, path)
        if on_bag_done is not None:
            on_bag_done(Path(path).name, out.note)
        return out

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(paths)))) as pool:
        return list(pool.map(one, range(len(paths)), paths))


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'grasp_success_ros[ray]' "
                          "(or pip install 'ray>=2.9')") from None
    return ray


def _run_ray(paths, job: BagJob, jobs: int, address: str | None, on_bag_done
             ) -> list[BagOutcome]:
    """``jobs`` Ray actors (at most one per CPU of the cluster), each building the per-bag
    function once (the model loaded once per actor, not once per bag) and taking the next
    bag as it finishes one."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        worker = ray.remote(num_cpus=1)(_BagWorker)
        # no more actors than CPUs: an actor that cannot be placed would hold its bag forever
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = [worker.remote(job) for _ in range(max(1, min(jobs, len(paths), cpus)))]
        todo = list(enumerate(paths))[::-1]
        running: dict[Any, tuple[Any, int, Any]] = {}
        outcomes = []
        for actor in actors:
            if todo:
                _submit(actor, todo.pop(), running)
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, i, path = running.pop(ref)
            try:
                out = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died or could not start
                last = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
                out = BagOutcome(i, str(path), error=f"bag {path}: on Ray: {last[0]}",
                                 note="error")
            out.path = str(path)  # as given (the worker got it absolute)
            outcomes.append(out)
            if on_bag_done is not None:
                on_bag_done(Path(path).name, out.note)
            if todo:
                _submit(actor, todo.pop(), running)
        for actor in actors:
            ray.kill(actor)
        return outcomes
    finally:
        if started:
            ray.shutdown()


def _submit(actor, item: tuple[int, Any], running: dict) -> None:
    i, path = item
    # absolute: a worker on another machine has another working directory
    running[actor.run.remote(i, str(Path(path).resolve()))] = (actor, i, path)


class _BagWorker:
    """A Ray actor: the job's per-bag function, built once, run on one bag per call."""

    def __init__(self, job: BagJob) -> None:
        self.fn = job.open()

    def run(self, index: int, path: str) -> BagOutcome:
        return run_one(self.fn, index, path)
