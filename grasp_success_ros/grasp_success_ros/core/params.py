"""The node's parameters: one table (names, defaults, ranges, descriptions) and a typed,
validated config built from it.  No ROS imports, so the launch/params tests and the docs
read the same table the node declares from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from grasp_success_ros.core.clocks import FRAME_STAMPS
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.hold import HoldConfig
from grasp_success_ros.core.policy import (
    COMBINES,
    N_FRAMES_RANGE,
    SELECTIONS,
    PolicyConfig,
    thresholds_for,
)
from grasp_success_ros.core.triggers import TRIGGER_MSGTYPES

TRIGGER_TYPES = tuple(TRIGGER_MSGTYPES)
IMAGE_TRANSPORTS = ("raw", "compressed")
# What runs .onnx models: ONNX Runtime, or OpenVINO (optional extra) on one of its devices
# in FP32 or, where the device has it and the card's parity record allows it, bf16.
ONNX_RUNTIMES = ("onnxruntime", "openvino")
OPENVINO_DEVICES = ("CPU", "GPU", "NPU", "AUTO")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter. ``dynamic`` ones may change while the node runs."""

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    dynamic: bool = False


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "Model file (.keras, a seed .h5, or an exported .onnx / "
              ".tflite); its card is <stem>.card.json beside it. Required. Setting it while "
              "a model is loaded loads the new one beside it and swaps it in; a model that "
              "cannot serve is refused with the reason and the old one keeps serving.",
              dynamic=True),
    ParamSpec("onnx_providers", "", "ONNX Runtime execution providers for .onnx models, "
              "comma-separated, in order (e.g. cuda,cpu; full names such as "
              "CUDAExecutionProvider too). Empty: the best available of TensorRT, CUDA, CPU. "
              "The CPU provider is always the last fallback; an unavailable one is refused "
              "at load with the available ones listed."),
    ParamSpec("onnx_runtime", "onnxruntime", "What runs .onnx models: onnxruntime (ONNX "
              "Runtime, on onnx_providers) or openvino (the optional OpenVINO runtime, on "
              "openvino_device in openvino_precision). Ignored for .keras / .tflite models. "
              "Setting it (or the two below) while serving loads the model anew and swaps "
              "it in, as model_path does.", choices=ONNX_RUNTIMES, dynamic=True),
    ParamSpec("openvino_device", "CPU", "onnx_runtime openvino: the OpenVINO device (CPU, an "
              "Intel integrated GPU, NPU, or AUTO to let OpenVINO choose); one not present "
              "is refused at load with the present ones listed.", choices=OPENVINO_DEVICES,
              dynamic=True),
    ParamSpec("openvino_precision", "fp32", "onnx_runtime openvino: fp32, or bf16 (about 2x "
              "faster on CPUs with AVX-512 BF16 or AMX). bf16 on a device without it runs "
              "fp32 and says why (log, /diagnostics device); bf16 is refused for a model "
              "whose card has no bf16 parity record ('export --check-openvino bf16') or "
              "whose verdicts flip on more than 1 % of its parity inputs.", choices=PRECISIONS,
              dynamic=True),
    ParamSpec("allow_custom_code", False, "Load models that carry Python code (Lambda "
              "layers). Only for files you trust."),
    ParamSpec("accept_card_mismatch", False, "Serve a model whose card was written for "
              "another file (its recorded SHA-256 or size differs), with a warning; false: "
              "such a model is refused (see README, 'Model card')."),
    ParamSpec("model_dirs", [], "Directories a model (and its card) may be loaded from, "
              "checked on the real path with symlinks resolved, at configure and for every "
              "model_path set. Empty: anywhere."),
    ParamSpec("max_model_mb", 2048, "Largest model file loaded, in MB (10^6 bytes), any "
              "format, checked before loading, at configure and for every model_path set. "
              "0: no limit.", min=0, max=1_000_000),
    ParamSpec("image_transport", "raw", "raw: sensor_msgs/Image on camera/image_raw; "
              "compressed: sensor_msgs/CompressedImage on camera/image_raw/compressed.",
              choices=IMAGE_TRANSPORTS),
    ParamSpec("trigger_type", "empty", "Message type on grasp_completed: empty (std_msgs/"
              "Empty), bool (std_msgs/Bool, true = completed), header (std_msgs/Header, its "
              "stamp is the event time), string (std_msgs/String).", choices=TRIGGER_TYPES),
    ParamSpec("frame_selection", "first_after", "first_after: the first frame stamped at or "
              "after event + settle_s; latest: the newest frame at the event; n_after: the "
              "first n_frames frames after event + settle_s.", choices=SELECTIONS),
    ParamSpec("n_frames", 5, "Frames per verdict for frame_selection n_after.",
              min=N_FRAMES_RANGE[0], max=N_FRAMES_RANGE[1]),
    ParamSpec("combine", "mean", "How n_after frames become one verdict: mean probability, "
              "or majority vote.", choices=COMBINES),
    ParamSpec("streaming", True, "n_after: classify each frame as it arrives (batch 1), so "
              "the verdict comes one forward pass after the n-th frame; false: all n_frames "
              "in one batch once the n-th is here. The records are the same."),
    ParamSpec("settle_s", 0.0, "Seconds after the event before frames count (lets the hand "
              "settle).", min=0.0, max=5.0),
    ParamSpec("deadline_s", 2.0, "Seconds after the event by which the frames must be stamped;"
              " past it the event gets a failure record.", min=0.05, max=30.0, dynamic=True),
    ParamSpec("max_frame_age_s", 0.5, "Oldest frame (s before the event) that latest accepts, "
              "for events and VerifyGrasp goals.", min=0.01, max=10.0, dynamic=True),
    # --- clocks (core/clocks.py) ---
    ParamSpec("frame_stamp", "header", "How frames are timed: header (their stamps; the "
              "camera's clock must agree with this node's) or arrival (their arrival on this "
              "node's clock, for a camera whose clock cannot be synced). Switching empties "
              "the frame buffers.", choices=FRAME_STAMPS, dynamic=True),
    ParamSpec("clock_tolerance_s", 0.2, "How much later than its arrival a frame (or Header "
              "trigger) may be stamped before its time is impossible: an event judged with "
              "such a frame gets clock_skew, /diagnostics WARN (ERROR past 5x). At least the "
              "/clock period times the replay rate under sim time (ros2 bag play --clock: "
              "40 Hz, so 0.2 covers --rate 8).", min=0.001, max=3600.0, dynamic=True),
    ParamSpec("threshold", -1.0, "Success when P(success) >= threshold. Negative: use the "
              "model card's threshold (and threshold_failure).", min=-1.0, max=1.0,
              dynamic=True),
    ParamSpec("threshold_failure", -1.0, "Failure when P(success) <= threshold_failure; "
              "between it and threshold no verdict (error_code uncertain). Negative: one "
              "threshold, or the card's pair when threshold is negative too. Needs threshold "
              "set, and <= threshold.", min=-1.0, max=1.0, dynamic=True),
    # --- more than one witness (core/evidence.py; README, "Hand profiles") ---
    ParamSpec("hand_profile", "", "The hand beside the camera: a shipped profile's name "
              "(allegro_v4, allegro_v5, robotiq_2f85) or a path to a profile YAML. The node "
              "then subscribes to the profile's joint_states (and command and tactile topics) "
              "and each verdict fuses the camera's and the joints' P(success). Empty: vision "
              "only. With several cameras, cameras.NAME.hand_profile overrides it per camera."),
    ParamSpec("hand_model", "", "A hand card (JSON, 'grasp-success train-hand'): a trained "
              "joint model and a fitted fusion for the hand_profile. Empty: the profile's "
              "no-training rule and the default fusion (weights 1, README)."),
    ParamSpec("hold_watch", False, "After a SUCCESS, watch the hold until the grasp manager's "
              "release event (grasp_released, the trigger_type's message) or hold_timeout_s: "
              "the joints on every message, the camera every hold_camera_every-th frame; one "
              "GraspHold per hold on grasp_success/hold (LOST, RELEASED, TIMEOUT, ENDED) and "
              "the WatchHold action."),
    ParamSpec("hold_camera_every", 5, "During a hold, judge every n-th camera frame (0: the "
              "joints alone watch).", min=0, max=300),
    ParamSpec("hold_timeout_s", 60.0, "A hold with no release event ends TIMEOUT after this.",
              min=0.5, max=3600.0),
    ParamSpec("buffer_size", 90, "Camera frames kept (undecoded) for events; 90 = 3 s at "
              "30 Hz.", min=2, max=600),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics messages.", min=0.1,
              max=60.0),
    ParamSpec("warmup", True, "Run the model once per batch size before reporting ready."),
    ParamSpec("autostart", True, "Configure and activate at start (lifecycle); false: wait "
              "for a lifecycle manager's transitions."),
)

PARAM_NAMES = tuple(p.name for p in PARAMS)
# A VerifyGrasp goal may set these parameters for its own event (its fields carry their
# names): parameter -> PolicyConfig field.
GOAL_PARAMS = {"frame_selection": "selection", "n_frames": "n_frames", "combine": "combine"}


def parse_providers(value: str | Sequence[str]) -> tuple[str, ...]:
    """ONNX Runtime provider names from a comma string (the parameter, ``--providers``) or
    a list (Python, YAML); () for "" (the best available). Whether each is available is the
    runtime's check, at load."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(n).strip() for n in items)
    if names in ((), ("",)):
        return ()
    if not all(names) or len(set(names)) != len(names):
        raise ConfigError(f"ONNX Runtime providers must be distinct comma-separated names "
                          f"(e.g. cuda,cpu), not {value!r}")
    return names


@dataclass(frozen=True)
class OnnxRuntimeChoice:
    """What runs an .onnx model: ONNX Runtime, or OpenVINO on ``device`` in ``precision``
    (the node's onnx_runtime / openvino_* parameters, the CLI's --onnx-runtime ...)."""

    runtime: str = "onnxruntime"
    device: str = "CPU"
    precision: str = "fp32"

    def validate(self) -> OnnxRuntimeChoice:
        for name, value, choices in (("onnx runtime", self.runtime, ONNX_RUNTIMES),
                                     ("OpenVINO device", self.device, OPENVINO_DEVICES),
                                     ("OpenVINO precision", self.precision, PRECISIONS)):
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        return self

    @property
    def openvino(self) -> bool:
        return self.runtime == "openvino"


@dataclass(frozen=True)
class NodeConfig:
    """Typed view of the parameters, validated before anything is loaded."""

    model_path: str
    onnx_providers: str | tuple[str, ...]
    onnx_runtime: str
    openvino_device: str
    openvino_precision: str
    allow_custom_code: bool
    accept_card_mismatch: bool
    model_dirs: Sequence[str]
    max_model_mb: int
    image_transport: str
    trigger_type: str
    frame_selection: str
    n_frames: int
    combine: str
    streaming: bool
    settle_s: float
    deadline_s: float
    max_frame_age_s: float
    frame_stamp: str
    clock_tolerance_s: float
    threshold: float
    threshold_failure: float
    hand_profile: str
    hand_model: str
    hold_watch: bool
    hold_camera_every: int
    hold_timeout_s: float
    buffer_size: int
    diagnostics_period_s: float
    warmup: bool
    autostart: bool

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> NodeConfig:
        unknown = set(values) - set(PARAM_NAMES)
        if unknown:
            raise ConfigError(f"unknown parameters: {', '.join(sorted(unknown))}")
        merged = {p.name: values.get(p.name, p.default) for p in PARAMS}
        return cls(**merged).validate()

    def validate(self) -> NodeConfig:
        for spec in PARAMS:
            value = getattr(self, spec.name)
            if spec.choices and value not in spec.choices:
                raise ConfigError(f"{spec.name} must be one of {spec.choices}, not {value!r}")
            if spec.min is not None and not spec.min <= value <= spec.max:
                raise ConfigError(f"{spec.name} must be in [{spec.min}, {spec.max}], not {value}")
        if not self.model_path:
            raise ConfigError("model_path is empty: set it to a .keras, .h5, .onnx or .tflite "
                              "model file")
        self.providers  # noqa: B018 (validates the list)
        if isinstance(self.model_dirs, str) or not all(
                isinstance(d, str) and d for d in self.model_dirs):
            raise ConfigError(f"model_dirs must be a list of directories, not "
                              f"{self.model_dirs!r}")
        if self.frame_selection == "n_after" and self.buffer_size < 2 * self.n_frames:
            raise ConfigError("buffer_size must be at least 2 x n_frames")
        self.policy(0.5)
        return self

    def changed(self, values: dict[str, Any]) -> NodeConfig | None:
        """This config with the parameters among ``values`` that are the node's own
        changed and validated (ConfigError); None when none of them is."""
        changes = {name: value for name, value in values.items() if name in PARAM_NAMES}
        return NodeConfig.from_values({**self.__dict__, **changes}) if changes else None

    def goal_overrides(self, values: dict[str, Any]) -> dict[str, Any]:
        """A goal's own values of :data:`GOAL_PARAMS` as PolicyConfig overrides, checked by
        the parameters' own rules (their ranges, buffer_size >= 2 x n_frames): a goal the
        node could never satisfy is refused. Raises ConfigError."""
        unknown = set(values) - set(GOAL_PARAMS)
        if unknown:
            raise ConfigError(f"a goal cannot set {', '.join(sorted(unknown))}")
        replace(self, **values).validate()
        return {GOAL_PARAMS[name]: value for name, value in values.items()}

    @property
    def hold(self) -> HoldConfig:
        """The watch over the hold (core/hold.py) these parameters ask for."""
        return HoldConfig(self.hold_watch, self.hold_camera_every, self.hold_timeout_s)

    @property
    def providers(self) -> tuple[str, ...]:
        """``onnx_providers`` as names; empty: the runtime chooses the best available."""
        return parse_providers(self.onnx_providers)

    @property
    def onnx_choice(self) -> OnnxRuntimeChoice:
        """What runs an .onnx model_path (onnx_runtime, openvino_device, openvino_precision)."""
        return OnnxRuntimeChoice(self.onnx_runtime, self.openvino_device,
                                 self.openvino_precision)

    def policy(self, card_threshold: float,
               card_threshold_failure: float | None = None) -> PolicyConfig:
        """The decision policy; negative threshold parameters defer to the model card's pair
        (``policy.thresholds_for``)."""
        threshold, threshold_failure = thresholds_for(
            self.threshold, self.threshold_failure, card_threshold, card_threshold_failure)
        return PolicyConfig(
            selection=self.frame_selection, n_frames=self.n_frames, combine=self.combine,
            settle_s=self.settle_s, max_frame_age_s=self.max_frame_age_s,
            deadline_s=self.deadline_s, threshold=threshold,
            threshold_failure=threshold_failure, frame_stamp=self.frame_stamp,
            clock_tolerance_s=self.clock_tolerance_s,
        ).validate()


# --- several cameras in one node (the ``cameras`` parameter) -----------------------------
# ``cameras`` lists camera names; each NAME reads ``cameras.NAME.<field>`` (read-only, from
# the params file or -p), defaulting to topics under NAME. Empty: the one camera of today's
# topics (camera/image_raw, grasp_completed) with the outputs at grasp_success...
CAMERA_FIELDS = {
    "image_topic": "Camera image topic of this camera (sensor_msgs/Image; with image_transport "
                   "compressed its /compressed sub-topic). Default: NAME/camera/image_raw.",
    "trigger_topic": "Grasp-completed topic of this camera's hand. Default: "
                     "NAME/grasp_completed.",
    "namespace": "Where this camera's answers go: <namespace>/grasp_success, "
                 "<namespace>/grasp_success/result, <namespace>/grasp_success/debug_image. "
                 "Default: NAME.",
    "hand_profile": "This camera's hand profile (a shipped name or a YAML path). Default: the "
                    "node's hand_profile; 'none': vision only for this camera.",
    "joint_states_topic": "This camera's hand's joint states. Default: NAME/<the profile's "
                          "joint_states_topic>.",
    "release_topic": "This camera's hand's release events (hold_watch). Default: "
                     "NAME/grasp_released.",
}


@dataclass(frozen=True)
class CameraTopics:
    """One camera's input topics and output namespace ("" : the node's own namespace)."""

    name: str
    image_topic: str = "camera/image_raw"
    trigger_topic: str = "grasp_completed"
    namespace: str = ""
    hand_profile: str = ""  # "": the node's hand_profile; "none": vision only
    joint_states_topic: str = ""  # "": the profile's topic (under NAME for a named camera)
    release_topic: str = "grasp_released"

    @classmethod
    def named(cls, name: str, values: dict[str, Any]) -> CameraTopics:
        """Camera ``name`` with ``values`` (field -> value; "" or missing: the default)."""
        if not name.replace("_", "").isalnum() or name[0].isdigit():
            raise ConfigError(f"camera names must be ROS name tokens (letters, digits, _), "
                              f"not {name!r}")
        defaults = {"image_topic": f"{name}/camera/image_raw",
                    "trigger_topic": f"{name}/grasp_completed", "namespace": name,
                    "hand_profile": "", "joint_states_topic": "",
                    "release_topic": f"{name}/grasp_released"}
        return cls(name, **{f: values.get(f) or defaults[f] for f in CAMERA_FIELDS})

    def output(self, topic: str) -> str:
        """``topic`` (an answer topic) in this camera's output namespace."""
        return f"{self.namespace.rstrip('/')}/{topic}" if self.namespace else topic


def camera_param_name(camera: str, field: str) -> str:
    """The parameter holding ``field`` of camera ``camera`` (e.g. cameras.left.namespace)."""
    return f"cameras.{camera}.{field}"


def check_camera_names(names: Sequence[str]) -> tuple[str, ...]:
    """The ``cameras`` list, refused when a name repeats (two cameras on one namespace)."""
    if len(set(names)) != len(names):
        raise ConfigError(f"cameras must be distinct names, not {list(names)}")
    return tuple(names)
