"""Task specifications: what the network reads, predicts and is trained on.

One table (`TASKS`) describes every task; training, evaluation, the command
line and the export all read it instead of branching on task names.

Every task turns a batch of images in [0, 1] (channels last) into what the
network reads, and the network's output back into an image:

| task | image | network reads | network predicts | loss |
|---|---|---|---|---|
| `denoise` | gray (or RGB) | noisy image | clean image | MSE |
| `relight` | gray face | face, any lighting | canonical lighting | MSE |
| `colorize_ycbcr` | RGB | Y (BT.601, /255) | Cb, Cr (/255) | MSE |
| `colorize_lab` | RGB | L / 100 | 261 ab-bin logits | cross-entropy |

`make_pair` makes the (input, target) training pair of any task from a
clean image batch, with NumPy, `keras.ops` or `tf.experimental.numpy`
(`xp`), so the tf.data pipeline, the NumPy loader and Keras models share
it.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
from keras import ops

from keras_rbdn.layers.ab_bins import NUM_AB_BINS
from keras_rbdn.layers.ab_bins import ab_bin_centers
from keras_rbdn.layers.ab_bins import annealed_mean_ab
from keras_rbdn.layers.color import lab_to_rgb
from keras_rbdn.layers.color import rgb_to_lab
from keras_rbdn.layers.color import rgb_to_ycbcr
from keras_rbdn.layers.color import ycbcr_to_rgb
from keras_rbdn.layers.noise import quantize_8bit
from keras_rbdn.losses import RebalancedCrossEntropy

ANNEALED_MEAN_TEMPERATURE = 0.38  # Zhang et al. 2016
LAB_LIGHTNESS_SCALE = 100.0  # The network reads L / 100, in [0, 1].


def _identity(image, xp=np):
    return image


def _clip_output(network_input, network_output):
    return ops.clip(network_output, 0.0, 1.0)


def _luma(image, xp=np):
    return rgb_to_ycbcr(image, xp=xp)[..., 0:1]


def _chroma(image, xp=np):
    return rgb_to_ycbcr(image, xp=xp)[..., 1:3]


def _ycbcr_image(network_input, network_output):
    ycbcr = ops.concatenate(
        [network_input, ops.cast(network_output, network_input.dtype)],
        axis=-1,
    )
    return ops.clip(ycbcr_to_rgb(ycbcr), 0.0, 1.0)


def _lightness(image, xp=np):
    return rgb_to_lab(image, xp=xp)[..., 0:1] / LAB_LIGHTNESS_SCALE


def _ab(image, xp=np):
    return rgb_to_lab(image, xp=xp)[..., 1:3]


def _lab_image(network_input, network_output):
    ab = annealed_mean_ab(
        network_output, ab_bin_centers(), ANNEALED_MEAN_TEMPERATURE
    )
    lightness = ops.cast(network_input, "float32") * LAB_LIGHTNESS_SCALE
    rgb = lab_to_rgb(ops.concatenate([lightness, ab], axis=-1))
    return ops.clip(rgb, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What one image-to-image task asks of the network.

    Args:
        name: str. Task name, as passed to `keras_rbdn.build`.
        description: str. One line for help texts and errors.
        input_channels: int. Channels the network reads by default.
        output_channels: int. Channels the network predicts by default.
        same_channels: bool. Whether output channels always equal input
            channels (same-shape regression such as denoising), so that a
            `channels` override sets both (and the image has that many
            channels too).
        loss: str or `keras.losses.Loss`. The loss to train the network
            with. For `colorize_lab` it is the soft-encoded cross-entropy
            without rebalancing; for the paper's loss pass
            `keras_rbdn.losses.RebalancedCrossEntropy(class_weights=...)`.
        image_channels: int. Channels of the task's images (1 gray, 3 RGB)
            for the default network.
        paired: bool. Whether training pairs come from two images (the
            source and the target, as in relighting) rather than from one
            clean image.
        noise_sigma_range: tuple or `None`. For denoising: the range of the
            per-image noise standard deviation on the 0-255 scale, added to
            the source image to make the network input.
        to_network_input: callable `(image, xp) -> array`: the image (in
            [0, 1]) as the network reads it.
        to_target: callable `(image, xp) -> array`: the training target of
            a clean image.
        to_image: callable `(network_input, network_output) -> tensor`,
            written with `keras.ops`: the output image in [0, 1].
    """

    name: str
    description: str
    input_channels: int
    output_channels: int
    same_channels: bool
    loss: object
    image_channels: int = 1
    paired: bool = False
    noise_sigma_range: tuple | None = None
    to_network_input: Callable = _identity
    to_target: Callable = _identity
    to_image: Callable = _clip_output

    def make_pair(self, clean, source=None, noise=None, rounded=None, xp=np):
        """Makes the (network input, target) training pair of a batch.

        Args:
            clean: array `(..., image_channels)` in [0, 1]: the clean image
                (for paired tasks, the target image).
            source: array or `None`. For paired tasks, the source image
                (`None` means `clean`).
            noise: array or `None`. Noise added to the source before it is
                converted to the network input (denoising: sigma times a
                standard normal draw, see `noise_sigma_range`).
            rounded: boolean array `(batch, 1, 1, 1)` or `None`. Which
                noisy images are clipped to [0, 1] and rounded to 8 bits
                (`keras_rbdn.layers.noise.quantize_8bit`): the `"uint8"`
                noise protocol. `None` rounds none.
            xp: array namespace: `numpy`, `keras.ops` or
                `tf.experimental.numpy`. Defaults to `numpy`.

        Returns:
            A tuple `(network_input, target)`.
        """
        source = clean if source is None else source
        if noise is not None:
            source = xp.add(source, noise)
        if rounded is not None:
            source = xp.where(rounded, quantize_8bit(source, xp=xp), source)
        return (
            self.to_network_input(source, xp=xp),
            self.to_target(clean, xp=xp),
        )


TASKS = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="denoise",
            description="blind additive white Gaussian noise removal",
            input_channels=1,
            output_channels=1,
            same_channels=True,
            loss="mean_squared_error",
            noise_sigma_range=(8.0, 50.0),
        ),
        TaskSpec(
            name="relight",
            description="face relighting to canonical frontal lighting",
            input_channels=1,
            output_channels=1,
            same_channels=True,
            loss="mean_squared_error",
            paired=True,
        ),
        TaskSpec(
            name="colorize_ycbcr",
            description="colorization: Cb, Cr from the Y of YCbCr",
            input_channels=1,
            output_channels=2,
            same_channels=False,
            loss="mean_squared_error",
            image_channels=3,
            to_network_input=_luma,
            to_target=_chroma,
            to_image=_ycbcr_image,
        ),
        TaskSpec(
            name="colorize_lab",
            description="colorization: ab-bin distribution from Lab's L",
            input_channels=1,
            output_channels=NUM_AB_BINS,
            same_channels=False,
            loss=RebalancedCrossEntropy(),
            image_channels=3,
            to_network_input=_lightness,
            to_target=_ab,
            to_image=_lab_image,
        ),
    )
}


def get_task(name):
    """Returns the `TaskSpec` called `name`, or raises a `ValueError`."""
    if isinstance(name, TaskSpec):
        return name
    if name not in TASKS:
        raise ValueError(
            f"Unknown task. Supported tasks: {sorted(TASKS)}. "
            f"Received: task={name!r}"
        )
    return TASKS[name]
