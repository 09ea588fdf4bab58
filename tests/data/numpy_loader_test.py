import keras
import numpy as np
import pytest

from keras_rbdn.data import ImagePairLoader
from keras_rbdn.data import image_dataset
from tests.data.generated import write_images
from tests.testing import run_in_fresh_process


class ImagePairLoaderTest:
    # The loader's batches are NumPy arrays: no Keras backend in them (the
    # backend runs only in `test_fit`).
    @pytest.mark.backend_independent
    def test_length_and_index_errors(self, tmp_path):
        write_images(str(tmp_path), count=5)
        loader = ImagePairLoader(str(tmp_path), batch_size=2, crop_size=8)
        assert len(loader) == 3
        dropped = ImagePairLoader(
            str(tmp_path), batch_size=2, crop_size=8, drop_remainder=True
        )
        assert len(dropped) == 2
        with pytest.raises(IndexError):
            loader[3]

    @pytest.mark.backend_independent
    def test_batches_repeat_within_an_epoch_and_change_across(self, tmp_path):
        write_images(str(tmp_path), count=4, size=(40, 40))
        loader = ImagePairLoader(str(tmp_path), batch_size=4, crop_size=16)
        first, again = loader[0], loader[0]
        np.testing.assert_array_equal(first[0], again[0])
        loader.on_epoch_end()
        assert not np.array_equal(first[1], loader[0][1])
        fixed = ImagePairLoader(
            str(tmp_path),
            batch_size=4,
            crop_size=16,
            rerandomize_each_iteration=False,
        )
        before = fixed[0]
        fixed.on_epoch_end()
        np.testing.assert_array_equal(before[0], fixed[0][0])

    @pytest.mark.backend_independent
    @pytest.mark.parametrize("task", ["colorize_lab", "colorize_ycbcr"])
    def test_same_pairs_as_tf_data(self, task, tmp_path):
        # Without random crops, flips or noise both pipelines are
        # deterministic functions of the files: they must agree.
        write_images(str(tmp_path), count=3, size=(12, 10), channels=3)
        options = dict(
            batch_size=3, crop_size=None, shuffle=False, flips="none"
        )
        numpy_pair = ImagePairLoader(str(tmp_path), task, **options)[0]
        tf_pair = next(iter(image_dataset(str(tmp_path), task, **options)))
        for ours, theirs in zip(numpy_pair, tf_pair, strict=True):
            np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-4)

    @pytest.mark.backend_independent
    def test_same_gray_conversion_as_tf_data(self, tmp_path):
        write_images(str(tmp_path), count=2, size=(12, 10), channels=3)
        options = dict(
            batch_size=2,
            crop_size=None,
            shuffle=False,
            flips="none",
            noise_sigma_range=(0, 0),
        )
        numpy_pair = ImagePairLoader(str(tmp_path), **options)[0]
        tf_pair = next(iter(image_dataset(str(tmp_path), **options)))
        np.testing.assert_array_equal(numpy_pair[1], tf_pair[1].numpy())

    @pytest.mark.backend_independent
    def test_add_noise_false_gives_clean_inputs(self, tmp_path):
        # For a model that adds the noise itself: the same crops as with
        # noise (same seed), but input and target are both the clean crop.
        write_images(str(tmp_path), count=4, size=(20, 20))
        options = dict(batch_size=4, crop_size=8, flips="both", seed=3)
        noisy, clean = ImagePairLoader(str(tmp_path), **options)[0]
        x, y = ImagePairLoader(str(tmp_path), add_noise=False, **options)[0]
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(y, clean)
        assert np.abs(noisy - clean).mean() > 1 / 255

    def test_fit(self, tmp_path):
        write_images(str(tmp_path), count=4, size=(20, 20))
        loader = ImagePairLoader(str(tmp_path), batch_size=2, crop_size=8)
        inputs = keras.Input((None, None, 1))
        model = keras.Model(
            inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs)
        )
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(loader, epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the TensorFlow backend needs TensorFlow",
)
def test_works_without_tensorflow(tmp_path):
    write_images(str(tmp_path), count=3, size=(20, 20), channels=3)
    output = run_in_fresh_process(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # any import of it now fails
        import keras_rbdn
        from keras_rbdn.data import ImagePairLoader
        for task in ("denoise", "colorize_lab"):
            x, y = ImagePairLoader({str(tmp_path)!r}, task, crop_size=8)[0]
            print(task, x.shape, y.shape)
        assert sys.modules.get("tensorflow") is None
        """
    )
    assert "denoise (3, 8, 8, 1) (3, 8, 8, 1)" in output
    assert "colorize_lab (3, 8, 8, 1) (3, 8, 8, 2)" in output
