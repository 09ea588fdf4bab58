"""`keras.layers.BatchNormalization`, with a backend's faster form."""

import keras

from keras_rbdn import backend


@backend.operation("batch_normalization")
def batch_normalization(layer, inputs, training, mask):
    """What `keras.layers.BatchNormalization` computes for `layer` (the
    reference), moving statistics updated in training."""
    return keras.layers.BatchNormalization.call(
        layer, inputs, training=training, mask=mask
    )


@keras.saving.register_keras_serializable(package="keras_rbdn")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`: same arguments, weights and function.

    A backend may compute it in a faster form of its own
    (`keras_rbdn.backend`; under PyTorch, in its native kernel:
    `docs/performance.md`). Results agree with Keras' to float rounding.

    Args:
        **kwargs: Any `keras.layers.BatchNormalization` argument.

    Input shape:
        Arbitrary, as `keras.layers.BatchNormalization`.

    Output shape:
        Same shape as input.

    Example:

    >>> layer = BatchNormalization()
    >>> tuple(layer(keras.random.uniform((2, 8, 8, 3))).shape)
    (2, 8, 8, 3)
    """

    def call(self, inputs, training=None, mask=None):
        training = bool(training and self.trainable)
        return batch_normalization(self, inputs, training, mask)
