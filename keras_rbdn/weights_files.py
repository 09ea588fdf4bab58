"""Loading RBDN weights, including files of the earlier layout.

Keras names each layer's group in a weights file after the layer's class
and its rank among the layers of that class (`conv2d`, `conv2d_1`, ...,
`narrow_conv2d`). Until commit 4fb03a9 (November 2026) RBDN's `conv1` was a
`Conv2D`; it is now a `NarrowConv2D`, with the same weights. In the files
written before, every RBDN's layer container therefore names `conv1`
`conv2d`, the other convolutions one rank higher than now, and `deconv1`
`narrow_conv2d` instead of `narrow_conv2d_1`. `load_weights` and
`load_model` recognize that layout (a container with `narrow_conv2d` but no
`narrow_conv2d_1`) and read such files through an upgraded copy, so the
weights, training checkpoints and `.keras` files of that time still load.
"""

import contextlib
import json
import os
import shutil
import tempfile
import zipfile

import h5py
import keras

_DECONV1_BEFORE, _DECONV1_NOW = "narrow_conv2d", "narrow_conv2d_1"


def _conv2d_key(rank):
    return "conv2d" if rank == 0 else f"conv2d_{rank}"


def _legacy_containers(weights):
    """The layer containers of an open weights file in the earlier layout."""
    found = []

    def visit(name, item):
        if (
            isinstance(item, h5py.Group)
            and name.split("/")[-1] == "layers"
            and _DECONV1_BEFORE in item
            and _DECONV1_NOW not in item
            and "conv2d" in item
        ):
            found.append(item)

    weights.visititems(visit)
    return found


def _upgrade(container):
    """Renames one RBDN's layer groups from the earlier layout to today's."""
    container.move(_DECONV1_BEFORE, _DECONV1_NOW)
    container.move("conv2d", "narrow_conv2d")
    rank = 1
    while _conv2d_key(rank) in container:
        container.move(_conv2d_key(rank), _conv2d_key(rank - 1))
        rank += 1


def upgrade_weights_file(path):
    """Converts a `.weights.h5` file of the earlier layout in place.

    Returns:
        The number of RBDN layer containers renamed (0: already current).
    """
    with h5py.File(path, "r+") as weights:
        containers = _legacy_containers(weights)
        for container in containers:
            _upgrade(container)
    return len(containers)


def is_legacy_weights_file(path):
    """Whether a `.weights.h5` file has the earlier layout."""
    with h5py.File(path, "r") as weights:
        return bool(_legacy_containers(weights))


@contextlib.contextmanager
def _current_layout(path):
    """Yields `path`, or an upgraded copy of it if it has the earlier
    layout (removed afterwards)."""
    if not is_legacy_weights_file(path):
        yield path
        return
    with tempfile.TemporaryDirectory() as folder:
        copy = os.path.join(folder, "upgraded.weights.h5")
        shutil.copyfile(path, copy)
        upgrade_weights_file(copy)
        yield copy


def load_weights(model, path):
    """`model.load_weights(path)` for a `.weights.h5` file of either
    layout (see the module docstring)."""
    path = os.fspath(path)
    with _current_layout(path) as current:
        model.load_weights(current)


def load_model(path):
    """`keras.saving.load_model(path, compile=False)` for a `.keras` file
    of either layout."""
    path = os.fspath(path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if "model.weights.h5" not in names:
            return keras.saving.load_model(path, compile=False)
        with tempfile.TemporaryDirectory() as folder:
            weights = archive.extract("model.weights.h5", folder)
            # The extracted file is a scratch copy: upgrade it in place.
            if not upgrade_weights_file(weights):
                return keras.saving.load_model(path, compile=False)
            config = json.loads(archive.read("config.json"))
            model = keras.saving.deserialize_keras_object(config)
            model.load_weights(weights)
            return model
