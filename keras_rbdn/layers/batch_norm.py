"""`keras.layers.BatchNormalization`, in PyTorch's own kernel under PyTorch."""

import math

import keras
from keras import ops

from keras_rbdn.layers.conv import eager_torch


@keras.saving.register_keras_serializable(package="keras_rbdn")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`: same arguments, weights and function.

    Only the PyTorch backend computes it differently. Keras 3.15.1 builds
    it there from separate tensor operations: in training, three passes
    over the input for the moments, three to normalize, and autograd's
    many more for the gradient. This layer hands the whole computation to
    `torch.nn.functional.batch_norm`, one native kernel forward and one
    backward, on the channels-first view of channels-last maps (no copy):
    training is faster (`docs/performance.md`, "BatchNormalization under
    PyTorch").

    What it computes is Keras': the input is normalized with the batch's
    mean and biased variance in training (with gradients through both) and
    with the moving statistics otherwise; the moving statistics are
    updated with Keras' `momentum` rule; half-precision inputs are computed
    in float32 and the output cast back. Results agree with Keras' to float
    rounding (PyTorch sums the variance in another order).

    Other backends, graphs compiled with `torch.compile` (as for
    `keras_rbdn.layers.Conv2D`), masks, `renorm`, and training batches with
    a single value per channel use Keras' own code.

    Args:
        **kwargs: Any `keras.layers.BatchNormalization` argument.

    Example:

    >>> layer = BatchNormalization()
    >>> tuple(layer(keras.random.uniform((2, 8, 8, 3))).shape)
    (2, 8, 8, 3)
    """

    def call(self, inputs, training=None, mask=None):
        training = bool(training and self.trainable)
        if not self._torch_computes(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        values_per_channel = math.prod(inputs.shape) // inputs.shape[self.axis]
        if training and values_per_channel < 2:
            # PyTorch rejects training batches with one value per channel;
            # Keras normalizes them to zero.
            return super().call(inputs, training=training, mask=mask)
        import torch

        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = torch.movedim(
            ops.convert_to_tensor(ops.cast(inputs, compute_dtype)), self.axis, 1
        )
        gamma = ops.cast(self.gamma, compute_dtype) if self.scale else None
        beta = ops.cast(self.beta, compute_dtype) if self.center else None
        moving_mean = ops.cast(self.moving_mean, compute_dtype)
        moving_variance = ops.cast(self.moving_variance, compute_dtype)
        if training:
            # PyTorch updates the running statistics it is given in place,
            # as `(1 - m) * running + m * batch` with `m` its momentum, and
            # with the unbiased variance. Handed copies of Keras' moving
            # statistics, with the variance scaled by n / (n - 1) (n values
            # per channel) and `m` Keras' 1 - momentum, that is Keras'
            # update times n / (n - 1).
            unbias = values_per_channel / (values_per_channel - 1)
            moving_mean = moving_mean.detach().clone()
            moving_variance = moving_variance.detach() * unbias
        outputs = torch.nn.functional.batch_norm(
            x,
            moving_mean,
            moving_variance,
            gamma,
            beta,
            training=training,
            momentum=1.0 - self.momentum,
            eps=self.epsilon,
        )
        if training:
            self.moving_mean.assign(moving_mean)
            self.moving_variance.assign(moving_variance / unbias)
        outputs = torch.movedim(outputs, 1, self.axis)
        return ops.cast(outputs, self.compute_dtype)

    def _torch_computes(self, inputs, mask):
        return (
            eager_torch()
            and mask is None
            and not self.renorm
            and len(inputs.shape) >= 2
        )
