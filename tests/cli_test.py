import hashlib
import io
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from PIL import ImageCms
from PIL import JpegImagePlugin

import keras_rbdn
from keras_rbdn import cli

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def model_file(tmp_path):
    network = keras_rbdn.build(branches=1, task="denoise", K=3, c=4, D=1)
    path = tmp_path / "tiny.keras"
    network.save(path)
    return str(path)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# Argument handling that stops before any network runs.
@pytest.mark.backend_independent
@pytest.mark.parametrize("command", ["denoise", "relight", "colorize"])
def test_precisions_are_the_training_ones(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "a.png", "--precision", "float64"])
    choices = ", ".join(f"'{p}'" for p in keras_rbdn.training.PRECISIONS)
    assert f"(choose from {choices})" in capsys.readouterr().err


# Faces and scenes are upright: the commands that relight and colorize
# average over the mirror by default and refuse rotations.
@pytest.mark.backend_independent
@pytest.mark.parametrize("command", ["relight", "colorize"])
def test_upright_tasks_mirror_and_refuse_rotations(command, capsys):
    assert cli._parser().parse_args([command, "a.png"]).ensemble == 2
    with pytest.raises(SystemExit):
        cli.main([command, "a.png", "--ensemble", "4"])
    assert "(choose from 1, 2)" in capsys.readouterr().err
    assert cli._parser().parse_args(["denoise", "a.png"]).ensemble == 4


class DenoiseCommandTest:
    def test_rgba_alpha_kept_and_input_untouched(
        self, tmp_path, model_file, capsys
    ):
        pixels = np.random.default_rng(0).integers(0, 256, (13, 9, 4), "uint8")
        source = tmp_path / "photo.png"
        Image.fromarray(pixels, "RGBA").save(source)
        before = digest(source)
        status = cli.main(["denoise", str(source), "--model", model_file])
        assert status == 0
        output = tmp_path / "photo_denoised.png"
        assert str(output) in capsys.readouterr().out
        written = np.asarray(Image.open(output))
        assert written.shape == (13, 9, 4)
        np.testing.assert_array_equal(written[..., 3], pixels[..., 3])
        assert digest(source) == before

    def test_fold_batch_norm_gives_the_same_image(
        self, tmp_path, model_file, monkeypatch
    ):
        folded = []

        def fold(model):
            folded.append(keras_rbdn.models.fold_batch_norm(model))
            return folded[-1]

        monkeypatch.setattr(keras_rbdn, "fold_batch_norm", fold)
        pixels = np.random.default_rng(4).integers(0, 256, (21, 17), "uint8")
        source = tmp_path / "gray.png"
        Image.fromarray(pixels).save(source)
        outputs = {}
        for flags in ([], ["--no-fold-batch-norm"]):
            output = tmp_path / f"out{len(flags)}.png"
            arguments = ["denoise", str(source), "-o", str(output)]
            assert cli.main(arguments + ["--model", model_file] + flags) == 0
            outputs[len(flags)] = np.asarray(Image.open(output), "int32")
        (model,) = folded  # By default, not with --no-fold-batch-norm.
        (network,) = keras_rbdn.inference.rbdns_in(model)
        assert network.batch_norm is False
        # Same function up to float rounding: at most one 8-bit level.
        assert np.abs(outputs[0] - outputs[1]).max() <= 1

    @pytest.mark.parametrize("quiet", [False, True])
    def test_progress_on_a_terminal_unless_quiet(
        self, tmp_path, model_file, capsys, monkeypatch, quiet
    ):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        sources = [tmp_path / "a.png", tmp_path / "b.png"]
        for source in sources:
            Image.fromarray(np.zeros((24, 32), "uint8")).save(source)
        arguments = ["denoise", *map(str, sources), "--model", model_file]
        assert cli.main(arguments + ["--quiet"] * quiet) == 0
        error = capsys.readouterr().err
        if quiet:
            assert error == ""
            return
        # A bar over the files, one per image, then a summary line each.
        assert "files: 100%" in error and "[2/2] b.png:   0%|" in error
        summary = re.findall(
            r"\[(\d)/2\] \w\.png: 32x24 gray, \S+ s, \S+ MP/s\n", error
        )
        assert summary == ["1", "2"], error

    def test_precision_builds_the_shipped_model_in_it(
        self, tmp_path, monkeypatch
    ):
        loaded = []

        def load(name, **kwargs):
            loaded.append(keras_rbdn.presets.load(name, **kwargs))
            return loaded[-1]

        monkeypatch.setattr(keras_rbdn, "load", load)
        camera = os.path.join(
            os.path.dirname(keras_rbdn.__file__), "assets", "camera.png"
        )
        clean = np.asarray(Image.open(camera), "float64")[384:448, 128:192]
        noise = np.random.default_rng(5).normal(0, 25, clean.shape)
        noisy = np.clip(np.round(clean + noise), 0, 255).astype("uint8")
        source = tmp_path / "noisy.png"
        Image.fromarray(noisy).save(source)

        def psnr(image):
            error = np.mean((np.asarray(image, "float64") - clean) ** 2)
            return 10 * np.log10(255**2 / error)

        scores = {}
        for precision in ("float32", "mixed_bfloat16"):
            output = tmp_path / f"{precision}.png"
            arguments = ["denoise", str(source), "-o", str(output)]
            assert cli.main(arguments + ["--precision", precision]) == 0
            scores[precision] = psnr(Image.open(output))
        policies = [
            keras_rbdn.inference.find_rbdn(model).dtype_policy.name
            for model in loaded
        ]
        assert policies == ["float32", "mixed_bfloat16"]
        assert keras.mixed_precision.global_policy().name == "float32"
        # Both denoise; bfloat16 scores within 0.1 dB of float32.
        assert scores["float32"] > psnr(noisy) + 3
        assert abs(scores["mixed_bfloat16"] - scores["float32"]) < 0.1

    @pytest.mark.backend_independent
    def test_precision_is_refused_for_a_model_file(
        self, tmp_path, model_file, capsys
    ):
        source = tmp_path / "a.png"
        Image.fromarray(np.zeros((8, 8), "uint8")).save(source)
        arguments = ["denoise", str(source), "--model", model_file]
        status = cli.main(arguments + ["--precision", "mixed_bfloat16"])
        assert status == 1
        error = capsys.readouterr().err
        assert "applies to the shipped models" in error
        assert sorted(os.listdir(tmp_path)) == ["a.png", "tiny.keras"]
        # A name that is neither gets the loader's own error.
        missing = str(tmp_path / "missing.keras")
        arguments = ["denoise", str(source), "--model", missing]
        status = cli.main(arguments + ["--precision", "mixed_bfloat16"])
        assert status == 1
        assert "no such model file" in capsys.readouterr().err

    def test_jpeg_photo_keeps_exif_profile_and_encoding(
        self, tmp_path, model_file
    ):
        source = tmp_path / "photo.jpg"
        exif = Image.Exif()
        exif[0x0112], exif[0x010F] = 6, "Canon"  # Orientation, Make.
        pixels = np.random.default_rng(2).integers(0, 256, (40, 48, 3))
        Image.fromarray(pixels.astype("uint8")).save(
            source,
            quality=85,
            subsampling=2,
            exif=exif.tobytes(),
            icc_profile=SRGB,
            dpi=(240, 240),
        )
        output = tmp_path / "clean.jpg"
        arguments = ["denoise", str(source), "-o", str(output)]
        arguments += ["--model", model_file, "--ensemble", "1"]
        assert cli.main(arguments) == 0
        original, written = Image.open(source), Image.open(output)
        assert written.size == (48, 40)  # As stored: the tag turns it.
        assert written.info["exif"] == original.info["exif"]
        assert written.info["icc_profile"] == SRGB
        assert written.info["dpi"] == (240, 240)
        assert written.quantization == original.quantization
        assert JpegImagePlugin.get_sampling(written) == 2
        assert cli.main(arguments + ["--quality", "70", "--overwrite"]) == 0
        reference = io.BytesIO()
        original.save(reference, "JPEG", quality=70)
        written = Image.open(output)
        assert written.quantization == Image.open(reference).quantization
        assert written.info["exif"] == original.info["exif"]

    def test_16_bit_gray_stays_16_bit(self, tmp_path, model_file):
        pixels = np.random.default_rng(1).integers(0, 65536, (11, 8), "uint16")
        source = tmp_path / "scan.png"
        Image.fromarray(pixels).save(source)
        output = tmp_path / "out" / "scan.png"
        status = cli.main(
            [
                "denoise",
                str(source),
                "--output-dir",
                str(output.parent),
                "--model",
                model_file,
            ]
        )
        assert status == 0
        assert Image.open(output).mode in ("I;16", "I")
        assert np.asarray(Image.open(output)).max() > 255

    def test_existing_output_needs_overwrite(
        self, tmp_path, model_file, capsys
    ):
        source = tmp_path / "a.png"
        Image.fromarray(np.zeros((8, 8), "uint8")).save(source)
        output = tmp_path / "b.png"
        output.write_bytes(b"keep me")
        argv = ["denoise", str(source), "-o", str(output)]
        status = cli.main(argv + ["--model", model_file])
        assert status == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "already exists" in error
        assert output.read_bytes() == b"keep me"
        status = cli.main(argv + ["--model", model_file, "--overwrite"])
        assert status == 0
        assert np.asarray(Image.open(output)).shape == (8, 8)
        assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "tiny.keras"]

    def test_bad_file_is_one_line_error(self, tmp_path, model_file, capsys):
        source = tmp_path / "broken.png"
        source.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
        status = cli.main(["denoise", str(source), "--model", model_file])
        assert status == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1
        assert str(source) in error and "Traceback" not in error

    @pytest.mark.backend_independent
    def test_output_option_takes_one_input(self, tmp_path, capsys):
        status = cli.main(["denoise", "a.png", "b.png", "-o", "c.png"])
        assert status == 1
        assert "--output-dir" in capsys.readouterr().err

    @pytest.mark.backend_independent
    def test_output_extension_is_checked_before_the_model_loads(
        self, tmp_path, capsys
    ):
        source = tmp_path / "a.png"
        Image.fromarray(np.zeros((8, 8), "uint8")).save(source)
        output = str(tmp_path / "a.xyz")
        arguments = ["denoise", str(source), "-o", output, "--model", "nope"]
        assert cli.main(arguments) == 1
        error = capsys.readouterr().err
        assert f"{output}: unsupported output extension '.xyz'" in error

    @pytest.mark.backend_independent
    @pytest.mark.parametrize("value", ["0", "101", "high"])
    def test_quality_out_of_range_is_refused(self, value, capsys):
        with pytest.raises(SystemExit):
            cli.main(["denoise", "a.jpg", "--quality", value])
        assert f"from 1 to 100, not '{value}'" in capsys.readouterr().err

    @pytest.mark.backend_independent
    def test_unknown_model_name(self, tmp_path, capsys):
        source = tmp_path / "a.png"
        Image.fromarray(np.zeros((8, 8), "uint8")).save(source)
        status = cli.main(["denoise", str(source), "--model", "nope"])
        assert status == 1
        assert "nope" in capsys.readouterr().err

    @pytest.mark.slow
    def test_console_entry_point_exit_status_without_traceback(self, tmp_path):
        source = tmp_path / "text.png"
        source.write_text("hello")
        environment = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
        result = subprocess.run(
            [sys.executable, "-m", "keras_rbdn.cli", "denoise", str(source)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
        )
        assert result.returncode == 1
        # The error is all of stderr: no traceback, and no TensorFlow
        # start-up lines (keras_rbdn._quiet_start).
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("keras-rbdn denoise: error: ")
        assert str(source) in lines[0]

    @pytest.mark.slow
    def test_console_script_writes_nothing_to_stderr_on_success(self, tmp_path):
        script = os.path.join(os.path.dirname(sys.executable), "keras-rbdn")
        if not os.path.exists(script):
            pytest.skip("the keras-rbdn console script is not installed")
        source = tmp_path / "gray.png"
        Image.fromarray(np.full((16, 16), 128, "uint8")).save(source)
        output = tmp_path / "out.png"
        environment = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
        environment.pop("KERAS_RBDN_QUIET_START", None)
        environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
        result = subprocess.run(
            [script, "denoise", str(source), "-o", str(output)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        # An 8-bit gray file: the gray denoiser for 8-bit noise.
        assert result.stdout == f"{source} -> {output} (denoise_8bit)\n"
        assert Image.open(output).size == (16, 16)

    def test_ensemble_and_color_space_reach_apply_model(
        self, tmp_path, model_file, monkeypatch
    ):
        calls = []
        apply_model = keras_rbdn.inference.apply_model

        def spy(model, pixels, **kwargs):
            calls.append(kwargs)
            return apply_model(model, pixels, **kwargs)

        monkeypatch.setattr(keras_rbdn.inference, "apply_model", spy)
        # 16-bit RGBA: alpha and bit depth survive the new paths too.
        pixels = np.random.default_rng(5).integers(0, 65536, (12, 10, 4))
        source = tmp_path / "photo.png"
        import tensorflow as tf

        with open(source, "wb") as file:
            file.write(tf.io.encode_png(pixels.astype("uint16")).numpy())
        before = digest(source)
        output = tmp_path / "clean.png"
        arguments = ["denoise", str(source), "-o", str(output)]
        arguments += ["--model", model_file, "--ensemble", "4"]
        assert cli.main(arguments + ["--color-space", "per_channel"]) == 0
        assert calls[-1]["ensemble"] == 4
        assert calls[-1]["color_space"] == "per_channel"
        assert digest(source) == before
        written = tf.io.decode_png(
            open(output, "rb").read(), dtype=tf.uint16
        ).numpy()
        assert written.shape == (12, 10, 4)
        np.testing.assert_array_equal(written[..., 3], pixels[..., 3])
        # The defaults: the opponent color space, no ensemble.
        arguments = ["denoise", str(source), "-o", str(tmp_path / "b.png")]
        assert cli.main(arguments + ["--model", model_file]) == 0
        assert calls[-1]["color_space"] == "opponent"
        assert calls[-1]["ensemble"] == 4

    @pytest.mark.backend_independent
    @pytest.mark.parametrize("variants_shipped", [True, False])
    @pytest.mark.parametrize("rgb_denoiser_shipped", [True, False])
    def test_each_image_gets_the_denoiser_for_its_channels_and_bits(
        self,
        tmp_path,
        model_file,
        monkeypatch,
        rgb_denoiser_shipped,
        variants_shipped,
    ):
        import tensorflow as tf

        shipped = ["denoise"] + [cli.RGB_DENOISER] * rgb_denoiser_shipped
        if variants_shipped:
            shipped += [f"{name}_8bit" for name in shipped]
        monkeypatch.setattr(keras_rbdn.presets, "available", lambda: shipped)
        loaded = []

        def load(args, name, task):
            loaded.append(name)
            return keras_rbdn.load(model_file)

        monkeypatch.setattr(cli, "_load_model", load)
        rng = np.random.default_rng(0)
        inputs = []
        # 8-bit gray, 8-bit RGB, 16-bit gray, 16-bit RGB, 8-bit gray.
        for name, shape, bits in [
            ("a", (8, 8), 8),
            ("b", (8, 8, 3), 8),
            ("c", (8, 8), 16),
            ("d", (8, 8, 3), 16),
            ("e", (8, 8), 8),
        ]:
            inputs.append(str(tmp_path / f"{name}.png"))
            pixels = rng.integers(0, 2**bits, shape, f"uint{bits}")
            tf.io.write_file(inputs[-1], tf.io.encode_png(
                pixels.reshape(8, 8, -1)
            ))  # fmt: skip
        arguments = ["denoise", *inputs, "--output-dir", str(tmp_path / "o")]
        assert cli.main(arguments + ["--ensemble", "1"]) == 0
        # One load per model, in the order the images need them.
        rgb = cli.RGB_DENOISER if rgb_denoiser_shipped else "denoise"
        eight_bit = {"denoise": "denoise_8bit", rgb: f"{rgb}_8bit"}
        if not variants_shipped:
            eight_bit = {"denoise": "denoise", rgb: rgb}
        expected = [eight_bit["denoise"], eight_bit[rgb], "denoise", rgb]
        assert loaded == list(dict.fromkeys(expected))
        # --model applies to every image, whatever its bits.
        loaded.clear()
        arguments += ["--model", "denoise", "--overwrite", "--ensemble", "1"]
        assert cli.main(arguments) == 0
        assert loaded == ["denoise"]

    @pytest.mark.parametrize(
        "flag, value", [("--ensemble", "3"), ("--color-space", "lab")]
    )
    def test_bad_option_values_are_refused(self, flag, value, capsys):
        with pytest.raises(SystemExit):
            cli.main(["denoise", "a.png", flag, value])
        error = capsys.readouterr().err
        assert re.search(f"invalid choice: '?{value}'?", error), error


class ColorizeCommandTest:
    def test_gray_lossless_webp_gives_lossless_rgb_without_gray_profile(
        self, tmp_path
    ):
        network = keras_rbdn.build(
            branches=1, task="colorize_ycbcr", K=3, c=4, D=1
        )
        model_file = tmp_path / "colorizer.keras"
        network.save(model_file)
        source = tmp_path / "old.webp"
        exif = Image.Exif()
        exif[0x010F] = "Kodak"
        gray = np.random.default_rng(3).integers(0, 256, (40, 48), "uint8")
        # A profile whose header names the gray color space.
        gray_profile = SRGB[:16] + b"GRAY" + SRGB[20:]
        Image.fromarray(gray).save(
            source,
            lossless=True,
            exif=exif.tobytes(),
            icc_profile=gray_profile,
        )
        output = tmp_path / "color.webp"
        arguments = ["colorize", str(source), "-o", str(output)]
        arguments += ["--model", str(model_file), "--task", "colorize_ycbcr"]
        assert cli.main(arguments + ["--ensemble", "1"]) == 0
        written = Image.open(output)
        assert written.mode == "RGB" and written.size == (48, 40)
        assert b"VP8L" in output.read_bytes()
        assert written.getexif()[0x010F] == "Kodak"
        assert "icc_profile" not in written.info


class ExportCommandTest:
    def test_calls_export_with_the_loaded_model(
        self, tmp_path, model_file, monkeypatch, capsys
    ):
        calls = []

        def fake_export(model, path, **kwargs):
            calls.append((model, path, kwargs))
            return os.path.join(path, "tiny", "3")

        monkeypatch.setattr(keras_rbdn, "export", fake_export)
        status = cli.main(
            [
                "export",
                "--model",
                model_file,
                "--output",
                str(tmp_path / "served"),
                "--name",
                "tiny",
                "--version",
                "3",
            ]
        )
        assert status == 0
        ((model, path, kwargs),) = calls
        assert isinstance(model, keras.Model)
        assert model.input_shape[-1] == 1
        assert path == str(tmp_path / "served")
        assert kwargs["name"] == "tiny" and kwargs["version"] == 3
        assert kwargs["ensemble"] == 1
        assert kwargs["color_space"] == "opponent"
        assert (
            capsys.readouterr().out.strip().endswith(os.path.join("tiny", "3"))
        )
        (network,) = keras_rbdn.inference.rbdns_in(model)
        assert network.batch_norm is True  # Not folded unless asked.

    def test_fold_batch_norm(self, tmp_path, model_file, monkeypatch):
        calls = []
        monkeypatch.setattr(
            keras_rbdn, "export", lambda model, path, **_: calls.append(model)
        )
        arguments = ["export", "--model", model_file, "--fold-batch-norm"]
        assert cli.main(arguments + ["--output", str(tmp_path)]) == 0
        (model,) = calls
        (network,) = keras_rbdn.inference.rbdns_in(model)
        assert network.batch_norm is False


class EvaluateCommandTest:
    def test_table_on_generated_sets(self, tmp_path, model_file, capsys):
        rng = np.random.default_rng(0)
        for name in ("bsd68", "set12"):
            folder = tmp_path / "denoise" / name
            folder.mkdir(parents=True)
            for index in range(2):
                pixels = rng.integers(0, 256, (24, 20), "uint8")
                Image.fromarray(pixels).save(folder / f"{index}.png")
        table_path = tmp_path / "table.md"
        status = cli.main(
            [
                "evaluate",
                "--model",
                model_file,
                "--data",
                str(tmp_path),
                "--sigmas",
                "25",
                "--output",
                str(table_path),
            ]
        )
        assert status == 0
        table = table_path.read_text()
        assert "BSD68 s=25" in table and "SET12 s=25" in table
        assert "noisy input (measured)" in table
        assert "DnCNN-B, released weights (quoted) | 29.17 |" in table
        assert table.strip() in capsys.readouterr().out
