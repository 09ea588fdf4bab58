"""Every shipped weights file loads strictly and computes what it did.

`tests/fixtures/shipped_outputs.npz` holds, for each preset in
`keras_rbdn/presets.py`, the weight paths of its network and a record of
its outputs on `fixed_image` (a few statistics and a strided slice),
computed with the TensorFlow backend on a CPU: for `denoise` by the layer
code of commit f94ccb2, before the backend seam; for the other presets
by the code that shipped their current weights. It was written by

    KERAS_BACKEND=tensorflow python -m tests.shipped_weights_test

which overwrites it: run it only when an output is meant to change.

Tolerances: the record is of float32 networks. Other backends and
kernel forms sum the convolutions in other orders; on a CPU, JAX and
PyTorch differ from the record by at most 1e-6 of each output's range.
`RTOL` (1e-5 of the range) leaves a margin of 10x. A pooling switch moved
by rounding would show as a much larger error in one place, and fail.
(On GPUs whose convolutions round to TF32 by default, such as JAX's, the
differences are larger: there the test needs full float32 precision.)
"""

import os
import tempfile

import h5py
import keras
import numpy as np
import pytest

from keras_rbdn import presets

RECORD = os.path.join(
    os.path.dirname(__file__), "fixtures", "shipped_outputs.npz"
)
HEIGHT, WIDTH = 45, 37  # odd sizes: the pooling's ceil mode at every level
STRIDE = 4  # the slice of each output kept: every 4th row, column, channel
RTOL = 1e-5  # of each output's range (see the module docstring)


def fixed_image(channels):
    """A deterministic `(1, HEIGHT, WIDTH, channels)` image in [0, 1]:
    smooth gradients, two frequencies and a sharp edge, no randomness."""
    rows = np.arange(HEIGHT, dtype="float64")[:, None, None]
    cols = np.arange(WIDTH, dtype="float64")[None, :, None]
    channel = np.arange(channels, dtype="float64")[None, None, :]
    image = (
        0.5
        + 0.25 * np.sin(rows / 5.0 + channel) * np.cos(cols / 7.0)
        + 0.15 * np.sin((rows + 2 * cols) / 2.3)
        + 0.1 * ((rows > HEIGHT / 2) != (cols > WIDTH / 3))
    )
    return np.clip(image, 0.0, 1.0).astype("float32")[None]


def summary(outputs):
    """Mean, standard deviation, minimum and maximum, and a strided slice."""
    outputs = np.asarray(outputs, "float64")
    stats = [outputs.mean(), outputs.std(), outputs.min(), outputs.max()]
    sliced = outputs[0, ::STRIDE, ::STRIDE, ::STRIDE]
    return np.array(stats), sliced


def load_strictly(name):
    """The preset's network, with its weights file matched entry by entry.

    Keras raises for a layer it finds no weights for, but not for groups
    of the file that match no layer. So the network's weights are written
    back and compared with the file: the same groups and datasets, the
    same values bit for bit.
    """
    network = presets.load(name, network_only=True)
    with tempfile.TemporaryDirectory() as folder:
        written = os.path.join(folder, "written.weights.h5")
        network.save_weights(written)
        with (
            h5py.File(presets.weights_path(name), "r") as shipped,
            h5py.File(written, "r") as copy,
        ):
            shipped_entries, copy_entries = _entries(shipped), _entries(copy)
            assert sorted(copy_entries) == sorted(shipped_entries), name
            for path, value in shipped_entries.items():
                if value is not None:
                    np.testing.assert_array_equal(copy_entries[path], value)
    return network


def _entries(weights):
    """`{path: array, or None for a group}` of every item in an open file."""
    entries = {}

    def visit(path, item):
        is_dataset = isinstance(item, h5py.Dataset)
        entries[path] = item[()] if is_dataset else None

    weights.visititems(visit)
    return entries


def outputs_of(network):
    image = fixed_image(network.input_shape[-1])
    outputs = network(keras.ops.convert_to_tensor(image), training=False)
    return keras.ops.convert_to_numpy(outputs)


def record():
    """Writes `RECORD` from the code as it is (see the module docstring)."""
    arrays = {}
    for name in presets.PRESETS:
        network = load_strictly(name)
        stats, sliced = summary(outputs_of(network))
        arrays[f"{name}/stats"] = stats
        arrays[f"{name}/slice"] = sliced
        arrays[f"{name}/weight_paths"] = np.array(
            [f"{w.path} {tuple(w.shape)}" for w in network.weights]
        )
    np.savez_compressed(RECORD, **arrays)


@pytest.fixture(scope="module")
def recorded():
    with np.load(RECORD) as data:
        return {key: data[key] for key in data.files}


def test_every_preset_is_recorded(recorded):
    assert sorted({key.split("/")[0] for key in recorded}) == sorted(
        presets.PRESETS
    )
    assert sorted(presets.available()) == sorted(presets.PRESETS)


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_shipped_weights_load_and_compute_the_recorded_outputs(name, recorded):
    network = load_strictly(name)
    paths = [f"{w.path} {tuple(w.shape)}" for w in network.weights]
    assert paths == list(recorded[f"{name}/weight_paths"])
    stats, sliced = summary(outputs_of(network))
    expected_stats = recorded[f"{name}/stats"]
    scale = expected_stats[3] - expected_stats[2]  # the output's range
    np.testing.assert_allclose(stats, expected_stats, rtol=0, atol=RTOL * scale)
    assert sliced.shape == recorded[f"{name}/slice"].shape
    np.testing.assert_allclose(
        sliced, recorded[f"{name}/slice"], rtol=0, atol=RTOL * scale
    )


def test_load_with_other_weights_of_the_architecture(tmp_path):
    network = presets.load("relight", network_only=True)
    scaled = [0.5 * w for w in network.get_weights()]
    network.set_weights(scaled)
    path = str(tmp_path / "fine_tuned.weights.h5")
    network.save_weights(path)
    model = presets.load("relight", weights=path)
    assert model.name == "relight"
    for loaded, saved in zip(model.get_weights(), scaled, strict=True):
        np.testing.assert_array_equal(loaded, saved)
    with pytest.raises(ValueError, match="no such weights file"):
        presets.load("relight", weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ValueError, match="shipped model's name"):
        presets.load(str(tmp_path / "model.keras"), weights=path)


@pytest.mark.backend_independent
def test_8bit_variants_of_the_denoisers():
    variants = {
        name: preset["8bit_variant"]
        for name, preset in presets.PRESETS.items()
        if "8bit_variant" in preset
    }
    assert variants == {
        "denoise": "denoise_8bit",
        "denoise_color": "denoise_color_8bit",
    }
    for name, variant in variants.items():
        float_preset = dict(presets.PRESETS[name])
        variant_preset = dict(presets.PRESETS[variant])
        # The same network, other weights.
        for key in ("task", "model", "network"):
            assert variant_preset.get(key) == float_preset.get(key), key
        assert presets.for_bit_depth(name, 8) == variant
        assert presets.for_bit_depth(name, 16) == name
        assert presets.for_bit_depth(variant, 8) == variant
    assert presets.for_bit_depth("relight", 8) == "relight"
    with pytest.raises(ValueError, match="Unknown shipped model"):
        presets.for_bit_depth("denoise_16bit", 8)


if __name__ == "__main__":
    record()
