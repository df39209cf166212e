"""An action server whose cancelled goals are answered where rclpy allows it (``~/verify``,
``~/watch_hold``: a behaviour tree halting its leaf cancels the goal and waits for it).

rclpy calls the cancel callback before it marks the goal CANCELING, and
``goal_handle.canceled()`` is a legal transition only after that mark. So the cancel
callback only accepts and wakes a guard condition in the server's (mutually exclusive)
group; its callback, ``answer_cancelled``, runs once the cancel request is processed and
answers the goals that are cancel-requested by then. rclpy does not interrupt an execute
coroutine for a cancellation either: ``answer_cancelled`` resolves what the coroutine awaits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.action import ActionServer, CancelResponse


class CancellableServer:
    """rclpy's ActionServer with the guard condition that answers its cancelled goals."""

    def __init__(self, node, action_type: Any, name: str, execute: Callable,
                 goal_callback: Callable, answer_cancelled: Callable[[], None], group) -> None:
        self._node = node
        self._guard = node.create_guard_condition(answer_cancelled, group)
        self._server = ActionServer(node, action_type, name, execute,
                                    goal_callback=goal_callback,
                                    cancel_callback=self._on_cancel, callback_group=group)

    def recheck(self) -> None:
        """Run ``answer_cancelled`` again: a goal was cancelled before it began to wait."""
        self._guard.trigger()

    def destroy(self) -> None:
        self._server.destroy()
        self._node.destroy_guard_condition(self._guard)

    def _on_cancel(self, goal_handle) -> CancelResponse:
        self._guard.trigger()
        return CancelResponse.ACCEPT
