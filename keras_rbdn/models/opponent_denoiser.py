"""`OpponentDenoiser`: an RGB denoiser made of two RBDNs."""

import keras
import numpy as np

from keras_rbdn.layers.color import OpponentPlanesToRGB
from keras_rbdn.layers.color import RGBToOpponentPlanes
from keras_rbdn.models.rbdn import RBDN


@keras.saving.register_keras_serializable(package="keras_rbdn")
class OpponentDenoiser(keras.Model):
    """RGB denoiser in the orthonormal opponent color space.

    The image is rotated into the opponent planes (`RGBToOpponentPlanes`:
    the luminance Y / sqrt(3) and the chroma planes U + 1/2, V + 1/2),
    which keeps white Gaussian noise white. `luma`, a gray RBDN with a
    global residual, cleans the luminance plane. `chroma`, an RBDN reading
    two channels, a chroma plane and the cleaned luminance, predicts the
    correction of that chroma plane; it runs on U and on V with the same
    weights. The planes are rotated back to RGB (not clipped).

    The luminance guides the chroma: color edges mostly follow luminance
    edges, which are far less noisy. With `chroma`'s kernel on the
    luminance channel of `conv1` set to zero and both RBDNs holding a gray
    denoiser's weights (`load_gray`), the model computes exactly the gray
    denoiser applied plane by plane in the opponent space
    (`keras_rbdn.channels`), the start of its training.

    Args:
        branches: int. Branches of each RBDN. Defaults to `3`.
        filters: int. Filters of each RBDN. Defaults to `64`.
        kernel_size: int. Kernel of `conv1` and `deconv1`. Defaults to `9`.
        trunk_depth: int. Trunk convolutions. Defaults to `9`.
        batch_norm: bool. Whether the RBDNs normalize their convolutions'
            outputs (`False`: the inference form of
            `keras_rbdn.fold_batch_norm`). Defaults to `True`.
        name: str. Model name. Defaults to `"opponent_denoiser"`.
        **kwargs: Other `keras.Model` arguments.

    Input shape:
        `(batch_size, height, width, 3)`: noisy RGB in [0, 1].

    Output shape:
        `(batch_size, height, width, 3)`: denoised RGB, float32.

    Example:

    >>> model = OpponentDenoiser(branches=1, filters=8)
    >>> model.predict(np.random.rand(1, 32, 32, 3), verbose=0).shape
    (1, 32, 32, 3)
    """

    def __init__(
        self,
        branches=3,
        filters=64,
        kernel_size=9,
        trunk_depth=9,
        batch_norm=True,
        name="opponent_denoiser",
        **kwargs,
    ):
        architecture = {
            "branches": branches,
            "filters": filters,
            "kernel_size": kernel_size,
            "trunk_depth": trunk_depth,
            "batch_norm": batch_norm,
        }
        luma = RBDN(**architecture, global_residual=True, name="luma")
        chroma = RBDN(
            **architecture, input_channels=2, output_channels=1, name="chroma"
        )

        # === Functional Model ===
        inputs = keras.Input((None, None, 3), name="image")
        # The rotations stay in float32 under a mixed precision policy.
        planes = RGBToOpponentPlanes(dtype="float32", name="to_planes")(inputs)
        planes = clean_opponent_planes(
            planes,
            luma,
            chroma,
            concatenate=lambda tensors, axis: keras.layers.Concatenate(
                axis, dtype="float32"
            )(tensors),
            add=lambda x, y: keras.layers.Add(dtype="float32")([x, y]),
        )
        outputs = OpponentPlanesToRGB(dtype="float32", name="to_rgb")(planes)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.branches = branches
        self.filters = filters
        self.kernel_size = kernel_size
        self.trunk_depth = trunk_depth
        self.batch_norm = batch_norm

    @property
    def luma(self):
        return self.get_layer("luma")

    @property
    def chroma(self):
        return self.get_layer("chroma")

    def load_gray(self, gray):
        """Starts from a gray denoiser: the gray model plane by plane.

        Args:
            gray: A gray `RBDN` with a global residual and this model's
                architecture (such as `keras_rbdn.load("denoise",
                network_only=True)`).
        """
        if not (
            isinstance(gray, RBDN)
            and gray.input_channels == 1
            and gray.output_channels == 1
            and gray.global_residual
        ):
            raise ValueError(
                "`gray` must be a gray RBDN with `global_residual=True`. "
                f"Received: gray={gray!r}"
            )
        self.luma.set_weights(gray.get_weights())
        for layer in self.chroma.layers:
            weights = [
                np.asarray(weight)
                for weight in gray.get_layer(layer.name).weights
            ]
            if layer.name == "conv1":
                # The luminance channel starts unused.
                kernel = weights[0]
                weights[0] = np.concatenate([kernel, np.zeros_like(kernel)], 2)
            layer.set_weights(weights)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "branches": self.branches,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "trunk_depth": self.trunk_depth,
            "batch_norm": self.batch_norm,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def clean_opponent_planes(planes, luma, chroma, concatenate, add):
    """What an `OpponentDenoiser` computes between its color rotations.

    `luma` cleans the luminance plane; `chroma` predicts the correction of
    each chroma plane from that plane and the cleaned luminance. The model
    builds its graph with it; `keras_rbdn.inference` calls it on NumPy
    arrays with each RBDN run in tiles.

    Args:
        planes: `(..., 3)` opponent planes (`RGBToOpponentPlanes`).
        luma: callable, `(..., 1)` luminance to `(..., 1)` clean luminance.
        chroma: callable, `(..., 2)` chroma plane and clean luminance to the
            `(..., 1)` correction of the chroma plane.
        concatenate: callable, `concatenate(arrays, axis)`, such as
            `np.concatenate`.
        add: callable, `add(x, y)`, such as `np.add`.

    Returns:
        The `(..., 3)` clean opponent planes.
    """
    clean_luma = luma(planes[..., 0:1])
    clean = [clean_luma]
    for index in (1, 2):
        plane = planes[..., index : index + 1]
        guided = concatenate([plane, clean_luma], -1)
        clean.append(add(plane, chroma(guided)))
    return concatenate(clean, -1)
