"""Tests of `keras_rbdn.export`: SavedModels for TF Serving and ONNX.

The exports are checked from the outside, as a server sees them: a fresh
Python process that imports neither Keras nor keras-rbdn loads them with
`tf.saved_model.load` and runs their signatures
(`tests/export_serving_client.py`); the reference is the Keras model run
on the same images padded with `numpy.pad`. The same process also loads
them as TF Serving does, into a `Session` (`tests/serving_session.py`),
and runs their warm-up requests; the reference there is
`tf.saved_model.load`. Each model is exported once per module and shared
by the tests. The shipped SavedModels go through the session loader
only, against the shipped Keras models.
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest

import keras_rbdn
from keras_rbdn import export
from keras_rbdn.inference import find_rbdn
from tests.serving_session import SessionModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVING_DOC = os.path.join(ROOT, "docs", "serving.md")
CLIENT = os.path.join(ROOT, "tests", "export_serving_client.py")
LOADERS = ("eager", "session")
BRANCHES = 2
MULTIPLE = 2 ** (BRANCHES + 1)
SIZES = [(33, 21), (481, 321)]
TINY_SIZES = [(1, 1), (2, 3), (5, 4)]
# The fresh exports run the large images through the eager loader only.
LARGE = "{}x{}".format(*SIZES[1])
# The shipped SavedModels (64-filter networks) take smaller images.
SHIPPED_SIZES = [SIZES[0], (97, 67)]
# Small networks: the tests check the plumbing, not the quality.
SMALL = dict(c=4, D=1, K=3)

pytestmark = pytest.mark.slow


def make_models():
    """A gray denoiser and an RGB Lab colorizer, end to end in [0, 1].

    `grayx4` is the denoiser exported with `ensemble=4`: the four
    rotations, two of which swap height and width. The eight-fold graph
    only adds mirrors, which `self_ensemble_test` covers.
    """
    keras.utils.set_random_seed(3)
    denoiser = keras_rbdn.build(
        branches=BRANCHES, task="denoise", global_residual=True, **SMALL
    )
    # Keep the output close to the input, inside [0, 1], so that clipping
    # does not hide differences.
    deconv = denoiser.get_layer("deconv1")
    deconv.set_weights([w * 0.1 for w in deconv.get_weights()])
    colorizer = keras_rbdn.build(
        branches=BRANCHES, task="colorize_lab", **SMALL
    )
    gray = keras_rbdn.image_model(denoiser, "denoise")
    return {
        "gray": gray,
        "rgb": keras_rbdn.image_model(colorizer, "colorize_lab"),
        "grayx4": gray,
    }


EXPORT_OPTIONS = {"grayx4": {"ensemble": 4}}


def pad_to_multiple(images, pad_mode="reflect", multiple=MULTIPLE):
    height, width = images.shape[1:3]
    return np.pad(
        images,
        [(0, 0), (0, -height % multiple), (0, -width % multiple), (0, 0)],
        pad_mode,
    )


def numpy_symmetries():
    """The eight flips and rotations of (batch, H, W, C) images and their
    inverses, written with NumPy's rot90 and flip."""
    pairs = []
    for k in range(4):
        pairs.append(
            (
                lambda x, k=k: np.rot90(x, k, axes=(1, 2)),
                lambda x, k=k: np.rot90(x, -k, axes=(1, 2)),
            )
        )
        pairs.append(
            (
                lambda x, k=k: np.flip(np.rot90(x, k, axes=(1, 2)), 2),
                lambda x, k=k: np.rot90(np.flip(x, 2), -k, axes=(1, 2)),
            )
        )
    return pairs


def opponent_planes(rgb):
    """Y / sqrt3, U + 1/2, V + 1/2 of the orthonormal opponent space."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return [
        (r + g + b)[..., None] / 3.0,
        ((r - b) / np.sqrt(2.0) + 0.5)[..., None],
        ((r - 2 * g + b) / np.sqrt(6.0) + 0.5)[..., None],
    ]


def from_opponent_planes(y, u, v):
    y, u, v = y[..., 0] * np.sqrt(3.0), u[..., 0] - 0.5, v[..., 0] - 0.5
    return np.stack(
        [
            y / np.sqrt(3) + u / np.sqrt(2) + v / np.sqrt(6),
            y / np.sqrt(3) - 2 * v / np.sqrt(6),
            y / np.sqrt(3) - u / np.sqrt(2) + v / np.sqrt(6),
        ],
        axis=-1,
    ).astype("float32")


def random_images(channels, height, width, batch=2, seed=0):
    rng = np.random.default_rng(seed + height * 1000 + width)
    return rng.integers(0, 256, (batch, height, width, channels), "uint8")


def keras_reference(
    model, images, pad_mode="reflect", ensemble=1, multiple=MULTIPLE
):
    """The Keras model on `numpy.pad`-ded images, cropped and clipped.

    A gray model on RGB images runs on the opponent planes; an RGB model
    on gray images on the repeated gray; with `ensemble=4` the model runs
    on the four rotations of the padded images (`numpy.rot90`) and the
    mean is taken.
    """
    height, width = images.shape[1:3]
    padded = pad_to_multiple(images, pad_mode, multiple)
    model_channels = model.inputs[0].shape[-1]

    def run(x):
        if ensemble == 1:
            return keras.ops.convert_to_numpy(model(x, training=False))
        # `numpy_symmetries` alternates rotations and their mirrors.
        symmetries = {4: numpy_symmetries()[::2], 8: numpy_symmetries()}
        outputs = [
            undo(keras.ops.convert_to_numpy(model(do(x), training=False)))
            for do, undo in symmetries[ensemble]
        ]
        return np.mean(outputs, axis=0)

    if padded.shape[-1] == model_channels:
        outputs = run(padded)
    elif model_channels == 3:
        outputs = run(np.repeat(padded, 3, axis=-1))
    else:
        outputs = from_opponent_planes(
            *[run(plane) for plane in opponent_planes(padded)]
        )
    return np.clip(outputs[:, :height, :width, :], 0.0, 1.0)


def to_uint8(images):
    return np.floor(np.clip(images, 0, 1) * 255.0 + 0.5).astype("uint8")


def saved_model_cli():
    """TensorFlow's `saved_model_cli`, next to this Python if there."""
    command = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return command if os.path.exists(command) else shutil.which(command)


def doc_blocks(language, path=SERVING_DOC):
    """The code blocks of `docs/serving.md` (or `path`) in `language`, in
    order."""
    with open(path) as file:
        text = file.read()
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def documented_request_and_response():
    request, response = [json.loads(b) for b in doc_blocks("json")]
    return request, response


@pytest.fixture(scope="module")
def models():
    return make_models()


@pytest.fixture(scope="module")
def reference(models):
    """`keras_reference`, computed once per model and image."""
    cache = {}

    def compute(key, images):
        cache_key = (key, images.shape, images.tobytes())
        if cache_key not in cache:
            cache[cache_key] = keras_reference(
                models[key], images, **EXPORT_OPTIONS.get(key, {})
            )
        return cache[cache_key]

    return compute


@pytest.fixture(scope="module")
def exports(models, tmp_path_factory):
    base = tmp_path_factory.mktemp("savedmodels")
    with pytest.MonkeyPatch.context() as patch:
        # The XLA-compiled switch mask switched on for every size (it is
        # TensorFlow-only): the exports must still not use it, since TF
        # Serving compiles XLA only when started with an option.
        if keras.backend.backend() == "tensorflow":
            from keras_rbdn.backend import tensorflow as tf_forms

            patch.setattr(tf_forms, "COMPILED_MASK_MIN_ELEMENTS", 1)
        return {
            key: export(
                model,
                base,
                version=1,
                name=f"{key}_model",
                **EXPORT_OPTIONS.get(key, {}),
            )
            for key, model in models.items()
        }


@pytest.fixture(scope="module")
def inputs():
    arrays = {}
    for key, channels in (("gray", 1), ("rgb", 3)):
        for height, width in SIZES:
            images = random_images(channels, height, width)
            arrays[f"{key}_{height}x{width}_uint8"] = images
            arrays[f"{key}_{height}x{width}_float32"] = (
                images.astype("float32") / 255.0
            )
    for height, width in TINY_SIZES:
        arrays[f"gray_{height}x{width}_float32"] = (
            random_images(1, height, width).astype("float32") / 255.0
        )
    # The other accepted channel count of each model, and the ensemble.
    height, width = SIZES[0]
    for key, channels in (("gray", 3), ("rgb", 1), ("grayx4", 1)):
        images = random_images(channels, height, width, seed=1)
        arrays[f"{key}_{channels}channels_uint8"] = images
        arrays[f"{key}_{channels}channels_float32"] = (
            images.astype("float32") / 255.0
        )
    arrays["gray_wrong_channels"] = random_images(2, 9, 7)
    arrays["rgb_wrong_channels"] = random_images(4, 9, 7)
    request, _ = documented_request_and_response()
    arrays["doc_request"] = np.asarray(request["instances"], "uint8")
    return arrays


def run_client(scratch, exports, arrays, calls, loaders=LOADERS):
    """Runs `calls` and every export's warm-up requests in one fresh
    process without Keras or keras-rbdn (`export_serving_client.py`).

    `calls` are `[export key, signature, input key, loader]`, `loader`
    one of `loaders` (`"eager"`, `"session"`), the loaders the exports are
    loaded with. Returns `{loader: (outputs, errors)}`, each keyed by
    `(export key, input key)`, the client's summary and its results
    (warm-up outputs included).
    """
    np.savez(scratch / "inputs.npz", **arrays)
    job = {
        "inputs": str(scratch / "inputs.npz"),
        "results": str(scratch / "results.npz"),
        "exports": {key: str(path) for key, path in exports.items()},
        "calls": calls,
        "loaders": list(loaders),
    }
    with open(scratch / "job.json", "w") as file:
        json.dump(job, file)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KERAS")
    }
    result = subprocess.run(
        [sys.executable, CLIENT, str(scratch / "job.json")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    results = dict(np.load(job["results"]))
    by_loader = {loader: ({}, {}) for loader in loaders}
    for index, (key, _, input_key, loader) in enumerate(calls):
        outputs, errors = by_loader[loader]
        if str(index) in results:
            outputs[key, input_key] = results[str(index)]
        if str(index) in summary["errors"]:
            errors[key, input_key] = summary["errors"][str(index)]
    return by_loader, summary, results


def check_session_matches_eager(session, eager, label):
    """Session-loader outputs against the eager loader's: at most one
    level in uint8, 1e-5 in float32."""
    assert session.dtype == eager.dtype, label
    assert session.shape == eager.shape, label
    if session.dtype == np.uint8:
        difference = np.abs(session.astype(int) - eager.astype(int))
        assert difference.max() <= 1, label
    else:
        assert np.max(np.abs(session - eager)) <= 1e-5, label


def check_warmup_requests(summary, results, key, loaders=LOADERS):
    """The export's warm-up file holds a gray and an RGB `PredictRequest`
    per signature, of the signature's dtype, and each runs through
    `loaders`, the session loader as the eager one where both ran."""
    requests = summary["warmup"][key]
    expected = {
        ("serving_default", "uint8", 1),
        ("serving_default", "uint8", 3),
        ("serving_float32", "float32", 1),
        ("serving_float32", "float32", 3),
    }
    found = set()
    for index, request in enumerate(requests):
        assert request["log_type"] == "predict_log", (key, request)
        assert list(request["inputs"]) == ["images"], (key, request)
        dtype, shape = request["inputs"]["images"]
        found.add((request["signature"], dtype, shape[-1]))
        name = f"{key}.warmup{index}"
        for loader in loaders:
            error = summary["errors"].get(f"{name}.{loader}")
            assert error is None, (name, loader, error)
            output = results[f"{name}.{loader}"]
            assert output.shape[:3] == tuple(shape[:3]), (name, loader)
        if set(loaders) == set(LOADERS):
            session = results[f"{name}.session"]
            check_session_matches_eager(session, results[f"{name}.eager"], name)
    assert found == expected, key


@pytest.fixture(scope="module")
def served_by_loader(exports, inputs, tmp_path_factory):
    """Every input through the eager loader, and all but the large ones
    through the session loader, in one fresh process."""
    calls = []
    for input_key in inputs:
        model_key = input_key.split("_")[0]
        if input_key == "doc_request":
            model_key = "gray"
        signature = (
            "serving_float32"
            if input_key.endswith("float32")
            else "serving_default"
        )
        calls.append([model_key, signature, input_key, "eager"])
        if LARGE not in input_key:
            calls.append([model_key, signature, input_key, "session"])
    scratch = tmp_path_factory.mktemp("served")
    by_loader, summary, results = run_client(scratch, exports, inputs, calls)
    by_input = {}
    for loader, (outputs, errors) in by_loader.items():
        by_input[loader] = (
            {input_key: value for (_, input_key), value in outputs.items()},
            {input_key: value for (_, input_key), value in errors.items()},
        )
    return by_input, summary, results


@pytest.fixture(scope="module")
def served(served_by_loader):
    """`(outputs, errors, summary)` of the eager loader, by input key."""
    by_input, summary, _ = served_by_loader
    outputs, errors = by_input["eager"]
    return outputs, errors, summary


class SavedModelTest:
    @pytest.mark.parametrize("key", ["gray", "rgb"])
    @pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
    def test_float32_signature_matches_keras(
        self, reference, inputs, served, key, size
    ):
        outputs, errors, _ = served
        input_key = f"{key}_{size[0]}x{size[1]}_float32"
        assert input_key not in errors, errors.get(input_key)
        images = inputs[input_key]
        expected = reference(key, images)
        assert outputs[input_key].dtype == np.float32
        assert outputs[input_key].shape == images.shape
        assert np.max(np.abs(outputs[input_key] - expected)) <= 1e-4

    @pytest.mark.parametrize("key", ["gray", "rgb"])
    @pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
    def test_uint8_signature_matches_keras(
        self, reference, inputs, served, key, size
    ):
        outputs, errors, _ = served
        input_key = f"{key}_{size[0]}x{size[1]}_uint8"
        assert input_key not in errors, errors.get(input_key)
        images = inputs[input_key]
        expected = to_uint8(reference(key, images.astype("float32") / 255.0))
        output = outputs[input_key]
        assert output.dtype == np.uint8
        assert output.shape == images.shape
        difference = np.abs(output.astype(int) - expected.astype(int))
        assert difference.max() <= 1

    @pytest.mark.parametrize(
        "key, channels", [("gray", 3), ("rgb", 1), ("grayx4", 1)]
    )
    def test_other_channels_and_ensemble_match_keras(
        self, reference, inputs, served, key, channels
    ):
        outputs, errors, _ = served
        for signature in ("float32", "uint8"):
            input_key = f"{key}_{channels}channels_{signature}"
            assert input_key not in errors, errors.get(input_key)
            images = inputs[input_key]
            if signature == "uint8":
                expected = reference(key, images.astype("float32") / 255.0)
            else:
                expected = reference(key, images)
            output = outputs[input_key]
            assert output.shape == images.shape[:3] + expected.shape[3:]
            assert output.shape[-1] == (1 if key == "grayx4" else 3)
            if signature == "float32":
                assert np.max(np.abs(output - expected)) <= 1e-4
            else:
                difference = output.astype(int) - to_uint8(expected)
                assert np.abs(difference).max() <= 1

    @pytest.mark.parametrize("size", TINY_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
    def test_images_smaller_than_the_network_are_padded(
        self, reference, inputs, served, size
    ):
        outputs, errors, _ = served
        input_key = f"gray_{size[0]}x{size[1]}_float32"
        assert input_key not in errors, errors.get(input_key)
        expected = reference("gray", inputs[input_key])
        assert outputs[input_key].shape == inputs[input_key].shape
        assert np.max(np.abs(outputs[input_key] - expected)) <= 1e-4

    def test_fresh_process_imports_no_keras(self, served):
        _, _, summary = served
        assert summary["imported"] == []

    @pytest.mark.parametrize("key", ["gray", "rgb", "grayx4"])
    def test_every_op_is_a_stock_tensorflow_op(self, served, key):
        _, _, summary = served
        ops = summary["ops"][key]
        assert ops["unregistered"] == []
        assert ops["xla_compiled"] == []
        # Switches as masks, for any device: no CPU-only max-pool gradient
        # kernels in the forward graph (`keras_rbdn.backend.portable_forms`).
        assert "MaxPoolGrad" not in ops["types"]
        python_ops = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
        assert python_ops.isdisjoint(ops["types"])
        # The network is really in the graph (as one XlaCallModule op when
        # exported from JAX).
        assert {"Conv2D", "XlaCallModule"}.intersection(ops["types"])

    @pytest.mark.parametrize("key", ["gray", "rgb"])
    def test_wrong_channel_count_is_a_readable_error(
        self, served_by_loader, key
    ):
        by_input, _, _ = served_by_loader
        message = (
            "(batch, height, width, 1 or 3): a batch of images with 1 "
            "channel (gray) or 3 channels (RGB)."
        )
        for loader in LOADERS:
            _, errors = by_input[loader]
            assert message in errors[f"{key}_wrong_channels"], loader

    @pytest.mark.parametrize("key", ["gray", "rgb", "grayx4"])
    def test_session_loader_matches_the_eager_loader(
        self, inputs, served_by_loader, key
    ):
        """TF Serving's way of loading (`tests/serving_session.py`): both
        signatures, gray and RGB images, tiny ones too."""
        by_input, _, _ = served_by_loader
        session_outputs, session_errors = by_input["session"]
        eager_outputs, _ = by_input["eager"]
        checked = set()
        for input_key, images in inputs.items():
            if input_key.split("_")[0] != key or "wrong" in input_key:
                continue
            if LARGE in input_key:
                continue
            assert input_key not in session_errors, session_errors[input_key]
            check_session_matches_eager(
                session_outputs[input_key], eager_outputs[input_key], input_key
            )
            checked.add((images.dtype.name, images.shape[-1]))
        expected = {("uint8", 1), ("float32", 1)}
        if key != "grayx4":
            expected |= {("uint8", 3), ("float32", 3)}
        assert checked == expected

    @pytest.mark.parametrize("key", ["gray", "rgb"])
    def test_warmup_requests_run_through_the_session_loader(
        self, served_by_loader, key
    ):
        _, summary, results = served_by_loader
        check_warmup_requests(summary, results, key)

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="run once; the session loader tests cover every backend",
    )
    def test_documented_saved_model_cli_run(
        self, exports, inputs, served, tmp_path
    ):
        """The `saved_model_cli run` command of `docs/serving.md`, which
        loads into a `Session` as TF Serving does, on the gray export; a
        server running as another user can read the version folder."""
        mode = os.stat(exports["gray"]).st_mode
        assert mode & 0o005 == 0o005, oct(mode)
        outputs, _, _ = served
        (command,) = [b for b in doc_blocks("bash") if "cli run" in b]
        command = command.replace("savedmodels/denoise/1", str(exports["gray"]))
        assert str(exports["gray"]) in command
        np.save(tmp_path / "noisy.npy", inputs["gray_33x21_uint8"])
        environment = dict(os.environ)
        environment["PATH"] = os.pathsep.join(
            [os.path.dirname(saved_model_cli()), environment["PATH"]]
        )
        result = subprocess.run(
            ["bash", "-e", "-c", command],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        output = np.load(tmp_path / "restored" / "output_images.npy")
        check_session_matches_eager(
            output, outputs["gray_33x21_uint8"], "saved_model_cli run"
        )

    def test_wrong_rank_and_dtype_are_readable_errors(self, exports):
        import tensorflow as tf

        serve = tf.saved_model.load(str(exports["gray"])).signatures[
            "serving_default"
        ]
        for shape in [(9, 7, 1), (9, 7), (1, 1, 9, 7, 1)]:
            with pytest.raises(
                tf.errors.InvalidArgumentError,
                match=re.escape(
                    "must have shape (batch, height, width, 1 or 3)"
                ),
            ):
                serve(images=tf.zeros(shape, tf.uint8))
        with pytest.raises(
            (TypeError, ValueError, tf.errors.InvalidArgumentError),
            match="expected to be a uint8 tensor but is a float tensor",
        ):
            serve(images=tf.zeros((1, 9, 7, 1), tf.float32))

    def test_saved_model_cli_shows_the_documented_signatures(self, exports):
        (documented,) = doc_blocks("text")
        result = subprocess.run(
            [saved_model_cli(), "show", "--all", "--dir", str(exports["gray"])],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert documented.strip() in result.stdout

    def test_documented_request_gives_the_documented_response_shape(
        self, inputs, served
    ):
        outputs, errors, _ = served
        assert "doc_request" not in errors, errors.get("doc_request")
        _, response = documented_request_and_response()
        documented = np.asarray(response["predictions"])
        assert outputs["doc_request"].shape == documented.shape
        assert documented.shape == inputs["doc_request"].shape

    def test_documented_python_client(self, exports, tmp_path, monkeypatch):
        """Runs the documented client against a stand-in REST server that
        answers `:predict` as TF Serving does: the SavedModel loaded into
        a session (`tests/serving_session.py`)."""
        import tensorflow as tf
        from PIL import Image

        model = SessionModel(str(exports["gray"]))
        requested = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                requested.append(self.path)
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                images = np.asarray(body["instances"], "uint8")
                outputs = model.run("serving_default", {"images": images})
                outputs = outputs["output_images"]
                answer = json.dumps({"predictions": outputs.tolist()})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            client = [b for b in doc_blocks("python") if "urllib" in b][0]
            client = client.replace(
                "localhost:8501", f"127.0.0.1:{server.server_port}"
            )
            monkeypatch.chdir(tmp_path)
            noisy = random_images(1, 33, 21, batch=1)[0, :, :, 0]
            Image.fromarray(noisy).save("noisy.png")
            exec(compile(client, "docs/serving.md client", "exec"), {})
        finally:
            server.shutdown()
            server.server_close()
            model.close()
        assert requested == ["/v1/models/denoise:predict"]
        restored = np.asarray(Image.open(tmp_path / "restored.png"))
        serve = tf.saved_model.load(str(exports["gray"])).signatures[
            "serving_default"
        ]
        expected = serve(images=noisy[None, :, :, None])["output_images"]
        check_session_matches_eager(
            restored, expected.numpy()[0, :, :, 0], "documented client"
        )


class PaddingTest:
    @pytest.mark.parametrize("mode", ["reflect", "edge"])
    def test_padding_indices_match_numpy_pad(self, mode):
        from keras_rbdn.export import _padding_indices

        for size in (1, 2, 3, 7, 16):
            padded = -(-size // MULTIPLE) * MULTIPLE + MULTIPLE
            indices = keras.ops.convert_to_numpy(
                _padding_indices(size, padded, mode)
            )
            expected = np.pad(np.arange(size), (0, padded - size), mode)
            np.testing.assert_array_equal(indices, expected)


class OnnxTest:
    def test_onnx_export_matches_keras(self, models, reference, tmp_path):
        pytest.importorskip("tf2onnx")
        onnxruntime = pytest.importorskip("onnxruntime")
        path = export(models["gray"], tmp_path, name="denoise", format="onnx")
        assert path == os.path.join(str(tmp_path), "denoise.onnx")
        session = onnxruntime.InferenceSession(
            path, providers=["CPUExecutionProvider"]
        )
        (onnx_input,) = session.get_inputs()
        for height, width in SIZES:
            images = random_images(1, height, width).astype("float32") / 255
            (output,) = session.run(None, {onnx_input.name: images})
            expected = reference("gray", images)
            assert output.shape == images.shape
            assert np.max(np.abs(output - expected)) <= 1e-4


class ExportArgumentsTest:
    @pytest.fixture(scope="class")
    def model(self):
        return keras_rbdn.build(branches=1, task="denoise", c=2, D=1, K=3)

    @pytest.mark.parametrize(
        "arguments, message",
        [
            ({"format": "tflite"}, "format='tflite'"),
            ({"version": 0}, "version=0"),
            ({"version": "1"}, "version='1'"),
            ({"pad_mode": "wrap"}, "pad_mode='wrap'"),
            ({"pad_multiple": 0}, "pad_multiple=0"),
            ({"name": "a/b"}, "name='a/b'"),
        ],
    )
    def test_bad_arguments(self, model, tmp_path, arguments, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            export(model, tmp_path, **arguments)

    def test_not_a_model(self, tmp_path):
        with pytest.raises(ValueError, match="Received: model_or_name=3"):
            export(3, tmp_path)

    def test_missing_serving_api_is_a_clear_error(
        self, model, tmp_path, monkeypatch
    ):
        # As if `tensorflow-serving-api` were not installed.
        monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
        with pytest.raises(
            ImportError, match="pip install tensorflow-serving-api"
        ):
            export(model, tmp_path)
        assert os.listdir(tmp_path) == []

    def test_existing_version_needs_overwrite(self, model, tmp_path):
        os.makedirs(tmp_path / "rbdn" / "1")
        with pytest.raises(ValueError, match="overwrite=True"):
            export(model, tmp_path)


def shipped_savedmodels():
    """`{name: savedmodels/<name>/<version>}`, the highest version of each
    model folder in the repository."""
    base = os.path.join(ROOT, "savedmodels")
    found = {}
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        folder = os.path.join(base, name)
        versions = os.listdir(folder) if os.path.isdir(folder) else []
        versions = sorted(int(v) for v in versions if v.isdigit())
        if versions:
            found[name] = os.path.join(folder, str(versions[-1]))
    return found


# The SavedModels are fixed TensorFlow graphs, checked once; that the
# shipped Keras models compute the same on every backend is
# `shipped_weights_test`'s.
@pytest.mark.backend_independent
class ShippedSavedModelTest:
    """Every SavedModel under `savedmodels/`, in one fresh process, through
    TF Serving's session loader (the fresh exports above check it against
    `tf.saved_model.load`): stock ops, any size, the same pixels as the
    shipped Keras model, and warm-up requests that run."""

    def test_every_shipped_savedmodel(self, tmp_path):
        available = keras_rbdn.presets.available()
        directories = {
            name: directory
            for name, directory in shipped_savedmodels().items()
            if name in available
        }
        if not directories:
            pytest.skip("no savedmodels/ with shipped weights")
        # Every model takes gray and RGB images; uint8 at two sizes that
        # need padding, and float32 at the small one. (The fresh exports
        # above take the large size.)
        arrays = {
            f"{h}x{w}x{channels}": random_images(channels, h, w, batch=1)
            for h, w in SHIPPED_SIZES
            for channels in (1, 3)
        }
        small = "{}x{}".format(*SHIPPED_SIZES[0])
        for channels in (1, 3):
            images = arrays[f"{small}x{channels}"]
            arrays[f"{small}x{channels}_float32"] = images / np.float32(255)
        calls = [
            [name, signature_of(images), key, "session"]
            for name in directories
            for key, images in arrays.items()
        ]
        by_loader, summary, results = run_client(
            tmp_path, directories, arrays, calls, loaders=["session"]
        )
        assert summary["imported"] == []
        outputs, errors = by_loader["session"]
        assert errors == {}
        assert len(outputs) == len(arrays) * len(directories)
        for name in directories:
            assert summary["ops"][name]["unregistered"] == [], name
            check_warmup_requests(summary, results, name, ["session"])
            model = keras_rbdn.load(name)
            multiple = 2 ** (find_rbdn(model).branches + 1)
            # The warm-up requests are smooth ramps, whose pooling windows
            # tie everywhere: `check_warmup_requests` only runs them.
            for key, images in arrays.items():
                if images.dtype == np.uint8:
                    images = images.astype("float32") / 255.0
                expected = keras_reference(model, images, multiple=multiple)
                check_close_to_keras(outputs[name, key], expected, (name, key))


def signature_of(images):
    """The signature that takes `images`: by their dtype."""
    return "serving_default" if images.dtype == np.uint8 else "serving_float32"


def check_close_to_keras(output, expected, label):
    """A serving output against the Keras model's float32 `expected`.

    The serving graph's kernels round differently from the backend's.
    Where two values of a pooling window nearly tie, that can flip a
    switch and move a small patch of pixels by a few levels (seen: one
    patch of 3-12 pixels in 154,401 on random images). Everywhere else
    only the uint8 rounding differs.
    """
    assert output.shape == expected.shape, label
    if output.dtype == np.uint8:
        difference = np.abs(output.astype(int) - to_uint8(expected))
    else:
        difference = np.abs(output - expected) * 255.0
    assert np.mean(difference > 1) <= 5e-4, label
    assert difference.mean() < 0.01, label


@pytest.mark.backend_independent
class ModelsConfigTest:
    def test_models_config_serves_every_shipped_model(self):
        """`savedmodels/models.config`, as documented, is a TF Serving
        `ModelServerConfig` naming every shipped SavedModel at the path the
        documented `docker run` mounts it."""
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        with open(os.path.join(ROOT, "savedmodels", "models.config")) as file:
            text = file.read()
        assert doc_blocks("textproto") == [text]
        config = text_format.Parse(
            text, model_server_config_pb2.ModelServerConfig()
        )
        served = {c.name: c for c in config.model_config_list.config}
        assert sorted(served) == sorted(shipped_savedmodels())
        for name, model_config in served.items():
            assert model_config.base_path == f"/models/{name}"
            assert model_config.model_platform == "tensorflow"
        # The documented commands, here and in the README.
        commands = [
            block
            for path in (SERVING_DOC, os.path.join(ROOT, "README.md"))
            for block in doc_blocks("bash", path)
            if "models.config" in block
        ]
        assert len(commands) == 2
        for command in commands:
            assert "source=$PWD/savedmodels,target=/models " in command
            assert "--model_config_file=/models/models.config" in command


class ExportByNameTest:
    def test_missing_shipped_weights_are_a_clear_error(self, tmp_path):
        missing = [
            name
            for name in keras_rbdn.presets.PRESETS
            if name not in keras_rbdn.presets.available()
        ]
        if not missing:
            pytest.skip("every shipped model has its weights")
        with pytest.raises(ValueError, match="not included"):
            export(missing[0], tmp_path)
