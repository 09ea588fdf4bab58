"""The recipes, run end to end on tiny generated data."""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color

import keras_rbdn
from keras_rbdn import training
from tests.testing import run_in_fresh_process

RECIPES = os.path.join(os.path.dirname(__file__), "..", "recipes")
TINY = [
    "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
    "--branches", "1", "--filters", "4", "--trunk-depth", "1",
    "--verbose", "0",
]  # fmt: skip


def recipe(name):
    path = os.path.join(RECIPES, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_folder(folder, count, shape, extension=".png", seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = rng.integers(0, 256, shape, "uint8")
        Image.fromarray(pixels).save(folder / f"{index:02d}{extension}")
    return str(folder)


def yale_folder(root, subjects=4):
    rng = np.random.default_rng(0)
    for number in range(1, subjects + 1):
        subject = f"yaleB{number:02d}"
        (root / subject).mkdir(parents=True)
        for lighting in ("A+000E+00", "A+010E+00", "A-035E+20"):
            pixels = rng.integers(0, 256, (24, 20), "uint8")
            Image.fromarray(pixels).save(
                root / subject / f"{subject}_P00{lighting}.png"
            )
    return str(root)


def assert_same_weights(network, expected):
    ours, theirs = network.get_weights(), expected.get_weights()
    assert len(ours) == len(theirs) > 0
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, reference)


@pytest.mark.slow
class TrainingRecipesTest:
    def test_train_denoise_and_export(self, tmp_path):
        data = image_folder(tmp_path / "train", 6, (40, 36))
        run_dir = str(tmp_path / "run")
        exported = str(tmp_path / "denoise.weights.h5")
        recipe("train_denoise").main(
            [data, "--run-dir", run_dir, "--crop", "16", *TINY,
             "--validation-images", "2", "--export", exported]
        )  # fmt: skip
        assert training.latest_checkpoint(run_dir)[1] == 1
        network = keras_rbdn.build(branches=1, task="denoise", c=4, D=1)
        network.load_weights(exported)

    def test_train_denoise_color_keeps_the_luminance_and_batch_norm(
        self, tmp_path
    ):
        data = image_folder(tmp_path / "train", 6, (40, 36, 3))
        gray = keras_rbdn.build(
            branches=1, task="denoise", c=4, D=1, global_residual=True
        )
        start = str(tmp_path / "gray.weights.h5")
        gray.save_weights(start)
        exported = str(tmp_path / "denoise_color.weights.h5")
        recipe("train_denoise").main(
            [data, "--color", "--init-weights", start, "--crop", "16",
             "--run-dir", str(tmp_path / "run"), *TINY,
             "--learning-rate", "0.01", "--validation-images", "2",
             "--recalibrate-batches", "0", "--export", exported]
        )  # fmt: skip
        model = keras_rbdn.models.OpponentDenoiser(
            branches=1, filters=4, trunk_depth=1
        )
        keras_rbdn.weights_files.load_weights(model, exported)
        assert_same_weights(model.luma, gray)
        for layer in model.chroma.layers:
            start_weights = gray.get_layer(layer.name).get_weights()
            if isinstance(layer, keras.layers.BatchNormalization):
                for ours, theirs in zip(
                    layer.get_weights(), start_weights, strict=True
                ):
                    np.testing.assert_array_equal(ours, theirs)
        # The chroma RBDN trained: its kernel on the luminance guide,
        # zero at the start, is not any more.
        kernel = model.chroma.get_layer("conv1").get_weights()[0]
        assert np.abs(kernel[:, :, 1]).max() > 0

    @pytest.mark.parametrize("train_luma", [False, True])
    def test_train_denoise_color_trains_what_it_says(
        self, tmp_path, train_luma
    ):
        gray = keras_rbdn.build(
            branches=1, task="denoise", c=4, D=1, global_residual=True
        )
        start = str(tmp_path / "gray.weights.h5")
        gray.save_weights(start)
        module = recipe("train_denoise")
        flags = ["data", "--color", *TINY, "--init-weights", start]
        args = module.parse_args(flags + ["--train-luma"] * train_luma)
        network = module.build_color_network(args)
        trainable = {id(w) for w in network.trainable_weights}
        assert all(
            id(w) in trainable
            for w in network.chroma.get_layer("conv1").weights
        )
        assert network.luma.trainable == train_luma
        for layer in training.batch_norm_layers(network):
            assert not any(id(w) in trainable for w in layer.weights)

    def test_train_denoise_color_from_another_chroma(self, tmp_path):
        gray = keras_rbdn.build(
            branches=1, task="denoise", c=4, D=1, global_residual=True
        )
        gray_path = str(tmp_path / "gray.weights.h5")
        gray.save_weights(gray_path)
        color = keras_rbdn.models.OpponentDenoiser(
            branches=1, filters=4, trunk_depth=1
        )
        rng = np.random.default_rng(0)
        color.set_weights([rng.normal(size=w.shape) for w in color.weights])
        color_path = str(tmp_path / "color.weights.h5")
        color.save_weights(color_path)
        module = recipe("train_denoise")
        args = module.parse_args(
            ["data", "--color", *TINY, "--init-weights", gray_path,
             "--init-chroma", color_path]
        )  # fmt: skip
        network = module.build_color_network(args)
        assert_same_weights(network.luma, gray)
        assert_same_weights(network.chroma, color.chroma)
        with pytest.raises(SystemExit):
            module.parse_args(["data", "--init-chroma", color_path])

    @pytest.mark.backend_independent
    def test_train_denoise_color_needs_tf_data(self):
        with pytest.raises(SystemExit):
            recipe("train_denoise").parse_args(
                ["data", "--color", "--pipeline", "numpy"]
            )

    def test_train_denoise_numpy_pipeline_in_bfloat16(self, tmp_path):
        data = image_folder(tmp_path / "train", 6, (40, 36))
        run_dir = str(tmp_path / "run")
        args = [
            data, "--run-dir", run_dir, "--crop", "16", *TINY,
            "--validation-images", "2", "--pipeline", "numpy",
            "--precision", "mixed_bfloat16", "--global-residual",
        ]  # fmt: skip
        try:
            model = recipe("train_denoise").main(args)
        finally:
            keras.config.set_dtype_policy("float32")
        assert training.latest_checkpoint(run_dir)[1] == 1
        network = next(keras_rbdn.inference.rbdns_in(model))
        assert network.dtype_policy.name == "mixed_bfloat16"
        assert network.weights[0].dtype == "float32"

    def test_numpy_pipeline_trains_every_epoch_in_full(self, tmp_path):
        # 4 training images, 3 steps of 2 asked: 2 crops per image make
        # the loader 4 batches long, and every epoch runs all 4.
        data = image_folder(tmp_path / "train", 6, (40, 36))
        tiny = [*TINY, "--epochs", "2", "--steps-per-epoch", "3"]
        model = recipe("train_denoise").main(
            [data, "--run-dir", str(tmp_path / "run"), "--crop", "16",
             *tiny, "--validation-images", "2", "--pipeline", "numpy"]
        )  # fmt: skip
        assert int(model.optimizer.iterations.numpy()) == 2 * 4

    def test_init_weights(self, tmp_path):
        start = keras_rbdn.build(branches=1, task="denoise", c=4, D=1)
        path = str(tmp_path / "start.weights.h5")
        start.save_weights(path)
        module = recipe("train_denoise")
        args = module.parse_args(
            ["data", *TINY, "--init-weights", path, "--global-residual"]
        )
        network = module.common.build_network(args, "denoise")
        for ours, theirs in zip(
            network.get_weights(), start.get_weights(), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)
        assert all(
            layer.trainable for layer in training.batch_norm_layers(network)
        )
        args.freeze_batch_norm = True
        frozen = module.common.build_network(args, "denoise")
        layers = training.batch_norm_layers(frozen)
        assert layers and not any(layer.trainable for layer in layers)

    @pytest.mark.skipif(
        keras.backend.backend() == "tensorflow",
        reason="the TensorFlow backend needs TensorFlow",
    )
    def test_train_denoise_without_tensorflow(self, tmp_path):
        # As on a JAX GPU machine: NumPy input, no TensorBoard logs.
        data = image_folder(tmp_path / "train", 6, (40, 36))
        run_dir = str(tmp_path / "run")
        argv = [
            data, "--run-dir", run_dir, "--crop", "16", *TINY,
            "--validation-images", "2", "--pipeline", "numpy",
            "--time-limit", "10",
        ]  # fmt: skip
        output = run_in_fresh_process(
            f"""
            import sys
            sys.modules["tensorflow"] = None  # any import of it now fails
            import importlib.util
            spec = importlib.util.spec_from_file_location(
                "train_denoise", {os.path.join(RECIPES, "train_denoise.py")!r}
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.main({argv!r})
            assert sys.modules.get("tensorflow") is None
            print("trained")
            """
        )
        assert "trained" in output
        assert training.latest_checkpoint(run_dir)[1] == 1

    @pytest.mark.parametrize("space", ["ycbcr", "lab"])
    def test_train_colorize(self, tmp_path, space):
        data = image_folder(tmp_path / "color", 5, (30, 26, 3), ".jpg")
        run_dir = str(tmp_path / "run")
        recipe("train_colorize").main(
            [data, "--space", space, "--run-dir", run_dir, "--crop", "16",
             *TINY, "--validation-images", "2"]
        )  # fmt: skip
        assert training.latest_checkpoint(run_dir)[1] == 1
        if space == "lab":
            assert os.path.exists(os.path.join(run_dir, "ab_prior.npz"))

    @pytest.mark.parametrize("space", ["ycbcr", "lab"])
    def test_colorizer_starts_from_the_gray_image(self, space):
        task = f"colorize_{space}"
        network = keras_rbdn.build(branches=1, task=task, c=4, D=1)
        prior = np.random.default_rng(5).random(network.output_channels)
        prior /= prior.sum()
        recipe("train_colorize").start_from_gray(network, space, prior)
        rgb = np.random.default_rng(6).random((1, 16, 12, 3))
        if space == "lab":
            # The logits are the log prior at every pixel.
            lightness = rgb[..., :1].astype("float32")
            logits = keras.ops.convert_to_numpy(network(lightness))
            np.testing.assert_allclose(
                logits, np.broadcast_to(np.log(prior), logits.shape), 1e-5
            )
            return
        model = keras_rbdn.image_model(network, task)
        output = keras.ops.convert_to_numpy(model(rgb.astype("float32")))
        # No chroma: Cb = Cr = 128/255 is the gray image.
        lab = color.rgb2lab(np.clip(output[0], 0, 1))
        np.testing.assert_allclose(lab[..., 1:], 0.0, atol=0.5)

    def test_train_relight_splits_by_subject(self, tmp_path):
        data = yale_folder(tmp_path / "yale")
        run_dir = str(tmp_path / "run")
        exported = str(tmp_path / "relight.weights.h5")
        recipe("train_relight").main(
            [data, "--run-dir", run_dir, *TINY, "--validation-subjects", "1",
             "--recalibrate-batches", "2", "--export", exported]
        )  # fmt: skip
        network = keras_rbdn.build(branches=1, task="relight", c=4, D=1)
        network.load_weights(exported)
        split = open(os.path.join(run_dir, "split.txt")).read().split("\n")
        train = set(split[0].split()[1:])
        validation = set(split[1].split()[1:])
        assert len(validation) == 1 and len(train) == 3
        assert not train & validation
        assert training.latest_checkpoint(run_dir)[1] == 1

    def test_train_relight_align_targets(self, tmp_path):
        data = yale_folder(tmp_path / "yale")
        train_relight = recipe("train_relight")
        run_dir = tmp_path / "run"
        args = train_relight.parse_args(
            [data, "--run-dir", str(run_dir), "--batch-size", "8",
             "--validation-subjects", "1", "--align-targets"]
        )  # fmt: skip
        _, validation = train_relight.make_datasets(args)
        split = open(run_dir / "split.txt").read().splitlines()
        subject = split[1].split()[-1]
        _, stored = keras_rbdn.data.load_relight_arrays(data, [subject])
        _, aligned = keras_rbdn.data.load_relight_arrays(
            data, [subject], align_targets=True
        )
        assert not np.array_equal(stored, aligned)
        _, targets = next(iter(validation))
        np.testing.assert_array_equal(targets.numpy(), aligned)

    def test_train_relight_near_frontal_pairs_and_augmentation(
        self, tmp_path, capsys
    ):
        data = yale_folder(tmp_path / "yale")
        train_relight = recipe("train_relight")
        args = train_relight.parse_args(
            [data, "--run-dir", str(tmp_path / "run"), "--batch-size", "4",
             "--validation-subjects", "1", "--augment", "--augment-gain",
             "0.1", "--include-canonical", "--frontal-repeats", "3"]
        )  # fmt: skip
        train, _ = train_relight.make_datasets(args)
        # 3 training subjects, each with its A-035E+20 pair, and its
        # A+010E+00 and identity pairs 3 times.
        assert "21 training pairs (3 subjects)" in capsys.readouterr().out
        inputs, targets = next(iter(train))
        assert inputs.shape == targets.shape == (4, 24, 20, 1)

    # `--help` only: argument parsing and imports, no network.
    @pytest.mark.backend_independent
    @pytest.mark.parametrize(
        "name", ["train_denoise", "train_relight", "train_colorize"]
    )
    def test_runs_as_a_script_from_elsewhere(self, tmp_path, name):
        # The recipes import `common.py` from their own folder.
        result = subprocess.run(
            [sys.executable, os.path.join(RECIPES, f"{name}.py"), "--help"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        for flag in ("--run-dir", "--recalibrate-batches", "--export"):
            assert flag in result.stdout


@pytest.mark.slow
class EvaluateRecipeTest:
    def test_all_sections(self, tmp_path):
        data = tmp_path / "data"
        for name in ("bsd68", "set12"):
            image_folder(data / "denoise" / name, 2, (24, 20))
        image_folder(data / "color" / "cbsd68", 2, (24, 20, 3))
        yale_folder(data / "relight")
        denoiser = str(tmp_path / "denoiser.keras")
        keras_rbdn.build(branches=1, task="denoise", c=4, D=1).save(denoiser)
        colorizer = str(tmp_path / "colorizer.keras")
        network = keras_rbdn.build(branches=1, task="colorize_ycbcr", c=4, D=1)
        keras_rbdn.image_model(network, "colorize_ycbcr").save(colorizer)
        output = str(tmp_path / "results.md")
        text = recipe("evaluate").main(
            ["--data", str(data), "--denoise", denoiser, "--relight",
             denoiser, "--colorize", colorizer, "--sigmas", "25",
             "--validation-subjects", "1", "--output", output,
             "--color-denoise", denoiser, "--ensemble", "1", "2",
             "--protocols", "float", "uint8"]
        )  # fmt: skip
        assert open(output).read() == text
        assert "BSD68 s=25" in text and "(quoted)" in text
        for protocol in ("float", "uint8"):
            assert f"## Denoising (gray, {protocol} noise" in text
            assert f"## Color denoising (CBSD68, {protocol} noise" in text
        for method in ("opponent, ensemble 1", "opponent, ensemble 2",
                       "per channel, ensemble 1"):  # fmt: skip
            assert f"{denoiser}, {method} (measured) |" in text
        assert f"{denoiser}, ensemble 2 (measured) |" in text
        # CBSD68's published rows go with the float protocol only.
        assert text.count("| CDnCNN-B (published) | 31.23 |") == 1
        assert text.count("| DnCNN-B, released weights (quoted) |") == 1
        assert "identity (input as it is)" in text
        # One held-out subject, two pairs: A+010E+00 is near-frontal.
        assert "the 1 inputs lit within 15 degrees of frontal" in text
        for kind in ("stored", "aligned"):
            assert f"(held-out Yale B subjects, {kind} targets)" in text
        for ensemble in (1, 2):
            label = f"| {denoiser}, ensemble {ensemble} | "
            rows = [row for row in text.splitlines() if row.startswith(label)]
            # For each kind of target, the relighting row (PSNR, SSIM),
            # then the per-subject row.
            assert [row.count("|") for row in rows] == [4, 6, 4, 6]
            for row in rows[1::2]:
                assert row.rstrip(" |").split(" | ")[-1] in ("0", "1")
            assert f"| {colorizer}, ensemble {ensemble} | " in text
        assert "gray (no color)" in text
        # The gray baseline has no chroma.
        assert "| gray (no color) |" in text
        gray_row = next(
            line for line in text.splitlines() if "gray (no color)" in line
        )
        assert gray_row.rstrip(" |").endswith("0.00")


@pytest.mark.slow
def test_demo_prints_psnr_and_writes_png(tmp_path, capsys):
    output = str(tmp_path / "demo.png")
    recipe("demo").main(
        ["--size", "64", "--fit-seconds", "2", "--output", output]
    )
    printed = capsys.readouterr().out
    assert "PSNR before" in printed and "PSNR after" in printed
    assert np.asarray(Image.open(output)).shape == (64, 128)


def test_gallery_renders_input_output_target_rows(tmp_path):
    gallery = recipe("gallery")
    size, gap, caption = 64, gallery.GAP, gallery.CAPTION
    relight = str(tmp_path / "private" / "relight.png")
    gallery.main(
        ["--size", str(size), "--output-dir", str(tmp_path / "gallery"),
         "--relight-data", yale_folder(tmp_path / "yale"),
         "--relight-output", relight]
    )  # fmt: skip
    width = 3 * size + 2 * gap
    for name in ("denoise", "colorize_ycbcr", "colorize_lab"):
        image = np.asarray(Image.open(tmp_path / "gallery" / f"{name}.png"))
        assert image.shape == (2 * (size + caption) + gap, width, 3), name
    # Relighting goes only where asked: 3 subjects of 24x20 faces.
    assert sorted(os.listdir(tmp_path / "gallery")) == [
        "colorize_lab.png", "colorize_ycbcr.png", "denoise.png"
    ]  # fmt: skip
    faces = np.asarray(Image.open(relight))
    assert faces.shape == (3 * (24 + caption) + 2 * gap, 3 * 20 + 2 * gap, 3)

    # The denoised panel is closer to the clean one than the noisy input.
    image = np.asarray(Image.open(tmp_path / "gallery" / "denoise.png"))
    image = image.astype("float32") / 255
    for row in range(2):
        top = row * (size + caption + gap)
        noisy, denoised, clean = (
            image[top : top + size, column : column + size]
            for column in (0, size + gap, 2 * (size + gap))
        )
        assert gallery.psnr(clean, denoised) > gallery.psnr(clean, noisy) + 3
