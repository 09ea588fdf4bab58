"""Files of the earlier weights layout (RBDN's conv1 a `Conv2D`) still load.

`tests/fixtures/rbdn_0.1.0.*` were written by the code of commit 3ef5722:
a small RBDN with random weights, saved as `.weights.h5` and as `.keras`,
and the output that code computed for a random image (`_io.npz`).
"""

import os
import shutil

import numpy as np
import pytest

import keras_rbdn
from keras_rbdn import weights_files

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CONFIG = dict(
    branches=2, task="denoise", filters=4, kernel_size=5, trunk_depth=2
)


def fixture(name):
    return os.path.join(FIXTURES, name)


@pytest.fixture
def reference():
    data = np.load(fixture("rbdn_0.1.0_io.npz"))
    return data["image"], data["output"]


def test_fixture_has_the_earlier_layout():
    path = fixture("rbdn_0.1.0.weights.h5")
    assert weights_files.is_legacy_weights_file(path)
    # Without the upgrade, Keras cannot match the layer groups.
    with pytest.raises(ValueError):
        keras_rbdn.build(**CONFIG).load_weights(path)


def test_load_weights_reproduces_the_earlier_code(reference):
    image, output = reference
    network = keras_rbdn.build(**CONFIG)
    weights_files.load_weights(network, fixture("rbdn_0.1.0.weights.h5"))
    np.testing.assert_allclose(
        np.asarray(network.predict_on_batch(image)), output, atol=1e-5
    )


def test_keras_file_of_the_earlier_layout_loads(reference):
    image, output = reference
    network = keras_rbdn.load(fixture("rbdn_0.1.0.keras"), network_only=True)
    assert isinstance(network, keras_rbdn.RBDN)
    np.testing.assert_allclose(
        np.asarray(network.predict_on_batch(image)), output, atol=1e-5
    )


def test_upgrade_in_place_then_plain_keras_loads(tmp_path, reference):
    image, output = reference
    path = tmp_path / "old.weights.h5"
    shutil.copyfile(fixture("rbdn_0.1.0.weights.h5"), path)
    assert weights_files.upgrade_weights_file(path) == 1
    assert weights_files.upgrade_weights_file(path) == 0
    assert not weights_files.is_legacy_weights_file(path)
    network = keras_rbdn.build(**CONFIG)
    network.load_weights(path)
    np.testing.assert_allclose(
        np.asarray(network.predict_on_batch(image)), output, atol=1e-5
    )


def test_current_files_are_read_as_they_are(tmp_path):
    network = keras_rbdn.build(**CONFIG)
    path = os.fspath(tmp_path / "new.weights.h5")
    keras_rbdn.presets.save_weights(network, path)
    assert not weights_files.is_legacy_weights_file(path)
    clone = keras_rbdn.build(**CONFIG)
    weights_files.load_weights(clone, path)
    for a, b in zip(network.get_weights(), clone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", keras_rbdn.presets.available())
def test_shipped_weights_have_the_current_layout(name):
    path = keras_rbdn.presets.weights_path(name)
    assert not weights_files.is_legacy_weights_file(path)
    keras_rbdn.presets.build_network(name).load_weights(path)
