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


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise ConfigError with the message of the first failed (ok, message) check."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
