"""The engines of bag-eval and extract: Ray (one task per bag, on a local two-CPU Ray
instance here) gives the same results as the local threads."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pytest

from grasp_success_ros.bags.engines import run_bags
from grasp_success_ros.bags.evaluate import evaluate_bags
from grasp_success_ros.bags.extract import ExtractOptions, extract_bags
from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.policy import PolicyConfig

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parent.parent
SMALL = {"height": 120, "width": 160}


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance whose workers import this checkout (as a cluster's workers
    import the installed package)."""
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> list[Path]:
    """Two labelled sessions and a path with no bag (its error must not lose the others)."""
    root = tmp_path_factory.mktemp("engine-bags")
    write_session(root / "a", n_grasps=4, seed=3, **SMALL)
    write_session(root / "b", n_grasps=3, seed=4, storage="mcap", **SMALL)
    return [root / "a", root / "missing", root / "b"]


def comparable(results) -> list[dict]:
    """Every event's record but its latency (a wall-clock measure)."""
    return [{**asdict(r.record), "latency_ms": None, "bag": r.bag, "truth": r.truth}
            for r in results]


def test_ray_judges_every_event_as_the_local_engine_does(ray_instance, bags, trained_model):
    from grasp_success_ros.model.classifier import GraspClassifier

    clf, _ = GraspClassifier.from_path(trained_model)
    policy = PolicyConfig(threshold=clf.card.threshold)
    done = []
    local = evaluate_bags(bags, clf, policy, jobs=2)
    on_ray = evaluate_bags(bags, None, policy, jobs=2, engine="ray",
                           model_path=str(trained_model),
                           on_bag_done=lambda name, note: done.append((name, note)))
    assert len(on_ray[0]) == 7
    assert comparable(on_ray[0]) == comparable(local[0])
    assert on_ray[2] == local[2]
    assert list(on_ray[1]) == list(local[1]) == [str(bags[1])]
    assert sorted(done) == [("a", "4 events"), ("b", "3 events"), ("missing", "error")]


def test_ray_extracts_the_same_files_as_the_local_engine(ray_instance, bags, tmp_path):
    opts = ExtractOptions(window_s=0.2, dedup=0.0)
    local, local_errors = extract_bags(bags, tmp_path / "local", opts=opts, jobs=2)
    code = cli.main(["extract", *map(str, bags), str(tmp_path / "ray"), "--window", "0.2",
                     "--dedup", "0", "--engine", "ray", "--no-progress"])
    assert code == 2 and list(local_errors) == [str(bags[1])]
    for cls in ("success", "failure"):
        names = sorted(p.name for p in (tmp_path / "local" / cls).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "ray" / cls).iterdir())
        assert all((tmp_path / "ray" / cls / n).read_bytes() ==
                   (tmp_path / "local" / cls / n).read_bytes() for n in names)
    assert sum(c["success"] + c["failure"] for c in local.values()) > 0


def test_an_unknown_engine_is_refused(bags):
    with pytest.raises(ConfigError, match="engine must be one of"):
        run_bags(bags, None, engine="spark")


def test_the_ray_engine_needs_the_model_path_its_workers_load():
    with pytest.raises(ConfigError, match="model_path"):
        evaluate_bags([], None, PolicyConfig(), engine="ray")


def test_an_address_is_only_for_the_ray_engine(bags):
    with pytest.raises(ConfigError, match="--address is for --engine ray"):
        run_bags(bags, None, engine="local", address="auto")
