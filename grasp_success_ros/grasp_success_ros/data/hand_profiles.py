"""Hand profiles by name or path: the node's ``hand_profile`` parameter and the CLI's
``--hand-profile`` read them here (README, "Hand profiles").

A shipped name (``allegro_v4``, ``allegro_v5``, ``robotiq_2f85``) is package data beside
this module (``hands/<name>.yaml``), so the venv's commands and a robot install find it
alike; colcon also installs the files to ``share/grasp_success_ros/config/hands``. Anything
else is a path to the user's own YAML.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.hands import HandProfile


def shipped_profiles() -> tuple[str, ...]:
    """The names of the profiles that ship with the package."""
    folder = resources.files("grasp_success_ros.data") / "hands"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_profile(name_or_path: str) -> HandProfile:
    """The profile named ``name_or_path`` (a shipped name) or stored there (a YAML path);
    ConfigError with the shipped names when neither."""
    value = str(name_or_path).strip()
    if value in shipped_profiles():
        source = resources.files("grasp_success_ros.data") / "hands" / f"{value}.yaml"
        return HandProfile.from_mapping(_read(source.read_text(), value), value)
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"hand profile {value!r} is neither a shipped one "
                          f"({', '.join(shipped_profiles())}) nor a YAML file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read hand profile {path}: {exc}") from None
    return HandProfile.from_mapping(_read(text, str(path)), str(path))


def _read(text: str, origin: str) -> object:
    from ruamel.yaml import YAML, YAMLError  # rosbags' own YAML reader (its dependency)

    try:
        doc = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ConfigError(f"hand profile {origin}: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"hand profile {origin} is not a map of fields")
    return doc
