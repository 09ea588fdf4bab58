"""Export every shipped model to `savedmodels/` for TF Serving.

Run (from the repository root):

    python recipes/export_savedmodels.py

It always runs the TensorFlow backend: its graphs are plain TensorFlow ops
that TF Serving runs on any device, where a JAX export holds the network
as one `XlaCallModule` op compiled for the exporting platform.

What it does: for each shipped model whose weights are in the package
(`keras_rbdn.presets.available()`), load it (`keras_rbdn.load(name)`, the
end-to-end pixels-in, pixels-out model), export it with
`keras_rbdn.export` to `savedmodels/<name>/<version>/`, then reload the
SavedModel with TensorFlow alone and check it against the Keras model on
an odd-sized image. Last, it writes `<output>/models.config`, TF Serving's
model config file for every model folder there, each served from
`/models/<name>` (where docs/serving.md mounts `savedmodels/`).
`--readme-example` also prints the response of the
`denoise` model to the REST request of `docs/serving.md`, to paste into
its response block.
"""

import argparse
import json
import os
import re

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_rbdn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=os.path.join(ROOT, "savedmodels"))
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument(
        "--models",
        nargs="*",
        help="shipped model names (default: every shipped model)",
    )
    parser.add_argument(
        "--readme-example",
        action="store_true",
        help="print the denoise model's answer to the REST request of "
        "docs/serving.md",
    )
    return parser.parse_args(argv)


def check(model, directory, seed=0):
    """Max abs difference, float32 signature vs the Keras model, 37x29."""
    channels = model.inputs[0].shape[-1]
    rng = np.random.default_rng(seed)
    # 37 x 29 pads to 48 x 32 with 16-pixel multiples (3 branches); the
    # Keras model runs on the same reflected padding.
    images = rng.random((1, 37, 29, channels)).astype("float32")
    served = tf.saved_model.load(directory).signatures["serving_float32"]
    output = served(images=tf.constant(images))["output_images"].numpy()
    padded = np.pad(images, [(0, 0), (0, 11), (0, 3), (0, 0)], "reflect")
    expected = keras.ops.convert_to_numpy(model(padded, training=False))
    expected = np.clip(expected[:, :37, :29], 0.0, 1.0)
    return float(np.max(np.abs(output - expected)))


def readme_example(directory):
    """The REST request of docs/serving.md through the SavedModel, as JSON."""
    with open(os.path.join(ROOT, "docs", "serving.md")) as file:
        text = file.read()
    request = json.loads(re.findall(r"```json\n(.*?)```", text, re.S)[0])
    served = tf.saved_model.load(directory).signatures["serving_default"]
    images = tf.constant(np.asarray(request["instances"], "uint8"))
    output = served(images=images)["output_images"].numpy()
    return json.dumps({"predictions": output.tolist()})


def write_models_config(output):
    """TF Serving's `ModelServerConfig`, in text format, for every model
    folder of `output` that holds a numbered version."""
    names = [
        name
        for name in sorted(os.listdir(output))
        if os.path.isdir(os.path.join(output, name))
        and any(v.isdigit() for v in os.listdir(os.path.join(output, name)))
    ]
    lines = ["model_config_list {"]
    for name in names:
        lines += [
            "  config {",
            f'    name: "{name}"',
            f'    base_path: "/models/{name}"',
            '    model_platform: "tensorflow"',
            "  }",
        ]
    path = os.path.join(output, "models.config")
    with open(path, "w") as file:
        file.write("\n".join(lines + ["}"]) + "\n")
    return path


def main(argv=None):
    args = parse_args(argv)
    names = args.models or keras_rbdn.presets.available()
    if not names:
        raise SystemExit(
            "No shipped weights in this install "
            f"({keras_rbdn.presets.WEIGHTS_DIR}); nothing to export."
        )
    for name in names:
        model = keras_rbdn.load(name)
        directory = keras_rbdn.export(
            model,
            args.output,
            version=args.version,
            name=name,
            overwrite=True,
        )
        difference = check(model, directory)
        print(f"{name}: {directory}, max |SavedModel - Keras| {difference:.2e}")
        if difference > 1e-4:
            raise SystemExit(f"{name}: the export does not match Keras")
        if args.readme_example and name == "denoise":
            print("docs/serving.md response:", readme_example(directory))
    print("TF Serving model config:", write_models_config(args.output))


if __name__ == "__main__":
    main()
