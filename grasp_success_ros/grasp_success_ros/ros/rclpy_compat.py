"""Workarounds for rclpy defects, in one place (each names the rclpy versions it is for)."""

from __future__ import annotations


def guard_change_state(node, logger) -> None:
    """Refuse a transition the current state does not offer with success=false.

    rclpy 7.1 (Jazzy) lets rcl's "Transition is not registered" error escape the
    change_state service callback, which ends the executor's spin: one bad request
    killed the node (ros2/rclpy#1209, fixed upstream by ros2/rclpy#1319, not in the
    Jazzy wheels). rclpy offers no hook, so this wraps the service's callback; the two
    private names it needs are checked here, so an rclpy that renames them fails at
    start-up instead of losing the guard silently.
    """
    service = getattr(node, "_service_change_state", None)
    machine = getattr(node, "_state_machine", None)
    if service is None or not hasattr(machine, "available_transitions"):
        raise RuntimeError("rclpy's lifecycle internals changed: review "
                           "rclpy_compat.guard_change_state (ros2/rclpy#1209)")
    unguarded = service.callback

    def change_state(request, response):
        wanted = request.transition
        offered = [(tid, label) for tid, label, *_ in machine.available_transitions]
        if not any(label == wanted.label if wanted.label else tid == wanted.id
                   for tid, label in offered):
            logger.warning(f"refused transition id {wanted.id} label '{wanted.label}' from "
                           f"state {machine.current_state[1]}: offered {offered}")
            response.success = False
            return response
        return unguarded(request, response)

    service.callback = change_state
