"""Named exceptions of the core, so adapters (node, CLI) can turn them into
failure records and one-line messages instead of tracebacks."""


class GraspSuccessError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelLoadError(GraspSuccessError):
    """A model file is missing, unreadable or not a grasp classifier."""


class ModelShapeError(ModelLoadError):
    """The model's input or output shape does not fit a grasp classifier."""


class UnsafeModelError(ModelLoadError):
    """Loading the model would run code stored in the file."""


class WeightsUnavailableError(GraspSuccessError):
    """Backbone weights cannot be had (no internet, missing file)."""


class ModelCardError(GraspSuccessError):
    """A model card is missing, malformed or contradicts its model."""


class ModelCardMismatchError(ModelCardError):
    """The card beside a model was written for another file (its digest or size differs)."""


class ModelPathRefusedError(ModelLoadError):
    """A model path the node's fence refuses: outside model_dirs or over max_model_mb."""


class ImageConversionError(GraspSuccessError):
    """An image message or file cannot be turned into an RGB frame."""


class DatasetError(GraspSuccessError):
    """A training or test folder cannot be used as it is."""


class ConfigError(GraspSuccessError):
    """A parameter value is out of range or inconsistent."""


class BagError(GraspSuccessError):
    """A rosbag2 recording is missing, unreadable or lacks what a bag tool needs."""


class MissingDependencyError(GraspSuccessError):
    """A command or model format needs a package this install leaves out."""


# What the full install (requirements.txt) adds to the robot runtime
# (requirements-robot.txt), by import name.
FULL_INSTALL_ONLY = ("tensorflow", "keras", "tf_keras", "h5py", "matplotlib", "tensorboard",
                     "onnx", "tf2onnx")


def missing_dependency(exc: ImportError, what: str) -> MissingDependencyError | None:
    """``exc`` as a one-line MissingDependencyError when it is a package that the robot
    runtime leaves out (None for any other import error, which is a real fault)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in FULL_INSTALL_ONLY:
        return None
    return MissingDependencyError(
        f"{what} needs {name}, which is not installed here: the robot runtime "
        "(requirements-robot.txt) serves exported .onnx / .tflite models without TensorFlow, "
        "Keras or matplotlib; install requirements.txt for this")


class TrainingInterrupted(GraspSuccessError):
    """Training stopped before its end: a signal (``signal``: its number) or an OSError
    such as a full disk (``signal`` None).  ``saved``: the model written with the best
    weights so far, with its card (None: no epoch had ended, or that write failed too)."""

    def __init__(self, message: str, signal: int | None = None, saved: str | None = None):
        super().__init__(message)
        self.signal = signal
        self.saved = saved


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise ConfigError with the message of the first failed (ok, message) check."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
