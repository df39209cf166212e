"""Synthetic grasp scenes and streams: shapes, determinism, dataset layout, stream timing."""

from __future__ import annotations

import inspect
import itertools

import cv2
import numpy as np
import pytest

from grasp_success_ros.data.synth import StreamItem, grasp_stream, render_scene, write_dataset

SMALL = {"height": 48, "width": 64}


def _stream(**kwargs) -> list[StreamItem]:
    args = {"seed": 0, "n_grasps": 3, "fps": 10.0, **SMALL}
    args.update(kwargs)
    return list(grasp_stream(**args))


def _frames(items: list[StreamItem]) -> list[StreamItem]:
    return [it for it in items if it.kind == "frame"]


def _events(items: list[StreamItem]) -> list[StreamItem]:
    return [it for it in items if it.kind == "event"]


@pytest.mark.parametrize("success", [True, False])
@pytest.mark.parametrize("size", [(240, 320), (61, 97)])
def test_render_scene_is_rgb_uint8_of_the_requested_size(success, size):
    img = render_scene(np.random.default_rng(0), success, *size)
    assert img.shape == (*size, 3)
    assert img.dtype == np.uint8


def test_render_scene_defaults_to_240_by_320():
    assert render_scene(np.random.default_rng(0), True).shape == (240, 320, 3)


@pytest.mark.parametrize("success", [True, False])
def test_render_scene_repeats_exactly_for_the_same_seed(success):
    a = render_scene(np.random.default_rng(7), success, 60, 80)
    b = render_scene(np.random.default_rng(7), success, 60, 80)
    np.testing.assert_array_equal(a, b)


def test_render_scene_differs_between_seeds():
    a = render_scene(np.random.default_rng(1), True, 60, 80)
    b = render_scene(np.random.default_rng(2), True, 60, 80)
    assert not np.array_equal(a, b)


def test_render_scene_is_not_a_flat_image():
    img = render_scene(np.random.default_rng(3), False, 60, 80)
    assert img.std() > 5.0


def test_write_dataset_splits_into_success_and_failure_folders(tmp_path):
    counts = write_dataset(tmp_path, 5, seed=0, height=30, width=40)
    assert counts == {"success": 3, "failure": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failure", "success"]
    assert len(list((tmp_path / "success").glob("*.png"))) == 3
    assert len(list((tmp_path / "failure").glob("*.png"))) == 2


def test_write_dataset_writes_readable_pngs_of_the_requested_size(tmp_path):
    write_dataset(tmp_path, 2, seed=0, height=30, width=40)
    for path in (tmp_path / "success").glob("*.png"):
        img = cv2.imread(str(path))
        assert img is not None and img.shape == (30, 40, 3)


def test_write_dataset_accepts_a_string_path(tmp_path):
    assert write_dataset(str(tmp_path / "out"), 2, height=30, width=40) == {
        "success": 1, "failure": 1}


def _file_bytes(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_write_dataset_same_seed_gives_identical_files(tmp_path):
    write_dataset(tmp_path / "a", 4, seed=3, height=30, width=40)
    write_dataset(tmp_path / "b", 4, seed=3, height=30, width=40)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")


def test_write_dataset_different_seeds_give_different_files(tmp_path):
    write_dataset(tmp_path / "a", 4, seed=3, height=30, width=40)
    write_dataset(tmp_path / "b", 4, seed=4, height=30, width=40)
    a, b = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def test_grasp_stream_is_lazy():
    stream = grasp_stream(0, 1000, height=720, width=1280)
    assert inspect.isgenerator(stream)
    first = next(stream)
    assert first.kind == "frame" and first.image.shape == (720, 1280, 3)
    stream.close()


def test_grasp_stream_items_are_sorted_by_time():
    times = [it.t for it in _stream()]
    assert times == sorted(times)


def test_grasp_stream_frames_are_spaced_one_over_fps():
    frames = _frames(_stream(fps=15.0))
    gaps = np.diff([f.t for f in frames])
    np.testing.assert_allclose(gaps, 1 / 15.0, atol=1e-9)
    assert frames[0].t == 0.0


def test_grasp_stream_has_one_event_per_grasp():
    events = _events(_stream(n_grasps=4))
    assert [e.grasp_index for e in events] == [0, 1, 2, 3]


def test_grasp_stream_frames_carry_rgb_images_and_no_label():
    for f in _frames(_stream(n_grasps=1)):
        assert f.label is None
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8


def test_grasp_stream_events_carry_a_boolean_label_and_no_image():
    for e in _events(_stream()):
        assert isinstance(e.label, bool)
        assert e.image is None


def test_grasp_stream_event_times_follow_the_episode_layout():
    items = _stream(n_grasps=3, approach_s=0.5, outcome_lead_s=0.3, hold_s=0.7)
    np.testing.assert_allclose([e.t for e in _events(items)], [0.8, 2.3, 3.8], atol=1e-9)
    frames = _frames(items)
    assert frames[-1].t < 4.5 <= frames[-1].t + 0.1 + 1e-9


def test_grasp_stream_grasp_index_never_decreases():
    indices = [it.grasp_index for it in _stream()]
    assert indices == sorted(indices)


def test_grasp_stream_consecutive_frames_are_not_identical():
    frames = _frames(_stream(n_grasps=1))
    assert all(not np.array_equal(a.image, b.image) for a, b in itertools.pairwise(frames))


def test_grasp_stream_repeats_for_the_same_seed():
    a, b = _stream(seed=5), _stream(seed=5)
    assert [(x.t, x.kind, x.label) for x in a] == [(x.t, x.kind, x.label) for x in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(_frames(a), _frames(b),
                                                                   strict=True))


def test_grasp_stream_differs_between_seeds():
    a, b = _frames(_stream(seed=5)), _frames(_stream(seed=6))
    assert not np.array_equal(a[0].image, b[0].image)


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_grasp_stream_extreme_success_ratios(ratio):
    labels = {e.label for e in _events(_stream(n_grasps=5, success_ratio=ratio))}
    assert labels == {bool(ratio)}


def test_grasp_stream_labels_follow_the_success_ratio():
    items = grasp_stream(1, 300, fps=1.0, height=12, width=16, success_ratio=0.75)
    labels = [it.label for it in items if it.kind == "event"]
    assert len(labels) == 300
    assert 0.65 < np.mean(labels) < 0.85


def _mean_diff(a: StreamItem, b: StreamItem) -> float:
    return float(np.abs(a.image.astype(float) - b.image.astype(float)).mean())


def test_grasp_stream_outcome_scene_starts_before_the_event():
    # Inside the outcome the picture only jitters; the switch from the approach is a jump.
    fps, approach, lead = 10.0, 0.5, 0.3
    items = _stream(n_grasps=4, fps=fps, approach_s=approach, outcome_lead_s=lead, hold_s=0.3)
    frames = _frames(items)
    for e in _events(items):
        t0 = e.t - approach - lead
        approach_last = max((f for f in frames if t0 <= f.t < t0 + approach - 1e-9),
                            key=lambda f: f.t)
        outcome = [f for f in frames if t0 + approach - 1e-9 <= f.t < e.t + 0.3 - 1e-9]
        assert outcome[0].t < e.t
        switch = _mean_diff(approach_last, outcome[0])
        assert all(_mean_diff(a, b) < switch for a, b in itertools.pairwise(outcome))


def test_grasp_stream_without_grasps_is_empty():
    assert _stream(n_grasps=0) == []


def test_white_objects_are_a_kind_of_scene_the_default_never_draws():
    default = render_scene(np.random.default_rng(4), True, 60, 80)
    white = render_scene(np.random.default_rng(4), True, 60, 80, objects="white")
    assert not np.array_equal(default, white)
    with pytest.raises(ValueError, match="objects must be one of"):
        render_scene(np.random.default_rng(4), True, 60, 80, objects="plaid")

