"""Trained models shipped inside the package, loaded without network access.

Each preset names a task, the network configuration it was trained with
(an RBDN, or an `OpponentDenoiser` where it says `"model"`) and its
weights file in `keras_rbdn/weights/`. `load(name)` rebuilds the
network, loads the weights and wraps it into the end-to-end image model
(`keras_rbdn.image_model`): float32 pixels in [0, 1] in, pixels out. How
each was trained and how well it does is in `docs/results.md`.

The denoisers come in two kinds. `denoise` and `denoise_color` were
trained on float noise, added to the pixels and kept as it is (the
papers' protocol). `denoise_8bit` and `denoise_color_8bit` are for 8-bit
image files, whose noise was clipped to [0, 255] and rounded when they
were written: near black and white it is no longer zero-mean, and the
float-noise denoisers leave a bias there. `for_bit_depth` picks the kind
for an image file.
"""

import os

from keras_rbdn import weights_files

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")

# The networks of the denoisers, each shared by its float-noise and its
# 8-bit version (same architecture, other weights).
_GRAY_DENOISER = {
    "branches": 3,
    "filters": 64,
    "channels": 1,
    "global_residual": True,
}
_RGB_DENOISER = {"branches": 3, "filters": 64}

PRESETS = {
    "denoise": {
        "task": "denoise",
        "description": "blind gray denoising, sigma 5-55 (0-255 scale)",
        "network": _GRAY_DENOISER,
        "weights": "denoise.weights.h5",
        "8bit_variant": "denoise_8bit",
    },
    "denoise_8bit": {
        "task": "denoise",
        "description": "blind gray denoising of 8-bit images (noise "
        "clipped and rounded), sigma 5-55",
        "network": _GRAY_DENOISER,
        "weights": "denoise_8bit.weights.h5",
    },
    "denoise_color": {
        "task": "denoise",
        "model": "OpponentDenoiser",
        "description": "blind RGB denoising, sigma 5-55 (0-255 scale)",
        "network": _RGB_DENOISER,
        "weights": "denoise_color.weights.h5",
        "8bit_variant": "denoise_color_8bit",
    },
    "denoise_color_8bit": {
        "task": "denoise",
        "model": "OpponentDenoiser",
        "description": "blind RGB denoising of 8-bit images (noise clipped "
        "and rounded), sigma 5-55",
        "network": _RGB_DENOISER,
        "weights": "denoise_color_8bit.weights.h5",
    },
    "relight": {
        "task": "relight",
        "description": "gray face relighting to frontal lighting (Yale B)",
        "network": {
            "branches": 3,
            "filters": 32,
            "channels": 1,
            "global_residual": True,
        },
        "weights": "relight.weights.h5",
    },
    "colorize_ycbcr": {
        "task": "colorize_ycbcr",
        "description": "colorization, Y -> CbCr regression",
        "network": {"branches": 3, "filters": 32},
        "weights": "colorize_ycbcr.weights.h5",
    },
    "colorize_lab": {
        "task": "colorize_lab",
        "description": "colorization, L -> ab-bin classification",
        "network": {"branches": 3, "filters": 16, "kernel_size": 3},
        "weights": "colorize_lab.weights.h5",
    },
}


def weights_path(name):
    """Path of a preset's shipped weights file (which may not exist)."""
    return os.path.join(WEIGHTS_DIR, _get_preset(name)["weights"])


def _get_preset(name):
    if name not in PRESETS:
        raise ValueError(
            f"Unknown shipped model. Available: {sorted(PRESETS)}. "
            f"Received: name={name!r}"
        )
    return PRESETS[name]


def available():
    """Names of the presets whose weights are shipped in this install."""
    return [name for name in PRESETS if os.path.exists(weights_path(name))]


def for_bit_depth(name, bit_depth):
    """The shipped model to run in place of `name` on an image file of
    `bit_depth` bits per channel: its 8-bit variant (`"denoise"` ->
    `"denoise_8bit"`) for an 8-bit file where this install ships one, else
    `name`.

    Args:
        name: str. A shipped model's name.
        bit_depth: int. 8 or 16.

    Returns:
        A shipped model's name.
    """
    variant = _get_preset(name).get("8bit_variant")
    if bit_depth == 8 and variant in available():
        return variant
    return name


def build_network(name):
    """The untrained network of a preset, as configured for training."""
    from keras_rbdn.models import OpponentDenoiser
    from keras_rbdn.models import build

    preset = _get_preset(name)
    if preset.get("model") == "OpponentDenoiser":
        return OpponentDenoiser(**preset["network"])
    return build(task=preset["task"], **preset["network"])


def load(name, network_only=False, task=None, weights=None):
    """Loads a shipped model by name, or a saved model from a file.

    Args:
        name: str or path-like. A shipped model, `"denoise"`,
            `"denoise_color"`, `"denoise_8bit"`, `"denoise_color_8bit"`,
            `"relight"`, `"colorize_ycbcr"` or `"colorize_lab"` (weights
            inside the package, no download); or
            the path of a `.keras` file holding an image model or a bare
            network, an RBDN or an `OpponentDenoiser` (then `task` says
            what it does).
        network_only: bool. Return the bare RBDN instead of the image
            model. Defaults to `False`.
        task: str or `None`. For a `.keras` file holding a bare network:
            the task to wrap it for. Defaults to `None` (`"denoise"`).
        weights: str, path-like or `None`. With a shipped model's name: a
            `.weights.h5` of its architecture to load instead of the
            shipped weights, such as a fine-tuning's (a recipe's
            `--export`). Defaults to `None`.

    Returns:
        A Keras model. By default the image model: float32 images
        `(batch, height, width, channels)` in [0, 1] in, images in [0, 1]
        out (RGB for the colorizers).

    Example:

    >>> model = keras_rbdn.load("denoise")
    >>> clean = model.predict(noisy[None])[0]
    """
    from keras_rbdn.models import image_model

    name = os.fspath(name)
    if weights is not None and name not in PRESETS:
        raise ValueError(
            f"`weights` needs a shipped model's name "
            f"({', '.join(sorted(PRESETS))}) for the architecture. "
            f"Received: name={name!r}"
        )
    if name in PRESETS:
        preset = PRESETS[name]
        path = weights_path(name) if weights is None else os.fspath(weights)
        if weights is not None and not os.path.isfile(path):
            raise ValueError(f"{path}: no such weights file")
        if not os.path.exists(path):
            raise ValueError(
                f"The shipped model {name!r} is not included in this "
                f"version (no {path}). Shipped: {available()}"
            )
        network = build_network(name)
        weights_files.load_weights(network, path)
        if network_only:
            return network
        return image_model(network, preset["task"], name=name)
    if name.endswith(".keras"):
        if not os.path.isfile(name):
            raise ValueError(f"{name}: no such model file")
        model = weights_files.load_model(name)
        from keras_rbdn.models import RBDN
        from keras_rbdn.models import OpponentDenoiser

        if isinstance(model, (RBDN, OpponentDenoiser)) and not network_only:
            return image_model(model, task or "denoise")
        return model
    raise ValueError(
        f"Unknown model {name!r}: pass a shipped model name "
        f"({', '.join(sorted(PRESETS))}) or a `.keras` file"
    )


def save_weights(network, path):
    """Writes an RBDN's weights (no optimizer state), atomically.

    Args:
        network: The trained RBDN (not the training model around it).
        path: str. Destination ending in `.weights.h5`.
    """
    partial = os.path.join(
        os.path.dirname(os.path.abspath(path)),
        f".partial-{os.getpid()}.weights.h5",
    )
    # A fresh, uncompiled copy: no optimizer state in the file.
    fresh = network.__class__.from_config(network.get_config())
    fresh.set_weights(network.get_weights())
    fresh.save_weights(partial)
    os.replace(partial, path)
