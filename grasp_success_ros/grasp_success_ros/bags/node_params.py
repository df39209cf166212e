"""The node's ROS 2 parameters file, read for the bag tools (``bag-eval --params-file``), so
one file configures ``grasp_success_node`` and its offline evaluation alike.

Read as rcl reads it for the node: the sections that apply to it (``grasp_success_node``,
under any namespace, and the wildcards ``/**`` and ``/*``) merged in file order, nested maps
joined with dots, each value typed as the node declares it (its default's type: an integer
is not a double, as rclpy refuses it), the ``cameras`` list with its ``cameras.NAME.*``.
Names the node does not know are an error naming them; ROS's own (``use_sim_time``,
``qos_overrides.*``) are known and mean nothing offline. The values' ranges and rules are
the node's table's (``core/params.NodeConfig``), checked by the caller with its options.
No ROS import: the YAML reader is the one rosbags depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grasp_success_ros.bags.topics import DEFAULT_LABEL_TOPIC, BagTopics
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.params import (
    CAMERA_FIELDS,
    PARAMS,
    CameraTopics,
    camera_param_name,
    check_camera_names,
)

NODE_NAME = "grasp_success_node"
NODE_KEYS = (NODE_NAME, "**", "*")  # a section's last name segment that applies to the node
ROS_PARAMS = ("use_sim_time", "start_type_description_service")  # every rclpy node's
ROS_PREFIXES = ("qos_overrides.",)  # the subscriptions' QoS overrides
SPECS = {spec.name: spec for spec in PARAMS}


@dataclass(frozen=True)
class NodeParams:
    """What a params file sets for the node: its table's values (typed, not yet validated)
    and its cameras (empty: the node's one camera on its own topics)."""

    path: Path
    values: dict[str, Any]
    cameras: tuple[CameraTopics, ...] = ()


def read_node_params(path: str | Path) -> NodeParams:
    """The node's parameters in the file at ``path``; ConfigError (one line) for a file
    that cannot be read, applies nothing to the node, or sets what the node does not know
    or to a value of the wrong type."""
    path = Path(path)
    flat = _node_section(_load(path), path)
    cameras = _cameras(flat, path)
    unknown = sorted(name for name in flat if name not in SPECS and name not in ROS_PARAMS
                     and not name.startswith(ROS_PREFIXES))
    if unknown:
        raise ConfigError(f"params file {path}: {NODE_NAME} has no parameter "
                          f"{', '.join(unknown)}")
    values = {name: _typed(name, value, path) for name, value in flat.items()
              if name in SPECS}
    return NodeParams(path, values, cameras)


def _load(path: Path) -> Any:
    from ruamel.yaml import YAML, YAMLError  # rosbags' own YAML reader (its dependency)

    try:
        return YAML(typ="safe").load(path.read_text())
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot read params file {path}: {detail}") from None


def _node_section(doc: Any, path: Path) -> dict[str, Any]:
    """The ``ros__parameters`` of every section for the node, flattened and merged."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"params file {path} is not a ROS 2 parameters file (a map of node "
                          f"names to ros__parameters)")
    merged: dict[str, Any] = {}
    keys = [key for key in doc if str(key).rstrip("/").rsplit("/", 1)[-1] in NODE_KEYS]
    for key in keys:
        section = doc[key]
        params = section.get("ros__parameters") if isinstance(section, Mapping) else None
        if not isinstance(params, Mapping):
            raise ConfigError(f"params file {path}: section {key} has no ros__parameters map")
        merged.update(_flatten(params))
    if not keys:
        raise ConfigError(f"params file {path} has no parameters for {NODE_NAME} (sections: "
                          f"{', '.join(map(str, doc)) or 'none'}; expected {NODE_NAME} or /**)")
    return merged


def _flatten(params: Mapping, prefix: str = "") -> dict[str, Any]:
    """Nested maps as dotted names, as rcl reads them (``qos_overrides: {/camera/image_raw:
    {...}}`` is ``qos_overrides./camera/image_raw.*``)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        flat.update(_flatten(value, f"{name}.") if isinstance(value, Mapping) else
                    {name: value})
    return flat


def _typed(name: str, value: Any, path: Path) -> Any:
    """``value`` if it has the type the node declares ``name`` with (its default's)."""
    default, hint = SPECS[name].default, ""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "a bool (true or false)"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, kind = isinstance(value, float), "a double"
        whole = isinstance(value, int) and not isinstance(value, bool)
        hint = f" (write {value}.0)" if whole else ""
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        kind = "a list of strings"
    else:
        ok, kind = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"params file {path}: {name} must be {kind}, as the node declares "
                          f"it, not {value!r}{hint}")
    return value


def _string(value: Any, name: str, path: Path) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"params file {path}: {name} must be a string, not {value!r}")
    return value


def _cameras(flat: dict[str, Any], path: Path) -> tuple[CameraTopics, ...]:
    """The ``cameras`` list and each camera's ``cameras.NAME.*``, taken out of ``flat``."""
    names = flat.pop("cameras", [])
    if not isinstance(names, list) or not all(isinstance(v, str) and v for v in names):
        raise ConfigError(f"params file {path}: cameras must be a list of camera names, "
                          f"not {names!r}")
    try:
        return tuple(CameraTopics.named(name, {
            field: _string(flat.pop(camera_param_name(name, field), ""),
                           camera_param_name(name, field), path)
            for field in CAMERA_FIELDS}) for name in check_camera_names(names))
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith("params file") else
                          f"params file {path}: {message}") from None


# ------------------------------------------------------------------------- topics


def resolve(name: str) -> str:
    """A topic name as the node in the root namespace resolves it (bags record absolute
    names): relative under "/", private (``~``) under the node's name."""
    if name.startswith("~"):
        return f"/{NODE_NAME}/{name[1:].lstrip('/')}".rstrip("/")
    return name if name.startswith("/") else f"/{name}"


def camera_topics(camera: CameraTopics, trigger_type: str, image_transport: str = "raw",
                  label_topic: str = DEFAULT_LABEL_TOPIC) -> BagTopics:
    """Where one camera of a params file is in a bag: its image topic (``/compressed``
    under ``image_transport`` compressed, as the node subscribes), its trigger and release
    topics, and ``label_topic`` in its namespace (``/NAMESPACE/grasp_success/ground_truth``)."""
    image = resolve(camera.image_topic)
    image += "/compressed" if image_transport == "compressed" else ""
    namespace = resolve(camera.namespace).rstrip("/")
    return BagTopics(image=image, trigger=resolve(camera.trigger_topic),
                     label=f"{namespace}/{label_topic.lstrip('/')}", trigger_type=trigger_type,
                     release=resolve(camera.release_topic))
