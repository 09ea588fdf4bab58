"""`keras.layers.Conv2D`, with a backend's faster form where it has one."""

import keras

from keras_rbdn import backend


@backend.operation("conv2d")
def conv2d(layer, inputs):
    """What `keras.layers.Conv2D` computes for `layer` (the reference)."""
    return keras.layers.Conv2D.call(layer, inputs)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`: same arguments, weights and function.

    A backend may compute it in a faster form of its own, with the same
    result (`keras_rbdn.backend`; under PyTorch, on channels-last maps
    without the copies Keras makes: `docs/performance.md`).

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of 2 ints. Convolution window size.
        **kwargs: Any other `keras.layers.Conv2D` argument.

    Input shape:
        4D tensor, as `keras.layers.Conv2D`.

    Output shape:
        4D tensor, as `keras.layers.Conv2D`.

    Example:

    >>> layer = Conv2D(8, 3, padding="same")
    >>> tuple(layer(keras.random.uniform((2, 16, 16, 3))).shape)
    (2, 16, 16, 8)
    """

    def call(self, inputs):
        return conv2d(self, inputs)
