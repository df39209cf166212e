"""Safe stand-ins for layers that old files store as code, and the initialiser the seed's
``.h5`` loader builds with."""

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


class Unwritten(keras.initializers.Initializer):
    """Memory for the weight, not written (TensorFlow's ``Empty``): for weights that are
    loaded over it at once.  Unlike zeros, untouched pages cost no resident memory, and the
    buffer is let go when the loaded value replaces it."""

    def __call__(self, shape, dtype=None):
        import tensorflow as tf

        return tf.raw_ops.Empty(shape=shape, dtype=dtype or "float32", init=False)
