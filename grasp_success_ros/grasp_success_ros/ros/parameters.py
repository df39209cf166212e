"""The node's parameters as ROS declares them: descriptors with ranges from the one table
(core/params.py), and the per-camera parameters whose names come from the ``cameras`` list."""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from grasp_success_ros.core.params import (
    CAMERA_FIELDS,
    PARAMS,
    CameraTopics,
    NodeConfig,
    ParamSpec,
    camera_param_name,
    check_camera_names,
)


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The spec's description, read-only flag, choices and range, as ROS tools show them."""
    desc = ParameterDescriptor(description=spec.description, read_only=not spec.dynamic)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if isinstance(spec.default, bool) or spec.min is None:
        return desc
    if isinstance(spec.default, int):
        desc.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max),
                                           step=1)]
    else:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min),
                                                        to_value=float(spec.max), step=0.0)]
    return desc


def declare_parameters(node: Node) -> NodeConfig:
    """Declare every parameter of the table once; the validated config of their values."""
    values = {}
    for spec in PARAMS:  # a list's type is named: rclpy takes an empty one for bytes
        default = Parameter.Type.STRING_ARRAY if isinstance(spec.default, list) \
            else spec.default
        value = node.declare_parameter(spec.name, default, descriptor(spec)).value
        values[spec.name] = spec.default if value is None else value
    return NodeConfig.from_values(values)


def declare_cameras(node: Node) -> list[CameraTopics]:
    """The ``cameras`` parameter and, per listed NAME, ``cameras.NAME.*`` (read-only, from
    the params file or -p; declared here since their names come from the list). Empty: the
    one camera of the node's own topics."""
    read_only = ParameterDescriptor(
        read_only=True, description="Camera names judged by this node's one model; each "
        "NAME reads cameras.NAME.image_topic, .trigger_topic, .namespace. Empty: one "
        "camera on camera/image_raw and grasp_completed.")
    names = node.declare_parameter("cameras", Parameter.Type.STRING_ARRAY, read_only).value
    if not names:
        return [CameraTopics("")]
    cameras = []
    for name in check_camera_names(list(names)):
        values = {field: node.declare_parameter(
            camera_param_name(name, field), "",
            ParameterDescriptor(description=text, read_only=True)).value
            for field, text in CAMERA_FIELDS.items()}
        cameras.append(CameraTopics.named(name, values))
    return cameras
