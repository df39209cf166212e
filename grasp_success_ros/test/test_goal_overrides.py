"""A VerifyGrasp goal's policy overrides are checked by the parameters' own rules
(core/params.py ``NodeConfig.goal_overrides``): a goal the node could never satisfy is
refused when it comes, not left to wait for its deadline."""

import dataclasses

import pytest

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.params import GOAL_PARAMS, NodeConfig
from grasp_success_ros.core.policy import N_FRAMES_RANGE, PolicyConfig


def config(**values) -> NodeConfig:
    return NodeConfig.from_values({"model_path": "m.keras", **values})


def test_a_goals_n_frames_beyond_the_parameter_range_is_refused():
    with pytest.raises(ConfigError, match="n_frames"):
        config().goal_overrides({"frame_selection": "n_after", "n_frames": N_FRAMES_RANGE[1] + 1})


def test_a_goals_n_frames_beyond_the_range_is_refused_whatever_the_selection():
    """The parameter's range holds for the field itself, as `ros2 param set` would check it."""
    with pytest.raises(ConfigError, match="n_frames"):
        config(frame_selection="first_after").goal_overrides({"n_frames": 100})


def test_a_goals_n_frames_in_range_but_over_half_the_buffer_is_refused():
    node = config(frame_selection="n_after", buffer_size=20)
    with pytest.raises(ConfigError, match="buffer_size must be at least 2 x n_frames"):
        node.goal_overrides({"n_frames": 15})


def test_a_goal_choosing_n_after_is_held_to_the_buffer_too():
    with pytest.raises(ConfigError, match="buffer_size"):
        config(buffer_size=20).goal_overrides({"frame_selection": "n_after", "n_frames": 15})


def test_a_goal_with_an_unknown_selection_is_refused():
    with pytest.raises(ConfigError, match="frame_selection"):
        config().goal_overrides({"frame_selection": "best_of_three"})


def test_a_valid_goal_override_maps_to_policy_config_field_names():
    overrides = config(buffer_size=20).goal_overrides(
        {"frame_selection": "n_after", "n_frames": 10, "combine": "vote"})
    assert overrides == {"selection": "n_after", "n_frames": 10, "combine": "vote"}
    policy = PolicyConfig().replace(**overrides)
    assert (policy.selection, policy.frames_needed, policy.combine) == ("n_after", 10, "vote")


def test_every_goal_parameter_names_a_policy_config_field():
    fields = {f.name for f in dataclasses.fields(PolicyConfig)}
    assert set(GOAL_PARAMS.values()) <= fields


def test_a_goal_without_overrides_keeps_the_nodes_policy():
    assert config().goal_overrides({}) == {}
