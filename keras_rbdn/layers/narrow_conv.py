"""A convolution with few channels on one side, in forms that run faster."""

import keras
from keras import ops

from keras_rbdn import backend
from keras_rbdn.layers.conv import Conv2D


@keras.saving.register_keras_serializable(package="keras_rbdn")
class NarrowConv2D(Conv2D):
    """`Conv2D` for convolutions with few channels on one side.

    Same arguments, weights and function as `keras.layers.Conv2D`. RBDN's
    first and last layers (`conv1`, 9 x 9 from one channel; `deconv1`,
    9 x 9 to one channel) are such convolutions, which convolution
    kernels run far below their usual rate. For a stride-1, undilated,
    `"same"` convolution with an odd square kernel, a backend may compute
    it in another form with the same result to float rounding: as rows
    then a shift-sum, or between blocks of pixels
    (`keras_rbdn.backend.conv_forms`; which backends and devices use which,
    `docs/performance.md`). The form is chosen when the layer is built.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of 2 ints. Convolution window size.
        **kwargs: Any other `keras.layers.Conv2D` argument (`padding`,
            `use_bias`, initializers, regularizers, `name`, `dtype`, ...).

    Input shape:
        4D tensor `(batch_size, height, width, channels)`.

    Output shape:
        4D tensor `(batch_size, new_height, new_width, filters)`, as
        `keras.layers.Conv2D`.

    Example:

    >>> layer = NarrowConv2D(1, 9, padding="same")
    >>> tuple(layer(keras.random.uniform((2, 16, 16, 64))).shape)
    (2, 16, 16, 1)
    """

    def build(self, input_shape):
        super().build(input_shape)
        self._narrow_form = None
        if self._has_a_narrow_form():
            self._narrow_form = backend.find(
                "narrow_conv2d", tuple(self.kernel.shape)
            )

    @property
    def _form(self):
        """The name of the form chosen at `build`, or `None` (plain)."""
        form = getattr(self, "_narrow_form", None)
        return None if form is None else form.name

    def _has_a_narrow_form(self):
        """Whether this configuration has the forms: a stride-1,
        undilated "same" convolution with an odd square kernel."""
        height, width = self.kernel_size
        return (
            height == width
            and height % 2 == 1
            and height > 1
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding == "same"
            and self.groups == 1
            and self.data_format == "channels_last"
        )

    def call(self, inputs):
        form = getattr(self, "_narrow_form", None)
        if form is None:
            return super().call(inputs)
        kernel = ops.cast(self.kernel, inputs.dtype)
        bias = ops.cast(self.bias, inputs.dtype) if self.use_bias else None
        outputs = form.function(inputs, kernel, bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
