"""Batch normalization folded into the convolutions, for inference."""

import keras
import numpy as np

from keras_rbdn.models.rbdn import RBDN


def _folded_weights(convolution, batch_norm):
    """Kernel and bias of `convolution` followed by `batch_norm` (inference).

    At inference, batch normalization is the per-channel affine map
    `(x - mean) / sqrt(variance + epsilon) * gamma + beta`, so after a
    convolution it can be folded into the kernel (scaled per output
    channel) and the bias. Computed in float64.
    """

    def value(variable):
        return keras.ops.convert_to_numpy(variable).astype("float64")

    kernel = value(convolution.kernel)
    bias = np.zeros(kernel.shape[-1])
    if convolution.use_bias:
        bias = value(convolution.bias)
    if batch_norm is None:
        return kernel, bias
    if batch_norm.axis not in (-1, len(kernel.shape) - 1):
        raise ValueError(
            f"Cannot fold {batch_norm.name!r}: it normalizes axis "
            f"{batch_norm.axis}, not the channels (last axis)."
        )
    # Without `scale` or `center` the layer has no gamma or beta.
    gamma = value(batch_norm.gamma) if batch_norm.scale else 1.0
    beta = value(batch_norm.beta) if batch_norm.center else 0.0
    variance = value(batch_norm.moving_variance)
    scale = gamma / np.sqrt(variance + batch_norm.epsilon)
    mean = value(batch_norm.moving_mean)
    return kernel * scale, (bias - mean) * scale + beta


def copy_folded_weights(source, target):
    """Gives `target` the weights of `source` with its normalization folded.

    `target` has the layers of `source` without its `BatchNormalization`
    layers; every batch normalization of `source` is named after the
    convolution it follows (`"<name>_bn"` after `"<name>"`), as in RBDN.
    Each `Conv2D` of `target` (which needs a bias wherever a normalization
    is folded in) gets the kernel and bias of the same-named convolution
    of `source`, with that normalization folded in.

    Args:
        source: The trained Keras model, with batch normalization.
        target: The same model built without it.

    Returns:
        `target`.
    """
    batch_norms = {
        layer.name: layer
        for layer in source.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    for layer in target.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        kernel, bias = _folded_weights(
            source.get_layer(layer.name),
            batch_norms.pop(f"{layer.name}_bn", None),
        )
        layer.kernel.assign(kernel.astype(layer.kernel.dtype))
        if layer.use_bias:
            layer.bias.assign(bias.astype(layer.bias.dtype))
        elif np.any(bias):
            raise ValueError(
                f"Cannot fold into {layer.name!r} of {target.name!r}: the "
                "folded convolution needs a bias, and it has none."
            )
    if batch_norms:
        raise ValueError(
            f"Could not fold batch normalization layers {sorted(batch_norms)}"
            f" of {source.name!r}: no convolution of the same name."
        )
    return target


def _fold_network(network):
    """An RBDN, or a model of RBDNs (an `OpponentDenoiser`), rebuilt
    without batch norm, each RBDN's weights folded."""
    from keras_rbdn.inference import rbdns_in

    if not network.batch_norm:
        return network
    config = network.get_config()
    config["batch_norm"] = False
    folded = network.__class__.from_config(config)
    for source, target in zip(rbdns_in(network), rbdns_in(folded), strict=True):
        copy_folded_weights(source, target)
    return folded


def fold_batch_norm(model):
    """The same model for inference, batch normalization folded away.

    Every `BatchNormalization` of an RBDN follows a convolution. At
    inference it is a fixed per-channel affine map, so it can be folded
    into that convolution's kernel and bias: the returned model has no
    normalization layers and computes the same function as
    `model(x, training=False)` up to float rounding. It is about 15%
    faster with the TensorFlow backend on a CPU, where each convolution,
    its bias and its ReLU then run as one fused kernel; under JAX, whose
    compiler already fuses the normalization, it makes no measurable
    difference (`docs/performance.md`, "Batch-normalization folding").
    Use it for serving and batch inference, not for training: the folded
    model has no batch statistics to learn.

    Rounding can still move a pooling switch where two values of a
    window nearly tie, which changes a few output pixels locally (on the
    shipped denoiser, at most about one gray level of 255, on a fraction
    of a percent of the pixels).

    Args:
        model: An `RBDN` or `OpponentDenoiser`, or a functional Keras
            model that holds them as layers (such as the image model of
            `keras_rbdn.load` or `keras_rbdn.image_model`).

    Returns:
        A new model whose RBDNs are built with `batch_norm=False` and
        hold the folded weights; its other layers are shared with
        `model`. An RBDN already without normalization is returned as is.

    Example:

    >>> network = keras_rbdn.build(branches=1, task="denoise", c=4, D=1)
    >>> fast = keras_rbdn.fold_batch_norm(network)
    >>> fast.batch_norm
    False
    """
    from keras_rbdn.models.opponent_denoiser import OpponentDenoiser

    networks = (RBDN, OpponentDenoiser)
    if isinstance(model, networks):
        return _fold_network(model)
    if not isinstance(model, keras.Model) or not hasattr(model, "inputs"):
        raise ValueError(
            "`model` must be an RBDN or a functional Keras model holding "
            f"RBDNs. Received: {model!r} of type {type(model).__name__}"
        )
    found = []

    def clone(layer):
        if isinstance(layer, networks):
            found.append(layer.name)
            return _fold_network(layer)
        return layer

    folded = keras.models.clone_model(model, clone_function=clone)
    if not found:
        raise ValueError(
            f"No RBDN found in model {model.name!r}: nothing to fold."
        )
    return folded
