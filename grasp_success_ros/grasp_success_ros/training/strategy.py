"""Training on several GPUs or machines under a tf.distribute strategy.

``mirrored``: the GPUs of one machine; ``multiworker``: several machines from
``TF_CONFIG``.  ``batch_size`` is the global batch, split evenly over the replicas, and the
learning rate is used as given for it (no implicit scaling), so one device and N devices
run the same optimisation.  Only the chief writes the model; the other workers write to a
temporary folder (``written_by``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.training.config import DISTRIBUTIONS, TrainConfig

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


class DistributeError(ConfigError):
    """A tf.distribute strategy cannot be set up as asked (e.g. ``TF_CONFIG`` missing or
    invalid for ``multiworker``, or a batch that does not split over the replicas)."""


@dataclass(frozen=True)
class Distribution:
    """The strategy training runs under (None: plain Keras on one device), its replica
    count and whether this process is the chief, the one that writes the model."""

    name: str = "none"
    strategy: Any = None
    chief: bool = True
    workers: int = 1

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1

    def scope(self):
        """Where variables (model, optimizer) must be created to be mirrored."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def shard(self, ds):
        """In-memory datasets are sharded by element across workers (no files to shard by,
        so tf.data's AUTO policy would warn and fall back to this anyway)."""
        if self.strategy is None:
            return ds
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def summary(self) -> dict[str, Any]:
        devices = self.strategy.extended.worker_devices
        return {"strategy": self.name, "replicas": self.replicas, "workers": self.workers,
                "devices": [str(d) for d in devices]}


ONE_DEVICE = Distribution()  # plain Keras, no strategy


def cluster_role() -> tuple[bool, int]:
    """(is this process the chief, how many machines) from ``TF_CONFIG``, read and checked
    so that a typo is one line here rather than a hang or a traceback inside TensorFlow.
    The chief is TF's: the ``chief`` task, else worker 0."""
    text = os.environ.get("TF_CONFIG", "")
    hint = f"multiworker needs TF_CONFIG set on every machine, e.g. {TF_CONFIG_EXAMPLE}"
    if not text.strip():
        raise DistributeError(f"TF_CONFIG is not set; {hint}")
    try:
        conf = json.loads(text)
        cluster, kind, index = conf["cluster"], conf["task"]["type"], int(conf["task"]["index"])
        members = cluster[kind]
        workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DistributeError(f"TF_CONFIG is invalid ({type(exc).__name__}: {exc}); "
                              f"{hint}") from None
    if not isinstance(members, list) or not 0 <= index < len(members):
        raise DistributeError(f"TF_CONFIG's task {kind} {index} is not in its cluster; {hint}")
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return chief, workers


def distribution(name: str) -> Distribution:
    """The strategy for ``TrainConfig.distribute``.  ``mirrored`` uses every GPU, or
    without GPUs every logical CPU device (one, unless the process configured more: tests
    and CPU-only trials); ``multiworker`` the machines of ``TF_CONFIG``."""
    if name == "none":
        return Distribution()
    if name not in DISTRIBUTIONS:
        raise DistributeError(f"distribute must be one of {DISTRIBUTIONS}, not {name!r}")
    chief, workers = cluster_role() if name == "multiworker" else (True, 1)
    import tensorflow as tf

    if name == "multiworker":
        return Distribution(name, tf.distribute.MultiWorkerMirroredStrategy(), chief, workers)
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return Distribution(name, tf.distribute.MirroredStrategy([d.name for d in devices]))


@contextlib.contextmanager
def written_by(dist: Distribution, model_out: Path) -> Iterator[Path]:
    """Where this process writes: MODEL_OUT on the chief; on the other workers of a
    multi-worker run a temporary folder, removed afterwards (they run the same training,
    and TF's guide has them write elsewhere so that they never clash with the chief)."""
    if dist.chief:
        yield model_out
        return
    scratch = Path(tempfile.mkdtemp(prefix="grasp-success-worker-"))
    try:
        yield scratch / model_out.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def split_batch(dist: Distribution, cfg: TrainConfig, log: Callable[[str], None]) -> None:
    """Refuse a global batch that does not split evenly over the replicas; say the split."""
    if dist.strategy is None:
        return
    if cfg.batch_size % dist.replicas:
        raise DistributeError(f"batch size {cfg.batch_size} (the global batch) does not split "
                              f"evenly over {dist.replicas} replicas; use a multiple of "
                              f"{dist.replicas}")
    log(f"distribute: {dist.name} over {dist.replicas} replicas on {dist.workers} "
        f"machine(s); global batch {cfg.batch_size} = {cfg.batch_size // dist.replicas} per "
        f"replica; learning rate {cfg.learning_rate:g} as given"
        f"{'' if dist.chief else '; not the chief: writing to a temporary folder'}")
