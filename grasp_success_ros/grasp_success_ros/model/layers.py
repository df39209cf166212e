"""Safe stand-ins for layers that old files store as code."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="grasp_success_ros")
class ResidualScale(keras.layers.Layer):
    """``inputs[0] + inputs[1] * scale``: InceptionResNetV2's residual scaling.

    Keras 2 stored this as a ``Lambda`` (marshalled Python bytecode) or as
    ``CustomScaleLayer``; this layer computes the same thing without running
    code from the file.
    """

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return inputs[0] + inputs[1] * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
