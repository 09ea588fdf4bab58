"""The Recursively Branched Deconvolutional Network (RBDN)."""

import keras

from keras_rbdn.checks import check_choice
from keras_rbdn.layers.batch_norm import BatchNormalization
from keras_rbdn.layers.conv import Conv2D
from keras_rbdn.layers.narrow_conv import NarrowConv2D
from keras_rbdn.layers.pooling import MaxPoolingWithArgmax2D
from keras_rbdn.layers.pooling import MaxUnpooling2D
from keras_rbdn.layers.resampling import BilinearUpsampling2D

BRANCH_KERNEL_SIZE = 3  # Every branch convolution is 3x3 in the paper.
UPSAMPLING_MODES = ("learnable", "bilinear")
MERGE_MODES = ("concat", "none")


def _check_int(name, value, minimum, odd=False):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"`{name}` must be an integer. Received: {name}={value!r}"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be >= {minimum}. Received: {name}={value}"
        )
    if odd and value % 2 == 0:
        raise ValueError(
            f"`{name}` must be odd so that 'same' padding is symmetric. "
            f"Received: {name}={value}"
        )


def _conv_bn_relu(
    x, filters, kernel_size, name, batch_norm, dilation_rate, conv
):
    x = conv(
        filters,
        kernel_size,
        padding="same",
        dilation_rate=dilation_rate,
        name=name,
    )(x)
    if batch_norm:
        x = BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class RBDN(keras.Model):
    """Recursively Branched Deconvolutional Network.

    RBDN (Santhanam, Morariu & Davis, "Generalized Deep Image to Image
    Regression", CVPR 2017) computes a cheap multi-context representation
    with recursive branches at decreasing scales, merges it with the
    half-resolution features, refines it with a trunk of convolutions and
    returns to full resolution with unpooling and a learnable deconvolution.

    Layer by layer, with `B_k` the branch at scale 1/2^k:

    - `conv1` (K x K, c) and `pool1` (2x2 max pool with switches).
    - `B_k`: `convBk_1` (3x3, c), `poolBk`; for k < N, `B_(k+1)` runs on the
      pooled map and its output is concatenated with it (`concatBk`);
      `convBk_2` (3x3, c), `unpoolBk`, `deconvBk_1` (3x3, c).
    - `concat1`: pool1 with B_1's output (2c channels, scale 1/2).
    - `conv2_1` ... `conv2_D` (T x T, c) at scale 1/2.
    - `unpool1` with pool1's switches and `deconv1` (K x K) to the output
      channels.

    Every convolution is followed by batch normalization and ReLU, except
    `deconv1`. A stride-1 deconvolution is a convolution with a flipped
    kernel, so convolution layers implement the deconvolutions (same
    parameter count, same function class): `keras_rbdn.layers.Conv2D`
    (Keras' `Conv2D` without its input copies under PyTorch) and, for
    `conv1` and `deconv1`, `keras_rbdn.layers.NarrowConv2D`.

    Args:
        branches: int. Number of recursive branches N; 0 gives the paper's
            base network B_0. Defaults to `3`.
        kernel_size: int. K, the odd kernel size of `conv1` and `deconv1`.
            Defaults to `9`.
        filters: int. c, the number of feature maps of every hidden layer.
            Defaults to `64`.
        trunk_kernel_size: int. T, the odd kernel size of the trunk
            convolutions. Defaults to `3`.
        trunk_depth: int. D, the number of trunk convolutions. Defaults to
            `9`.
        input_channels: int. Channels of the input image. Defaults to `1`.
        output_channels: int or `None`. Channels of the output; `None`
            means the same as `input_channels`. Defaults to `None`.
        upsampling: str. `"learnable"` (unpooling with the pooling
            switches, then a deconvolution; the paper's choice) or
            `"bilinear"` (fixed bilinear upsampling, the ablation of
            Fig. 6: no deconvolution inside the branches). Defaults to
            `"learnable"`.
        merge: str. `"concat"` concatenates each branch output with the
            pooled map it started from (the paper's recursive branching);
            `"none"` keeps only the branch output, which makes the network
            a linear encoder-decoder (the ablation of Fig. 6). Defaults to
            `"concat"`.
        global_residual: bool. If `True`, the network predicts a correction
            that is added to its input (needs `input_channels ==
            output_channels`). Not in the paper. Defaults to `False`.
        trunk_dilation_rate: int. Dilation of the trunk convolutions; `1` is
            the paper's network. Defaults to `1`.
        batch_norm: bool. Whether each convolution but `deconv1` is
            followed by batch normalization, as in the paper. `False` is
            the inference form that `keras_rbdn.fold_batch_norm` returns
            (the normalization folded into the convolution weights); it is
            not meant for training from scratch. Defaults to `True`.
        name: str. Model name. Defaults to `"rbdn"`.
        **kwargs: Other `keras.Model` keyword arguments.

    Input shape:
        4D tensor `(batch_size, height, width, input_channels)`; any height
        and width, odd sizes included.

    Output shape:
        4D tensor `(batch_size, height, width, output_channels)`, float32.

    Example:

    >>> model = RBDN(branches=3)
    >>> model.count_params()
    790593
    """

    def __init__(
        self,
        branches=3,
        kernel_size=9,
        filters=64,
        trunk_kernel_size=3,
        trunk_depth=9,
        input_channels=1,
        output_channels=None,
        upsampling="learnable",
        merge="concat",
        global_residual=False,
        trunk_dilation_rate=1,
        batch_norm=True,
        name="rbdn",
        **kwargs,
    ):
        if output_channels is None:
            output_channels = input_channels
        _check_int("branches", branches, 0)
        _check_int("kernel_size", kernel_size, 1, odd=True)
        _check_int("filters", filters, 1)
        _check_int("trunk_kernel_size", trunk_kernel_size, 1, odd=True)
        _check_int("trunk_depth", trunk_depth, 1)
        _check_int("input_channels", input_channels, 1)
        _check_int("output_channels", output_channels, 1)
        _check_int("trunk_dilation_rate", trunk_dilation_rate, 1)
        check_choice("upsampling", upsampling, UPSAMPLING_MODES)
        check_choice("merge", merge, MERGE_MODES)
        if not isinstance(batch_norm, bool):
            raise ValueError(
                "`batch_norm` must be True or False. Received: "
                f"batch_norm={batch_norm!r}"
            )
        if global_residual and input_channels != output_channels:
            raise ValueError(
                "`global_residual=True` adds the input to the output, so "
                "`input_channels` and `output_channels` must match. "
                f"Received: input_channels={input_channels}, "
                f"output_channels={output_channels}"
            )
        learnable = upsampling == "learnable"
        concat = merge == "concat"

        def conv_block(x, size, name, dilation_rate=1, conv=Conv2D):
            return _conv_bn_relu(
                x, filters, size, name, batch_norm, dilation_rate, conv
            )

        def pool(x, name):
            """Returns the pooled map and what upsampling needs to undo it."""
            if learnable:
                return MaxPoolingWithArgmax2D(switches="auto", name=name)(x)
            pooled = keras.layers.MaxPooling2D(2, padding="same", name=name)(x)
            return pooled, x

        def upsample(x, undo, level_name):
            if learnable:
                return MaxUnpooling2D(name=f"unpool{level_name}")([x, undo])
            return BilinearUpsampling2D(name=f"upsample{level_name}")([x, undo])

        def branch(x, level):
            """Branch B_level on `x` (scale 1/2^level), back at that scale."""
            tag = f"B{level}"
            x = conv_block(x, BRANCH_KERNEL_SIZE, f"conv{tag}_1")
            pooled, undo = pool(x, f"pool{tag}")
            x = pooled
            if level < branches:
                deeper = branch(pooled, level + 1)
                x = (
                    keras.layers.Concatenate(name=f"concat{tag}")(
                        [pooled, deeper]
                    )
                    if concat
                    else deeper
                )
            x = conv_block(x, BRANCH_KERNEL_SIZE, f"conv{tag}_2")
            x = upsample(x, undo, tag)
            if learnable:
                x = conv_block(x, BRANCH_KERNEL_SIZE, f"deconv{tag}_1")
            return x

        # === Functional Model ===
        inputs = keras.Input((None, None, input_channels), name="image")
        # conv1 and deconv1 have the image's few channels on one side:
        # NarrowConv2D is Conv2D with faster forms for that.
        x = conv_block(inputs, kernel_size, "conv1", conv=NarrowConv2D)
        pooled, undo = pool(x, "pool1")
        x = pooled
        if branches > 0:
            branch_output = branch(pooled, 1)
            x = (
                keras.layers.Concatenate(name="concat1")(
                    [pooled, branch_output]
                )
                if concat
                else branch_output
            )
        for index in range(1, trunk_depth + 1):
            x = conv_block(
                x, trunk_kernel_size, f"conv2_{index}", trunk_dilation_rate
            )
        x = upsample(x, undo, "1")
        x = NarrowConv2D(
            output_channels, kernel_size, padding="same", name="deconv1"
        )(x)
        if global_residual:
            x = keras.layers.Add(name="residual")([inputs, x])
        outputs = keras.layers.Activation(
            "linear", dtype="float32", name="output"
        )(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.branches = branches
        self.kernel_size = kernel_size
        self.filters = filters
        self.trunk_kernel_size = trunk_kernel_size
        self.trunk_depth = trunk_depth
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.upsampling = upsampling
        self.merge = merge
        self.global_residual = global_residual
        self.trunk_dilation_rate = trunk_dilation_rate
        self.batch_norm = batch_norm

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "branches": self.branches,
            "kernel_size": self.kernel_size,
            "filters": self.filters,
            "trunk_kernel_size": self.trunk_kernel_size,
            "trunk_depth": self.trunk_depth,
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "upsampling": self.upsampling,
            "merge": self.merge,
            "global_residual": self.global_residual,
            "trunk_dilation_rate": self.trunk_dilation_rate,
            "batch_norm": self.batch_norm,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
