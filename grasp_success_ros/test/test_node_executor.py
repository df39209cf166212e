"""The node's executor gets one pool thread per callback group the node creates, counted
from what it creates: a group added without its thread would make callbacks wait their turn
(``main`` once sized the pool from a constant and ``node._cameras``)."""

from __future__ import annotations

import pytest
from rclpy.parameter import Parameter

from grasp_success_ros.ros.node import GraspSuccessNode
from grasp_success_ros.ros.rclpy_compat import InlineCallbackGroup

pytestmark = pytest.mark.ros


def created_groups(node) -> set[int]:
    """The callback groups of everything the node has created that a pool thread runs."""
    entities = [*node.subscriptions, *node.timers, *node.guards, *node.services,
                *node.clients, *node.waitables]
    return {id(e.callback_group) for e in entities
            if not isinstance(e.callback_group, InlineCallbackGroup)}


@pytest.fixture
def make_node(ros, trained_model):
    """A node built with parameter overrides (no warm-up, to stay quick); destroyed after."""
    made = []

    def make(*overrides: Parameter) -> GraspSuccessNode:
        node = GraspSuccessNode(parameter_overrides=[
            Parameter("model_path", value=str(trained_model)),
            Parameter("warmup", value=False), *overrides])
        made.append(node)
        return node

    yield make
    for node in made:
        node.destroy_node()


@pytest.mark.parametrize("cameras", [[], ["left", "right", "top"]], ids=["one", "three"])
def test_executor_threads_known_before_configure_match_the_groups_of_an_active_node(
        make_node, cameras):
    node = make_node(*([Parameter("cameras", value=cameras)] if cameras else []))
    threads = node.executor_threads  # what main sizes the executor with, before it spins
    assert node.start()  # configure + activate: the action server, subscriptions, publishers
    assert threads == len(created_groups(node))
