"""DnCNN, the speed baseline of `benchmarks/speed.py`.

DnCNN (Zhang, Zuo, Chen, Meng & Zhang, "Beyond a Gaussian Denoiser:
Residual Learning of Deep CNN for Image Denoising", IEEE TIP 2017) with
depth 17, the gray-denoising configuration of the paper:

- layer 1: 3x3 convolution, 64 filters, ReLU;
- layers 2..16: 3x3 convolution (64 filters, no bias), batch
  normalization, ReLU;
- layer 17: 3x3 convolution to the image channels, which predicts the
  noise; the model returns the input minus that residual.

About 554k multiply-adds per pixel and 556k parameters for gray images.
It lives in `benchmarks/`, not in the library: it is only a yardstick,
built from the same Keras layers in the same backend as RBDN. Its last
layer (to the image channels) and its first are
`keras_rbdn.layers.NarrowConv2D`s, as RBDN's `deconv1` and `conv1` are:
same weights and function as `Conv2D`, and the same faster computation
where it applies, so that the comparison does not favour RBDN: the rows
form for few output channels, on TensorFlow (on this CPU it halves the
last layer's inference time) and under JAX on a GPU (1.58x for the last
layer on an H100). The blocks form that RBDN's 9x9 layers use on a GPU
is not used for 3x3 kernels (`conv_forms.MIN_BLOCKS_KERNEL_SIZE`): on an H100 it
was slower for both of DnCNN's 3x3 layers (`conv_forms.py --kernel-size
3`, `docs/performance.md`, "NarrowConv2D"). Its other layers are
`keras_rbdn.layers.Conv2D`s and `BatchNormalization`s, as RBDN's are,
which skip Keras' input copies and run batch normalization in one
kernel under PyTorch.
"""

import keras

from keras_rbdn.layers import BatchNormalization
from keras_rbdn.layers import Conv2D
from keras_rbdn.layers import NarrowConv2D
from keras_rbdn.models.folding import copy_folded_weights


def dncnn(depth=17, filters=64, channels=1, batch_norm=True, name="dncnn"):
    """Builds an uncompiled DnCNN.

    Args:
        depth: int. Number of convolution layers. Defaults to `17`.
        filters: int. Feature maps of the hidden layers. Defaults to `64`.
        channels: int. Image channels in and out. Defaults to `1`.
        batch_norm: bool. `False` builds the inference form of
            `fold_batch_norm` (layers 2..16 with a bias and no
            normalization). Defaults to `True`.
        name: str. Model name. Defaults to `"dncnn"`.

    Returns:
        A `keras.Model` mapping `(batch, height, width, channels)` noisy
        images to denoised images of the same shape, float32.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 3:
        raise ValueError(
            f"`depth` must be an integer >= 3. Received: depth={depth!r}"
        )
    inputs = keras.Input((None, None, channels), name="image")
    x = NarrowConv2D(filters, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    for index in range(2, depth):
        x = Conv2D(
            filters,
            3,
            padding="same",
            use_bias=not batch_norm,
            name=f"conv{index}",
        )(x)
        if batch_norm:
            x = BatchNormalization(name=f"conv{index}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{index}_relu")(x)
    residual = NarrowConv2D(channels, 3, padding="same", name=f"conv{depth}")(x)
    residual = keras.layers.Activation(
        "linear", dtype="float32", name="residual"
    )(residual)
    outputs = keras.layers.Subtract(dtype="float32", name="output")(
        [inputs, residual]
    )
    return keras.Model(inputs, outputs, name=name)


def fold_batch_norm(model):
    """A model built by `dncnn(...)`, in inference form.

    The same folding as `keras_rbdn.fold_batch_norm`, for the baseline;
    depth, filters and channels are read from `model`.
    """
    depth = sum(
        isinstance(layer, keras.layers.Conv2D) for layer in model.layers
    )
    target = dncnn(
        depth,
        model.get_layer("conv1").filters,
        model.input_shape[-1],
        batch_norm=False,
        name=model.name,
    )
    return copy_folded_weights(model, target)


def multiply_adds_per_layer(model, size=(256, 256)):
    """Multiply-adds per input pixel of each `Conv2D` layer, by name.

    Each convolution counts at its resolution relative to the input, read
    from the layer's input shape on a probe image of `size` (rows,
    columns); odd sizes count the pooled maps' rounded-up sizes.
    """
    rows, columns = size
    counts = {}
    shapes = _conv_input_shapes(model, rows, columns)
    for layer, (height, width, in_channels) in shapes:
        kernel_height, kernel_width = layer.kernel_size
        per_output = kernel_height * kernel_width * in_channels * layer.filters
        counts[layer.name] = per_output * (height * width) / (rows * columns)
    return counts


def multiply_adds_per_pixel(model):
    """Multiply-adds per input pixel of a fully convolutional model.

    The sum over its convolutions (`multiply_adds_per_layer`), ignoring
    batch normalization, activations, pooling and unpooling.
    """
    return sum(multiply_adds_per_layer(model).values())


def _conv_input_shapes(model, rows, columns):
    """(layer, (h, w, c_in)) for every Conv2D, traced on a probe image."""
    channels = model.inputs[0].shape[-1]
    probe_model = keras.Model(
        model.inputs,
        [
            layer.input
            for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D)
        ],
    )
    conv_layers = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    spec = keras.KerasTensor((1, rows, columns, channels))
    outputs = probe_model.compute_output_spec(spec)
    return [
        (layer, tuple(output.shape[1:]))
        for layer, output in zip(conv_layers, outputs, strict=True)
    ]
