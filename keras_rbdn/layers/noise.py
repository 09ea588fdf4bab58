"""Additive white Gaussian noise with a random level per image.

Two noise protocols, and their mix:

- `"float"`: the noisy image is the clean one plus the noise, not clipped
  (the denoising papers' protocol);
- `"uint8"`: the noisy image is then clipped to [0, 1] and rounded to the
  256 levels of 8 bits, as in any 8-bit file a user has: near black and
  white the noise is no longer zero-mean;
- `"mixed"`: each image of a batch follows `"uint8"` with probability
  1/2, else `"float"`.
"""

import keras
import numpy as np
from keras import ops

from keras_rbdn.checks import check_choice

PIXEL_SCALE = 255.0  # Noise levels are quoted on the 0-255 pixel scale.

# The noise protocols of training, each with its probability that a noisy
# image is clipped and rounded to 8 bits.
QUANTIZED_FRACTIONS = {"float": 0.0, "uint8": 1.0, "mixed": 0.5}


def check_noise_protocol(protocol):
    """Returns the `QUANTIZED_FRACTIONS` entry of `protocol`, or raises."""
    check_choice("protocol", protocol, tuple(QUANTIZED_FRACTIONS))
    return QUANTIZED_FRACTIONS[protocol]


def quantize_8bit(images, xp=np):
    """Clips images to [0, 1] and rounds them to the 256 8-bit levels.

    Args:
        images: array of pixels on the [0, 1] scale.
        xp: array namespace: `numpy`, `keras.ops` or
            `tf.experimental.numpy`. Defaults to `numpy`.

    Returns:
        The array of `k / 255` values, `k` the nearest integer in [0, 255].
    """
    # floor(x + 0.5): `round` is not in every namespace's graph mode.
    levels = xp.floor(xp.clip(images, 0.0, 1.0) * PIXEL_SCALE + 0.5)
    return levels / PIXEL_SCALE


def check_sigma_range(sigma_range):
    """Returns `sigma_range` as a `(low, high)` tuple of floats, or raises."""
    try:
        low, high = (float(value) for value in sigma_range)
    except (TypeError, ValueError):
        raise ValueError(
            "`sigma_range` must be a pair of numbers (low, high) on the "
            f"0-255 scale. Received: sigma_range={sigma_range!r}"
        ) from None
    if not 0 <= low <= high:
        raise ValueError(
            "`sigma_range` must satisfy 0 <= low <= high. "
            f"Received: sigma_range={sigma_range!r}"
        )
    return low, high


@keras.saving.register_keras_serializable(package="keras_rbdn")
class RandomGaussianNoise(keras.layers.Layer):
    """Adds white Gaussian noise whose level is drawn per image.

    At training time every image of the batch gets its own standard
    deviation, drawn uniformly from `sigma_range` (on the 0-255 pixel
    scale, for images in [0, 1]), and independent Gaussian noise of that
    level on every pixel and channel: the blind denoising set-up of the
    RBDN paper (sigma ~ U[8, 50]). With `protocol="float"` the result is
    not clipped; with `"uint8"` it is clipped to [0, 1] and rounded to 8
    bits, as a noisy 8-bit photo is; `"mixed"` does so for each image with
    probability 1/2. The noise and rounding are computed in float32 and
    cast to the layer's compute dtype at the end. At inference
    (`training=False`, the default when the layer is called outside
    `fit`) the layer is the identity.

    Args:
        sigma_range: tuple of two floats. `(low, high)` bounds of the noise
            standard deviation on the 0-255 scale; `(25, 25)` gives a fixed
            level. Defaults to `(8, 50)`.
        protocol: str. `"float"`, `"uint8"` or `"mixed"` (see above).
            Defaults to `"float"`.
        seed: int or `None`. Seed of the layer's random draws. Defaults to
            `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        Tensor `(batch_size, ...)` of images in [0, 1].

    Output shape:
        Same as the input.

    Example:

    >>> noise = RandomGaussianNoise(sigma_range=(25, 25), seed=1)
    >>> clean = np.full((2, 64, 64, 1), 0.5, "float32")
    >>> noisy = noise(clean, training=True)
    >>> round(float(ops.std(noisy - clean)) * 255)
    25
    """

    def __init__(
        self, sigma_range=(8, 50), protocol="float", seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.sigma_range = check_sigma_range(sigma_range)
        self.uint8_fraction = check_noise_protocol(protocol)
        self.protocol = protocol
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training:
            return inputs
        low, high = self.sigma_range
        shape = ops.shape(inputs)
        sigma_shape = (shape[0],) + (1,) * (len(inputs.shape) - 1)
        sigma = keras.random.uniform(
            sigma_shape,
            minval=low / PIXEL_SCALE,
            maxval=high / PIXEL_SCALE,
            dtype="float32",
            seed=self.seed_generator,
        )
        noise = keras.random.normal(
            shape, dtype="float32", seed=self.seed_generator
        )
        noisy = ops.add(ops.cast(inputs, "float32"), ops.multiply(sigma, noise))
        if self.uint8_fraction == 1.0:
            noisy = quantize_8bit(noisy, xp=ops)
        elif self.uint8_fraction > 0.0:
            rounded = keras.random.uniform(
                sigma_shape, dtype="float32", seed=self.seed_generator
            )
            noisy = ops.where(
                ops.less(rounded, self.uint8_fraction),
                quantize_8bit(noisy, xp=ops),
                noisy,
            )
        return ops.cast(noisy, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sigma_range": list(self.sigma_range),
                "protocol": self.protocol,
                "seed": self.seed,
            }
        )
        return config
