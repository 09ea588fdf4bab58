"""Additive white Gaussian noise with a random level per image."""

import keras
from keras import ops

PIXEL_SCALE = 255.0  # Noise levels are quoted on the 0-255 pixel scale.


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
    RBDN paper (sigma ~ U[8, 50]). The result is not clipped. At inference
    (`training=False`, the default when the layer is called outside
    `fit`) the layer is the identity.

    Args:
        sigma_range: tuple of two floats. `(low, high)` bounds of the noise
            standard deviation on the 0-255 scale; `(25, 25)` gives a fixed
            level. Defaults to `(8, 50)`.
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

    def __init__(self, sigma_range=(8, 50), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.sigma_range = check_sigma_range(sigma_range)
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
            dtype=self.compute_dtype,
            seed=self.seed_generator,
        )
        noise = keras.random.normal(
            shape, dtype=self.compute_dtype, seed=self.seed_generator
        )
        return ops.add(inputs, ops.multiply(sigma, noise))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"sigma_range": list(self.sigma_range), "seed": self.seed}
        )
        return config
