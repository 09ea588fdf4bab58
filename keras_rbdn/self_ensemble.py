"""Geometric self-ensemble: average a model over flips and rotations.

The eight symmetries of the square (the dihedral group D4) map an image
onto itself up to orientation. Running a model on each transformed image,
transforming each output back and averaging gives a prediction that no
longer depends on orientation, which removes part of a model's error: a
known test-time gain for image restoration networks (Lim et al., "EDSR",
CVPR 2017 workshops; Timofte et al., "Seven ways to improve example-based
single image super resolution", CVPR 2016).

`ensemble` picks how many symmetries are averaged:

- `1`: the image as it is;
- `2`: and its horizontal mirror;
- `4`: the four rotations (0, 90, 180 and 270 degrees);
- `8`: all eight (the rotations and their mirrors).

The transforms are written once for an array namespace `xp` that provides
`flip`, `swapaxes` and `add` (`numpy` or `keras.ops`), on the height and
width axes of `(..., height, width, channels)` arrays, so the same code
serves NumPy inference and the exported serving graph.
"""

from keras import ops

ENSEMBLE_SIZES = (1, 2, 4, 8)

# Each symmetry as (transpose, flip rows, flip columns), applied in that
# order.
_ROTATIONS = [
    (False, False, False),  # 0 degrees.
    (True, True, False),  # 90 degrees counterclockwise, as `numpy.rot90`.
    (False, True, True),  # 180 degrees.
    (True, False, True),  # 270 degrees.
]
_MIRRORED_ROTATIONS = [
    (False, False, True),  # Horizontal mirror (left-right).
    (True, False, False),  # Transpose.
    (False, True, False),  # Vertical mirror.
    (True, True, True),  # Anti-transpose.
]
_TRANSFORMS = {
    1: _ROTATIONS[:1],
    2: [_ROTATIONS[0], _MIRRORED_ROTATIONS[0]],
    4: _ROTATIONS,
    8: _ROTATIONS + _MIRRORED_ROTATIONS,
}


def check_ensemble(ensemble):
    """Raises `ValueError` unless `ensemble` is one of `ENSEMBLE_SIZES`."""
    if isinstance(ensemble, bool) or ensemble not in ENSEMBLE_SIZES:
        raise ValueError(
            f"`ensemble` must be one of {ENSEMBLE_SIZES}. Received: "
            f"ensemble={ensemble!r}"
        )


def _forward(images, transform, xp):
    transpose, flip_rows, flip_columns = transform
    if transpose:
        images = xp.swapaxes(images, -3, -2)
    if flip_rows:
        images = xp.flip(images, axis=-3)
    if flip_columns:
        images = xp.flip(images, axis=-2)
    return images


def _inverse(images, transform, xp):
    transpose, flip_rows, flip_columns = transform
    if flip_columns:
        images = xp.flip(images, axis=-2)
    if flip_rows:
        images = xp.flip(images, axis=-3)
    if transpose:
        images = xp.swapaxes(images, -3, -2)
    return images


def self_ensemble(run, images, ensemble, xp=ops):
    """Averages `run` over `ensemble` flips and rotations of `images`.

    Args:
        run: callable. Maps `(..., height, width, channels)` images to
            images of the same height and width (any size, since rotations
            swap height and width).
        images: array `(..., height, width, channels)`.
        ensemble: int. 1, 2, 4 or 8 (see the module docstring).
        xp: module. `numpy` or `keras.ops`. Defaults to `keras.ops`.

    Returns:
        The mean of the back-transformed outputs.

    Example:

    >>> import numpy as np
    >>> image = np.arange(6.0).reshape(2, 3, 1)
    >>> out = self_ensemble(lambda x: x * 2, image, 8, xp=np)
    >>> bool(np.allclose(out, image * 2))
    True
    """
    check_ensemble(ensemble)
    total = None
    for transform in _TRANSFORMS[ensemble]:
        output = _inverse(run(_forward(images, transform, xp)), transform, xp)
        total = output if total is None else xp.add(total, output)
    return total / ensemble if ensemble > 1 else total
