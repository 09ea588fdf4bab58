"""The speed benchmark's baseline and its command line, on tiny sizes."""

import os
import sys

import numpy as np
import pytest

import keras_rbdn
from tests.models.folding_test import assert_same_inference
from tests.models.folding_test import randomize_batch_norms

BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
)
sys.path.insert(0, BENCHMARKS)

import dncnn  # noqa: E402
import speed  # noqa: E402
import variants  # noqa: E402


def test_multiply_adds_per_pixel():
    # The figures SPEED_NOTES.md and the speed issue start from.
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
    assert text.count("**ratio RBDN/DnCNN**") == 2
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
