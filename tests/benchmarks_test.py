"""The speed benchmark's baseline and its command line, on tiny sizes."""

import datetime
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_rbdn
from keras_rbdn import backend
from tests.layers.narrow_conv_test import force_blocks_form
from tests.models.folding_test import assert_same_inference
from tests.models.folding_test import randomize_batch_norms

BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
)
sys.path.insert(0, BENCHMARKS)

import architecture_findings  # noqa: E402
import architecture_study  # noqa: E402
import conv_floor  # noqa: E402
import conv_forms  # noqa: E402
import denoise_options  # noqa: E402
import dncnn  # noqa: E402
import layer_profile  # noqa: E402
import mixed_precision  # noqa: E402
import photo_memory  # noqa: E402
import photo_speed  # noqa: E402
import speed  # noqa: E402
import tile_margin  # noqa: E402
import torch_batch_norm  # noqa: E402
import torch_profile  # noqa: E402
import variants  # noqa: E402


def test_multiply_adds_per_pixel():
    # The figures docs/performance.md and the speed issue start from.
    rbdn = keras_rbdn.build(branches=3, task="denoise")
    assert dncnn.multiply_adds_per_pixel(rbdn) == 132624
    assert dncnn.multiply_adds_per_pixel(dncnn.dncnn(17)) == 554112


def test_folded_dncnn_is_the_same_function():
    model = dncnn.dncnn(depth=5, filters=8)
    randomize_batch_norms(model)
    folded = dncnn.fold_batch_norm(model)
    x = np.random.default_rng(0).normal(size=(2, 12, 9, 1))
    assert_same_inference(model, folded, x)
    assert len(folded.layers) == len(model.layers) - 3


@pytest.mark.slow
def test_speed_command_writes_its_report(tmp_path, capsys):
    report = tmp_path / "speed.md"
    speed.main(
        [
            "--infer-batch=1",
            "--infer-size=32",
            "--train-batch=2",
            "--train-size=16",
            "--warmup=1",
            "--repeats=2",
            "--no-bm3d",
            "--fold-batch-norm",
            f"--output={report}",
        ]
    )
    text = report.read_text()
    assert "folded into the convolutions in both networks" in text
    # Inference, training, and under JAX inference on the device too.
    on_device = keras.backend.backend() == "jax"
    assert text.count("**ratio RBDN/DnCNN**") == 2 + on_device
    assert ("## Inference on the device" in text) == on_device
    assert "| BM3D | skipped (--no-bm3d) |" in text
    assert f"written: {report}" in capsys.readouterr().out


@pytest.mark.slow
def test_speed_command_times_training_with_fit(tmp_path):
    report = tmp_path / "speed.md"
    speed.main(
        [
            "--train-batch=2",
            "--train-size=16",
            "--fit-steps=3",
            "--warmup=1",
            "--repeats=2",
            "--skip=inference,image",
            f"--output={report}",
        ]
    )
    text = report.read_text()
    assert "(`fit`, 3 steps per timed call, Adam, MSE)" in text
    assert text.count("**ratio RBDN/DnCNN**") == 1


@pytest.mark.slow
def test_variants_command_writes_its_report(tmp_path):
    report = tmp_path / "variants.md"
    variants.main(
        [
            "--batch=1",
            "--size=32",
            "--warmup=1",
            "--repeats=1",
            f"--output={report}",
        ]
    )
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[1]
        for line in report.read_text().splitlines()
        if line.startswith("| ") and "---" not in line
    }
    # Multiply-adds per pixel: the full model's count (see above), and
    # fewer for every variant that removes convolution work.
    assert rows["RBDN-3 as built"] == "132,624"
    assert rows["no batch norm"] == "132,624"
    assert int(rows["no branches (B_0)"].replace(",", "")) < 132624
    assert int(rows["no branch merges (merge='none')"].replace(",", "")) < (
        132624
    )
    assert rows["DnCNN-17 (for scale)"] == "554,112"


def test_multiply_adds_per_layer():
    counts = dncnn.multiply_adds_per_layer(
        keras_rbdn.build(branches=3, task="denoise")
    )
    assert counts["conv1"] == 9 * 9 * 64  # full resolution
    assert counts["conv2_1"] == 3 * 3 * 128 * 64 / 4  # concat1, scale 1/2
    assert counts["convB3_2"] == 3 * 3 * 64 * 64 / 256  # scale 1/16
    assert sum(counts.values()) == 132624


# RBDN-3's multiply-adds on one 321x481 image, counted by hand: each
# pooling rounds odd sizes up.
FULL, HALF, QUARTER = 321 * 481, 161 * 241, 81 * 121
EIGHTH, SIXTEENTH = 41 * 61, 21 * 31
C3 = 9 * 64 * 64  # a 3x3, 64 -> 64 convolution, per output pixel
RBDN3_MULTIPLY_ADDS_321X481 = (
    2 * 81 * 64 * FULL  # conv1, deconv1: 9x9, 1 <-> 64
    + 2 * C3 * HALF  # conv2_1: 128 -> 64
    + 10 * C3 * HALF  # conv2_2 to conv2_9, convB1_1, deconvB1_1
    + 2 * C3 * QUARTER  # convB1_2: 128 -> 64
    + 2 * C3 * QUARTER  # convB2_1, deconvB2_1
    + 2 * C3 * EIGHTH  # convB2_2: 128 -> 64
    + 2 * C3 * EIGHTH  # convB3_1, deconvB3_1
    + C3 * SIXTEENTH  # convB3_2
)


def test_multiply_adds_per_layer_at_odd_sizes():
    counts = dncnn.multiply_adds_per_layer(
        keras_rbdn.build(branches=3, task="denoise"), size=(321, 481)
    )
    pixels = 321 * 481
    assert round(counts["conv2_1"] * pixels) == 2 * C3 * HALF
    assert round(counts["convB3_2"] * pixels) == C3 * SIXTEENTH
    assert round(sum(counts.values()) * pixels) == RBDN3_MULTIPLY_ADDS_321X481


@pytest.mark.slow
def test_conv_floor_command_writes_its_report(tmp_path):
    report = tmp_path / "floor.md"
    conv_floor.main(
        [
            "--warmup=1",
            "--repeats=1",
            "--matrix-size=64",
            "--no-bm3d",
            f"--output={report}",
        ]
    )
    text = report.read_text()
    total = RBDN3_MULTIPLY_ADDS_321X481 / 1e9
    assert f"| **total** | **{total:.2f}** |" in text
    rates = re.findall(r"\| ([\d.]+) \|\n", text.split("## This")[1])
    floor = re.search(r"\| floor at ([\d.]+) GMAC/s \| ([\d.]+) \|", text)
    best = max(float(rate) for rate in rates)
    assert float(floor.group(1)) == pytest.approx(best, abs=0.05)
    # The rates are printed to 0.1 GMAC/s.
    assert float(floor.group(2)) == pytest.approx(
        total / best, rel=0.05 / best + 1e-3
    )
    assert "RBDN-3, batch normalization folded" in text
    assert "| BM3D | skipped (--no-bm3d) | | |" in text
    assert "- versions: python " in text


# Text parsing.
@pytest.mark.backend_independent
def test_hlo_layers_reads_the_layer_scope():
    text = """ENTRY %main.3 (x.1: f32[1,8,8,1]) -> f32[1,8,8,4] {
  %x.1 = f32[1,8,8,1]{3,2,1,0} parameter(0), metadata={op_name="x"}
  %conv.2 = f32[1,8,8,4]{3,2,1,0} convolution(%x.1, %k), metadata={op_name="jit(infer)/conv1/conv_general_dilated" source_file="a.py"}
  %fusion.7 = f32[1,8,8,4]{3,2,1,0} fusion(%conv.2), kind=kLoop, metadata={op_name="jit(infer)/conv1_relu/jit(relu)/max"}
  ROOT %conv.9 = f32[9,9,1,4]{3,2,1,0} convolution(%x.1, %fusion.7), metadata={op_name="jit(loss)/transpose(jvp(conv1))/conv_general_dilated"}
}"""  # noqa: E501
    layers = layer_profile.hlo_layers(text, {"conv1", "conv1_relu"})
    assert layers == {
        "conv.2": "conv1",
        "fusion.7": "conv1_relu",
        "conv.9": "conv1",  # a kernel gradient
    }
    # A GPU kernel is named after its fusion, with "_" for ".".
    assert layer_profile._layer_of("fusion_7", layers) == "conv1_relu"
    assert layer_profile._layer_of("memcpy", layers) == "(not attributed)"
    assert layer_profile.group_of("conv1_relu") == "conv1"


def network_sections(report):
    """A profile report's sections, checked to be RBDN-3's, DnCNN-17's."""
    sections = report.read_text().split("\n## ")[1:]
    assert [section.split("\n")[0] for section in sections] == [
        "RBDN-3",
        "DnCNN-17",
    ]
    return sections


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="reads XLA's profile (JAX)"
)
def test_layer_profile_command_writes_its_report(tmp_path):
    report = tmp_path / "profile.md"
    layer_profile.main(
        [
            "--batch=1",
            "--size=32",
            "--warmup=1",
            # The wall time is a median of untraced calls: enough of them
            # that a burst of load from a parallel test worker does not
            # decide it.
            "--calls=9",
            f"--trace-dir={tmp_path / 'traces'}",
            f"--output={report}",
        ]
    )
    rbdn = network_sections(report)[0]
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:]
        for line in rbdn.split("Top ")[0].splitlines()
        if line.startswith("| ") and "---" not in line
    }
    expected = dncnn.multiply_adds_per_layer(
        keras_rbdn.build(branches=3, task="denoise")
    )
    # Every convolution of RBDN-3 is found in the trace, with its count.
    for layer, count in expected.items():
        assert rows[layer][2] == f"{count:,.0f}", layer
    attributed = sum(
        float(cells[0]) for name, cells in rows.items() if "(" not in name
    )
    wall = float(re.search(r"untraced: ([\d.]+) ms", rbdn).group(1))
    # The operations add up to about the wall time: none counted twice,
    # and most of them attributed to layers.
    assert 0.5 * wall < attributed < 2.0 * wall
    assert os.listdir(tmp_path / "traces" / "RBDN-3")


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="reads XLA's profile (JAX)"
)
def test_layer_profile_of_a_training_step(tmp_path):
    report = tmp_path / "profile.md"
    layer_profile.main(
        [
            "--training",
            "--batch=2",
            "--size=32",
            "--warmup=1",
            "--calls=1",
            f"--output={report}",
        ]
    )
    rbdn = report.read_text().split("\n## ")[1]
    layers, top = rbdn.split("Top ")
    assert "GMAC/s (x3 passes)" in layers
    shares = {
        line.split(" | ")[0].lstrip("| "): float(line.split(" | ")[2][:-1])
        for line in layers.splitlines()
        if line.startswith("| ") and line.split(" | ")[2].endswith("%")
    }
    # The gradients' operations are attributed to their layers as well
    # (XLA's kernel-gradient convolutions carry no layer, but their shape
    # is listed).
    assert shares["deconv1"] > 0 and shares["conv2_1"] > 0
    assert re.search(r"\| `[\w.]+` \| f32\[[\d,]+\] convolution \|", top)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="JAX runs it")
def test_layer_profile_needs_jax():
    with pytest.raises(SystemExit, match="KERAS_BACKEND=jax"):
        layer_profile.main(["--output=-"])


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="profiles PyTorch"
)
def test_torch_profile_command_writes_its_report(tmp_path):
    report = tmp_path / "torch_profile.md"
    torch_profile.main(
        [
            "--batch=1",
            "--size=32",
            "--warmup=1",
            "--repeats=2",
            "--top=40",
            f"--output={report}",
        ]
    )
    sections = network_sections(report)
    # One convolution operator per Conv2D layer and call: 20 in RBDN-3
    # (two of them NarrowConv2D), 17 in DnCNN-17.
    for section, convolutions in zip(sections, (20, 17), strict=True):
        rows = re.findall(
            r"^\| `([^`]+)` \| ([\d.]+) \| ([\d.]+)% \| ([\d.]+) \|$",
            section,
            re.MULTILINE,
        )
        counts = {name: float(count) for name, _, _, count in rows}
        assert counts["aten::convolution"] == convolutions
        assert sum(float(share) for _, _, share, _ in rows) <= 100.5
        copies = float(re.search(r"`aten::copy_`: ([\d.]+) ms", section)[1])
        listed = [float(ms) for name, ms, _, _ in rows if name == "aten::copy_"]
        assert listed == [pytest.approx(copies, abs=0.01)]


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="PyTorch runs it"
)
def test_torch_profile_needs_torch():
    with pytest.raises(SystemExit, match="KERAS_BACKEND=torch"):
        torch_profile.main(["--output=-"])


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="compares PyTorch kernels"
)
def test_torch_batch_norm_command_writes_its_report(tmp_path):
    report = tmp_path / "torch_batch_norm.md"
    torch_batch_norm.main(
        [
            "--train-batch=2",
            "--train-size=32",
            "--warmup=1",
            "--repeats=2",
            "--image-repeats=2",
            f"--output={report}",
        ]
    )
    text = report.read_text()
    assert len(re.findall(r"\*\*speed-up\*\* \| \*\*[\d.]+x\*\*", text)) == 2
    losses = [
        float(value)
        for value in re.findall(r"(?:package's|Keras') ([\d.]+)", text)
    ]
    assert len(losses) == 2 and losses[0] > 0
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    difference = float(re.search(r"before training: ([\d.e+-]+)", text)[1])
    assert difference < 1e-5


def test_torch_batch_norm_builds_keras_layers_only_inside_its_context():
    with torch_batch_norm.keras_batch_norm():
        inside = keras_rbdn.build(branches=1, filters=4, task="denoise")
    outside = keras_rbdn.build(branches=1, filters=4, task="denoise")
    kinds = [
        {type(layer) for layer in model.layers if "bn" in layer.name}
        for model in (inside, outside)
    ]
    assert kinds == [
        {keras.layers.BatchNormalization},
        {keras_rbdn.layers.BatchNormalization},
    ]


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="PyTorch runs it"
)
def test_torch_batch_norm_needs_torch():
    with pytest.raises(SystemExit, match="KERAS_BACKEND=torch"):
        torch_batch_norm.main(["--output=-"])


@pytest.mark.parametrize("direction", ["up", "down"])
def test_conv_forms_compute_the_plain_convolution(direction):
    rng = np.random.default_rng(5)
    in_channels, out_channels = (1, 64) if direction == "up" else (64, 1)
    # Scaled so that the outputs are about 1: no large cancellations.
    kernel = rng.normal(size=(9, 9, in_channels, out_channels))
    kernel = (kernel / (9 * np.sqrt(in_channels))).astype("float32")
    x = rng.normal(size=(2, 16, 12, in_channels)).astype("float32")
    expected = np.zeros((2, 16, 12, out_channels))
    padded = np.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)])
    for i, j in np.ndindex(9, 9):  # NumPy reference: sum of shifted taps
        expected += padded[:, i : i + 16, j : j + 12, :] @ kernel[i, j]
    forms = conv_forms.forms(kernel, direction, keras.ops.convert_to_tensor)
    assert set(forms) == {
        "plain",
        "rows",
        "s2d2",
        "s2d2 (given)",
        "s2d4",
        "s2d4 (given)",
    }
    for name, (function, in_block, out_block) in forms.items():
        inputs = x
        if in_block > 1:
            inputs = conv_forms.space_to_depth(x, in_block)
        outputs = function(keras.ops.convert_to_tensor(inputs))
        if out_block > 1:
            outputs = conv_forms.depth_to_space(outputs, out_block)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(outputs),
            expected,
            rtol=1e-5,
            atol=1e-5,
            err_msg=name,
        )


def test_depth_to_space_inverts_space_to_depth():
    x = np.arange(2 * 8 * 4 * 3, dtype="float32").reshape(2, 8, 4, 3)
    blocks = conv_forms.space_to_depth(x, 2)
    assert tuple(blocks.shape) == (2, 4, 2, 12)
    # Block (0, 0) holds the 2x2 top-left pixels, row-major, then channels.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(blocks)[0, 0, 0],
        x[0, :2, :2, :].reshape(-1),
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(conv_forms.depth_to_space(blocks, 2)), x
    )


@pytest.mark.slow
def test_conv_forms_command_writes_its_report(tmp_path):
    report = tmp_path / "forms.md"
    conv_forms.main(
        [
            "--batch=1",
            "--size=16",
            "--warmup=1",
            "--repeats=1",
            f"--output={report}",
        ]
    )
    rows = [
        line.split(" | ")
        for line in report.read_text().splitlines()
        if line.startswith("| conv1") or line.startswith("| deconv1")
    ]
    assert len(rows) == 12
    for row in rows:  # every form agrees with the plain convolution
        assert float(row[-1].split(" ")[0]) < 1e-4, row


def test_mixed_precision_compares_the_narrow_forms(monkeypatch):
    force_blocks_form(monkeypatch)

    def build():
        return keras_rbdn.build(
            branches=1, filters=4, kernel_size=9, trunk_depth=1
        )

    rng = np.random.default_rng(3)
    clean = rng.uniform(size=(24, 16)).astype("float32")
    noisy = clean + 0.1 * rng.normal(size=clean.shape).astype("float32")
    scores = mixed_precision.evaluate(
        build, build().get_weights(), clean, noisy, compare_forms=True
    )
    forms = sorted({forms for _, forms in scores})
    assert len(scores) == 2 * len(speed.PRECISIONS)
    assert forms[0] == "conv1 blocks, deconv1 blocks"
    assert "blocks" not in forms[1]
    # The two forms compute the same function: the same float32 PSNR.
    assert scores["float32", forms[0]] == pytest.approx(
        scores["float32", forms[1]], abs=1e-3
    )
    # The forms are chosen as before.
    assert backend.find("narrow_conv2d", (9, 9, 1, 4)).name == "blocks"
    assert keras.mixed_precision.global_policy().name == "float32"


# Git and environment variables.
@pytest.mark.backend_independent
def test_source_revision_says_whether_tracked_files_changed(
    tmp_path, monkeypatch
):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True)

    git("init", "-q")
    (tmp_path / "tracked.txt").write_text("one\n")
    git("add", "tracked.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(speed, "REPOSITORY", str(tmp_path))
    commit = speed.source_revision()
    assert re.fullmatch("[0-9a-f]{12}", commit)
    (tmp_path / "untracked.txt").write_text("ignored\n")
    assert speed.source_revision() == commit
    (tmp_path / "tracked.txt").write_text("two\n")
    assert speed.source_revision() == f"{commit} plus uncommitted changes"
    monkeypatch.setattr(speed, "REPOSITORY", str(tmp_path / "missing"))
    assert speed.source_revision() == (
        "unknown (git could not check the working tree)"
    )


@pytest.mark.backend_independent
def test_reports_record_the_tuning_environment(monkeypatch):
    for name in speed.TUNING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert speed.tuning_environment_lines() == []
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    monkeypatch.setenv("XLA_FLAGS", "")
    assert speed.tuning_environment_lines() == [
        "- ONEDNN_MAX_CPU_ISA: `AVX512_CORE_VNNI`"
    ]
    assert speed.environment_lines(datetime.datetime(2026, 1, 1))[-1] == (
        "- ONEDNN_MAX_CPU_ISA: `AVX512_CORE_VNNI`"
    )


# The architecture study (`benchmarks/architecture_study.py`).
@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "name, expected",
    [
        # The verdicts the study's report gave when these runs were made.
        (
            "architecture_study",
            ["NOT", "REPRODUCED", "NOT", "NOT", "NOT"],
        ),
        (
            "architecture_study_long",
            ["PARTLY", "REPRODUCED", "PARTLY", "REPRODUCED", "REPRODUCED"],
        ),
    ],
)
def test_architecture_findings_of_the_recorded_studies(name, expected):
    with open(os.path.join(BENCHMARKS, "results", f"{name}.json")) as file:
        record = json.load(file)
    settings = record["settings"]
    depths = [1, 3, 5, 7, 9, 11]
    variants = architecture_study.study_variants(settings["filters"], depths)
    best = architecture_study.best_mses(record, variants)
    _, assessed = architecture_findings.assess(
        best, depths, settings["filters"]
    )
    names = [finding.name for _, finding, _, _ in assessed]
    assert names == [
        "Depth D",
        "K, c, T",
        "Branches",
        "Upsampling",
        "Recursive branching",
    ]
    verdicts = [verdict.split()[0] for _, _, verdict, _ in assessed]
    assert verdicts == expected


@pytest.mark.backend_independent
def test_architecture_findings_verdict_rule():
    claims = (
        architecture_findings.Claim("a", "<", ("x",), ("y",), "first"),
        architecture_findings.Claim("b", ">", ("x",), ("z",)),
    )
    finding = architecture_findings.Finding("f", "p", (), (), claims)
    judge = architecture_findings._Judge({"x": 1.0, "y": 2.0, "z": 0.5})
    assert architecture_findings.verdict(finding, judge)[0] == "REPRODUCED"
    judge = architecture_findings._Judge({"x": 1.0, "y": 2.0, "z": 1.01})
    assert architecture_findings.verdict(finding, judge) == (
        "PARTLY REPRODUCED",
        [True, False],
    )
    judge = architecture_findings._Judge({"x": 1.0, "y": 1.01, "z": 1.01})
    assert architecture_findings.verdict(finding, judge)[0] == "NOT REPRODUCED"


# The study's wiring (arguments, record, report), not what it trains.
@pytest.mark.backend_independent
@pytest.mark.slow
def test_architecture_study_runs_through_the_recipe(tmp_path):
    from tests.data.relight_test import write_fake_yale

    data = tmp_path / "relight"
    write_fake_yale(str(data), subjects=["yaleB01", "yaleB02"], size=(16, 16))
    recipe = os.path.join(os.path.dirname(BENCHMARKS), "recipes")
    command = [
        sys.executable,
        os.path.join(recipe, "tune_architecture.py"),
        "study",
        "--data-dir", str(data), "--image-size", "16", "16",
        "--validation-subjects", "1", "--lightings-per-subject", "2",
        "--epochs", "1", "--batch-size", "4", "--filters", "2",
        "--groups", "merge", "--output-dir", str(tmp_path), "--name", "study",
    ]  # fmt: skip
    environment = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "study.json").read_text())
    assert len(record["runs"]) == 2  # RBDN-3 recursive and linear
    report = (tmp_path / "study.md").read_text()
    assert "| merge | RBDN-3 linear (no merge) |" in report
    assert (tmp_path / "study.png").exists()


@pytest.mark.slow
@pytest.mark.backend_independent
def test_denoise_options_times_every_option_of_the_shipped_models(
    tmp_path, monkeypatch
):
    # A small crop of the bundled chelsea.png instead of 481x321.
    monkeypatch.setattr(denoise_options, "ROWS", 40)
    monkeypatch.setattr(denoise_options, "COLUMNS", 56)
    output = tmp_path / "options.md"
    denoise_options.main(
        ["--data", str(tmp_path / "none"), "--repeats", "1", "--warmup", "0",
         "--no-bm3d", "--output", str(output)]
    )  # fmt: skip
    report = output.read_text()
    assert "chelsea.png cropped" in report
    rows = re.findall(
        r"^\| (.+?) \| ([0-9.]+) \| (C?BM3D): skipped", report, re.M
    )
    shipped = keras_rbdn.presets.available()
    expected = [
        label
        for label, (name, *_) in denoise_options.OPTIONS.items()
        if name in shipped
    ]
    assert [label for label, _, _ in rows] == expected
    assert all(float(seconds) > 0 for _, seconds, _ in rows)


@pytest.mark.slow
@pytest.mark.backend_independent
def test_photo_speed_reports_every_case(tmp_path):
    output = tmp_path / "photo.md"
    photo_speed.main(
        ["--in-process", "--sizes", "0.01", "--ensembles", "1", "2",
         "--reference-size", "48", "--repeats", "1", "--output", str(output)]
    )  # fmt: skip
    report = output.read_text()
    rows = re.findall(
        r"^\| (gray|rgb) 115x86 \(0.0 MP\) \| `(\w+)` \| (\d) \| "
        r"([0-9.]+) \| [0-9.]+ \| [0-9.]+ \| \*\*([0-9.]+)\*\* \| "
        r"[0-9.]+ \| [0-9.]+ \|$",
        report,
        re.M,
    )
    # The models the command line runs on 8-bit photos.
    gray_model = keras_rbdn.cli._default_model("denoise", "denoise", 1)
    rgb_model = keras_rbdn.cli._default_model("denoise", "denoise", 3)
    assert [row[:3] for row in rows] == [
        ("gray", gray_model, "1"),
        ("gray", gray_model, "2"),
        ("rgb", rgb_model, "1"),
        ("rgb", rgb_model, "2"),
    ]
    assert all(float(row[4]) > 0 for row in rows)
    assert photo_speed.machine_name() in ("epyc", "xeon") or report


@pytest.mark.slow
@pytest.mark.backend_independent
def test_tile_margin_reports_each_margin(tmp_path, monkeypatch):
    monkeypatch.setattr(tile_margin, "CORE", 32)  # Tiles of 95 or less.
    output = tmp_path / "margin.md"
    tile_margin.main(
        ["--data", str(tmp_path / "none"), "--size", "96", "--margins",
         "16", "112", "--models", "denoise", "--output", str(output)]
    )  # fmt: skip
    report = output.read_text()
    assert "chelsea.png resized" in report
    rows = dict(re.findall(r"^\| (\d+) \| ([0-9.]+) \|", report, re.M))
    # The full radius (112) is exact; 16 pixels of context are not.
    assert float(rows["112"]) < 1e-3 < float(rows["16"])


@pytest.mark.slow
@pytest.mark.backend_independent
def test_photo_memory_runs_the_command_once_per_tile_shape(capsys):
    predict = keras.Model.predict_on_batch
    assert photo_memory.main(["--megapixels", "0.01", "--ensemble", "2"]) == 0
    assert keras.Model.predict_on_batch is predict  # Restored.
    assert re.search(
        r"^rgb 0.01 MP, ensemble 2: peak resident memory [0-9.]+ GB "
        r"\(exit status 0,",
        capsys.readouterr().out,
        re.M,
    )
