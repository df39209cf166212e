"""The lifecycle state of a node in another process, as a participant sees it: its
``~/get_state`` service (lifecycle_msgs/srv/GetState), not its log."""

from __future__ import annotations

import time
from collections.abc import Callable

from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from rclpy.node import Node

NODE_NAME = "grasp_success_node"


def current_state(participant: Node, node: str, timeout: float = 2.0) -> str | None:
    """The label of ``node``'s lifecycle state (``active``, ``inactive``...), None if its
    service did not answer within ``timeout``. ``participant`` must be spinning elsewhere
    (a StreamPlayer spins its own thread)."""
    client = participant.create_client(GetState, f"{node}/get_state")
    try:
        return _ask(client, timeout)
    finally:
        participant.destroy_client(client)


def wait_until_active(participant: Node, node: str, timeout: float,
                      alive: Callable[[], bool] = lambda: True, poll_s: float = 0.02) -> bool:
    """Poll ``node``'s state until it is active (True), or until ``timeout`` passes or
    ``alive()`` turns false (False): an autostarted node answers once configure and activate
    are done, a managed one once its manager has activated it."""
    client = participant.create_client(GetState, f"{node}/get_state")
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end and alive():
            if _ask(client, min(2.0, max(0.0, end - time.monotonic()))) == "active":
                return True
            time.sleep(poll_s)
        return False
    finally:
        participant.destroy_client(client)


def _ask(client, timeout: float) -> str | None:
    """One GetState call: the state's label, None without an answer in ``timeout``."""
    end = time.monotonic() + timeout
    if not client.wait_for_service(min(0.05, timeout)):
        return None
    future = client.call_async(GetState.Request())
    while not future.done() and time.monotonic() < end:
        time.sleep(0.005)
    if not future.done():
        client.remove_pending_request(future)
        return None
    state = future.result().current_state
    return "active" if state.id == State.PRIMARY_STATE_ACTIVE else state.label
