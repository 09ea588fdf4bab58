import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color
from skimage import metrics

import keras_rbdn
from keras_rbdn import evaluation


def gray_folder(folder, count=2, shape=(24, 20)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = []
    for index in range(count):
        pixels = rng.integers(0, 256, shape, "uint8")
        Image.fromarray(pixels).save(folder / f"{index}.png")
        images.append(pixels.astype("float64") / 255.0)
    return str(folder), images


# NumPy: the noise draw, the table's text and the chroma.
@pytest.mark.backend_independent
class NoiseTest:
    def test_fixed_seed_gives_the_same_draw(self):
        clean = np.zeros((64, 64, 1), "float32")
        first = evaluation.noisy_image(clean, 25, seed=0, index=3)
        again = evaluation.noisy_image(clean, 25, seed=0, index=3)
        other = evaluation.noisy_image(clean, 25, seed=0, index=4)
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, other)
        assert abs(first.std() * 255 - 25) < 1.0

    def test_uint8_protocol_clips_and_rounds_the_float_draw(self):
        clean = np.random.default_rng(5).random((16, 16, 3), "float32")
        noisy = evaluation.noisy_image(clean, 50, seed=0, index=1)
        quantized = evaluation.noisy_image(clean, 50, 0, 1, protocol="uint8")
        expected = np.round(np.clip(noisy, 0, 1) * 255)
        np.testing.assert_allclose(quantized * 255, expected, atol=1e-3)
        assert noisy.min() < 0 and quantized.min() == 0

    def test_unknown_protocol(self):
        with pytest.raises(ValueError, match="protocol='png'"):
            evaluation.noisy_image(np.zeros((2, 2, 1)), 25, 0, 0, "png")


class EvaluateDenoiserTest:
    def test_rgb_mode_sees_color_images(self, tmp_path):
        folder = tmp_path / "rgb"
        folder.mkdir()
        # At least SSIM's 11x11 window on every backend.
        pixels = np.random.default_rng(6).integers(0, 256, (24, 20, 3))
        Image.fromarray(pixels.astype("uint8")).save(folder / "0.png")
        shapes = []

        def identity(noisy, sigma):
            shapes.append(noisy.shape)
            return noisy

        results = evaluation.evaluate_denoiser(
            identity, str(folder), sigmas=(25,), mode="rgb", protocol="uint8"
        )
        noisy = evaluation.noisy_image(
            pixels.astype("float32") / 255, 25, 0, 0, "uint8"
        )
        expected = metrics.peak_signal_noise_ratio(
            pixels / 255.0, noisy.astype("float64"), data_range=1.0
        )
        assert shapes == [(24, 20, 3)]
        np.testing.assert_allclose(results[25]["psnr"], expected, rtol=1e-4)

    def test_noisy_input_scores_match_scikit_image(self, tmp_path):
        folder, images = gray_folder(tmp_path / "set")
        results = evaluation.evaluate_denoiser(None, folder, sigmas=(25,))
        psnrs = []
        for index, clean in enumerate(images):
            noisy = evaluation.noisy_image(
                clean[..., None].astype("float32"), 25, 0, index
            )
            psnrs.append(
                metrics.peak_signal_noise_ratio(
                    clean, np.clip(noisy[..., 0], 0, 1), data_range=1.0
                )
            )
        np.testing.assert_allclose(results[25]["psnr"], np.mean(psnrs), 1e-4)

    def test_perfect_denoiser_has_ssim_one(self, tmp_path):
        folder, images = gray_folder(tmp_path / "set")

        remaining = iter(images)

        def oracle(noisy, sigma):
            return next(remaining)[..., None]

        results = evaluation.evaluate_denoiser(oracle, folder, sigmas=(15,))
        np.testing.assert_allclose(results[15]["ssim"], 1.0, atol=1e-5)


@pytest.mark.backend_independent
class TableTest:
    def test_measured_and_quoted_rows(self):
        result = {"psnr": 30.123, "ssim": 0.87654}
        rows = {"ours (measured)": {"bsd68": {25: result}}}
        table = evaluation.denoising_table(rows, sigmas=(15, 25, 50))
        lines = table.splitlines()
        assert lines[0].startswith("| method | BSD68 s=15 | BSD68 s=25 |")
        assert "| ours (measured) | - | 30.12 / 0.8765 | - |" in table
        assert "| DnCNN-B, released weights (quoted) | 31.62 | 29.17 |" in (
            table
        )
        assert all("quoted" in line for line in lines[3:])

    def test_color_references(self):
        result = {"psnr": 30.5, "ssim": 0.8}
        rows = {"ours (measured)": {"cbsd68": {25: result}}}
        table = evaluation.denoising_table(
            rows,
            sets=("cbsd68",),
            references=evaluation.REFERENCE_COLOR_DENOISING,
        )
        assert "| CBM3D (published) | 33.52 | 30.71 | 27.38 |" in table
        assert "DnCNN-B, released" not in table


@pytest.mark.backend_independent
class ChromaTest:
    def test_matches_scikit_image_lab(self):
        rgb = np.random.default_rng(1).random((8, 9, 3))
        lab = color.rgb2lab(rgb)
        expected = np.mean(np.hypot(lab[..., 1], lab[..., 2]))
        np.testing.assert_allclose(evaluation.chroma(rgb), expected, 1e-3)

    def test_gray_has_no_chroma(self):
        gray = np.repeat(np.random.default_rng(2).random((5, 5, 1)), 3, -1)
        assert evaluation.chroma(gray) < 1e-2


@pytest.mark.backend_independent
class AbErrorAucTest:
    def test_matches_a_per_threshold_count(self):
        rng = np.random.default_rng(3)
        output, target = rng.random((2, 6, 7, 3))
        lab_out, lab_target = color.rgb2lab(output), color.rgb2lab(target)
        error = np.hypot(*(lab_out[..., 1:] - lab_target[..., 1:]).T)
        expected = np.mean([np.mean(error <= t) for t in range(151)])
        np.testing.assert_allclose(
            evaluation.ab_error_auc(output, target), expected, atol=2e-3
        )

    def test_exact_colors_score_one_and_gray_scores_less(self):
        image = np.random.default_rng(4).random((5, 5, 3))
        gray = np.repeat(image.mean(-1, keepdims=True), 3, -1)
        assert evaluation.ab_error_auc(image, image) == 1.0
        assert evaluation.ab_error_auc(gray, image) < 1.0


class EvaluateRelighterTest:
    @pytest.mark.parametrize("ensemble", [1, 2])
    def test_pair_psnr_of_the_network_and_its_mirror(self, ensemble):
        # Sizes the network takes as they are: no padding in the reference.
        model = keras_rbdn.build(branches=1, task="relight", c=4, D=1)
        rng = np.random.default_rng(0)
        inputs = rng.random((3, 16, 12, 1)).astype("float32")
        targets = rng.random((3, 16, 12, 1)).astype("float32")

        def run(images):
            return keras.ops.convert_to_numpy(model(images, training=False))

        outputs = run(inputs)
        if ensemble == 2:
            outputs = (outputs + run(inputs[:, :, ::-1])[:, :, ::-1]) / 2
        expected = [
            metrics.peak_signal_noise_ratio(
                target, np.clip(output, 0, 1), data_range=1
            )
            for target, output in zip(targets, outputs, strict=True)
        ]
        result = evaluation.evaluate_relighter(
            model, inputs, targets, ensemble=ensemble
        )
        np.testing.assert_allclose(result["pair_psnr"], expected, atol=1e-4)
        assert result["psnr"] == pytest.approx(np.mean(expected), abs=1e-4)
