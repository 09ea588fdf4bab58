"""Export for serving: TF Serving SavedModels and ONNX files.

A SavedModel written by `export` holds the whole image -> image model in
one graph of stock TensorFlow ops (no `PyFunc`, no custom ops), so the
stock `tensorflow/serving` binary loads it as it is: a client sends pixels
of any size and gets pixels of the same size back. The graph:

1. converts uint8 0-255 to float32 0-1 (`serving_default` only);
2. checks the rank and the channel count (a readable error, not a crash
   deep inside);
3. pads height and width up to a multiple of 2^(branches + 1) with
   reflected (or repeated edge) pixels, so every pooling level sees whole
   2x2 windows, whatever the image size, tiny images included;
4. runs the Keras model (its own color conversion / Lab decoding inside)
   with the channel rule of `keras_rbdn.channels`: a gray model takes gray
   and RGB images (RGB in the opponent color space by default), an RGB
   model takes RGB and gray images; optionally averaged over flips and
   rotations (`ensemble`, `keras_rbdn.self_ensemble`);
5. crops back to the input size, clips to [0, 1] and converts back to
   uint8 (`serving_default` only).

The layout is TF Serving's, `<path>/<name>/<version>/saved_model.pb`, and
the signatures are:

- `serving_default`: `images`, uint8 `(batch, height, width, channels_in)`
  -> `output_images`, uint8 `(batch, height, width, channels_out)`.
- `serving_float32`: the same with float32 pixels in [0, 1].

The SavedModel saves the variables that the signatures read, so that it
runs the same through TensorFlow's two loaders: `tf.saved_model.load`
(the object graph) and the session loader of TF Serving and
`saved_model_cli run`, which restores the variables with the saver's
restore op into the graph the signatures run in. Its
`assets.extra/tf_serving_warmup_requests` holds TF Serving warm-up
requests (`keras_rbdn.warmup`).

The padding, model, cropping and clipping are `keras.ops` (one
implementation for the SavedModel, on TensorFlow or through jax2tf, and
for ONNX); TensorFlow itself is imported only to write the SavedModel and
its checks.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import keras
from keras import ops

from keras_rbdn.backend import portable_forms
from keras_rbdn.channels import COLOR_SPACES
from keras_rbdn.channels import accepted_channels
from keras_rbdn.channels import run_on_channels
from keras_rbdn.checks import check_choice
from keras_rbdn.inference import find_rbdn
from keras_rbdn.self_ensemble import check_ensemble
from keras_rbdn.self_ensemble import self_ensemble
from keras_rbdn.warmup import serving_api
from keras_rbdn.warmup import write_warmup_requests

FORMATS = ("savedmodel", "onnx")
PAD_MODES = ("reflect", "edge", None)
INPUT_NAME = "images"
OUTPUT_NAME = "output_images"
SIGNATURE_DTYPES = {"serving_default": "uint8", "serving_float32": "float32"}
_COLOR_NAMES = {1: "gray", 3: "RGB"}


def _channel_text(channels):
    label = _COLOR_NAMES.get(channels)
    suffix = f" ({label})" if label else ""
    plural = "" if channels == 1 else "s"
    return f"{channels} channel{plural}{suffix}"


def _channels_text(accepted):
    """`1 channel (gray)` or `1 channel (gray) or 3 channels (RGB)`."""
    return " or ".join(_channel_text(channels) for channels in accepted)


def _resolve_model(model_or_name):
    """A Keras model and its default export name."""
    if isinstance(model_or_name, str):
        from keras_rbdn.presets import load

        name = os.path.basename(model_or_name)
        if name.endswith(".keras"):
            name = name[: -len(".keras")]
        return load(model_or_name), name
    if not isinstance(model_or_name, keras.Model):
        raise ValueError(
            "`model_or_name` must be a Keras model or the name of a shipped "
            f"model. Received: model_or_name={model_or_name!r} of type "
            f"{type(model_or_name).__name__}"
        )
    return model_or_name, model_or_name.name


def _image_channels(model):
    """Channels in and out of an image -> image model."""
    input_shape = tuple(model.inputs[0].shape)
    output_shape = tuple(model.outputs[0].shape)
    if len(input_shape) != 4 or len(output_shape) != 4:
        raise ValueError(
            "The model must map images (batch, height, width, channels) to "
            f"images. Received: input shape {input_shape}, output shape "
            f"{output_shape}"
        )
    if input_shape[-1] is None or output_shape[-1] is None:
        raise ValueError(
            "The model's input and output channels must be known. Received: "
            f"input shape {input_shape}, output shape {output_shape}"
        )
    return input_shape[-1], output_shape[-1]


def _pad_multiple(model, pad_mode, pad_multiple):
    check_choice("pad_mode", pad_mode, PAD_MODES)
    if pad_mode is None:
        return 1
    if pad_multiple is None:
        network = find_rbdn(model)
        if network is None:
            raise ValueError(
                "Could not find the RBDN's `branches` in the model to pad "
                "to a multiple of 2^(branches + 1); pass `pad_multiple`. "
                f"Received: pad_multiple={pad_multiple!r}"
            )
        return 2 ** (network.branches + 1)
    if isinstance(pad_multiple, bool) or not isinstance(pad_multiple, int):
        raise ValueError(
            "`pad_multiple` must be a positive integer. Received: "
            f"pad_multiple={pad_multiple!r}"
        )
    if pad_multiple < 1:
        raise ValueError(
            "`pad_multiple` must be a positive integer. Received: "
            f"pad_multiple={pad_multiple!r}"
        )
    return pad_multiple


def _padding_indices(size, padded_size, pad_mode):
    """Source index of each row (or column) of the padded image."""
    index = ops.arange(padded_size, dtype="int32")
    size = ops.cast(size, "int32")
    if pad_mode == "edge":
        return ops.minimum(index, size - 1)
    # Reflection without repeating the border pixel, folded as often as
    # needed, so that pads larger than the image (tiny images) work too.
    period = ops.maximum(2 * (size - 1), 1)
    folded = ops.mod(index, period)
    reflected = ops.where(ops.less(folded, size), folded, period - folded)
    return ops.where(ops.greater(size, 1), reflected, 0)


class _ServingModel(keras.Model):
    """Pads to a multiple, runs `model`, crops back and clips to [0, 1].

    Written with `keras.ops`, so that one implementation serves the
    SavedModel (TensorFlow, or JAX through jax2tf) and the ONNX export.
    Padding to a multiple of 2^(branches + 1) also keeps every pooling
    level even-sized, and the flips and rotations of `ensemble` keep it.
    Images whose channels differ from the model's go through
    `channels.run_on_channels` (traced once per channel count).
    """

    def __init__(
        self, model, multiple, pad_mode, color_space, ensemble, **kwargs
    ):
        super().__init__(**kwargs)
        self.image_model = model
        self.multiple = multiple
        self.pad_mode = pad_mode
        self.color_space = color_space
        self.ensemble = ensemble
        self.model_channels, self.output_channels = _image_channels(model)
        self.built = model.built  # No weights of its own.

    def _run_model(self, images):
        return self_ensemble(self._network, images, self.ensemble)

    def _network(self, images):
        if keras.backend.backend() != "tensorflow":
            return self.image_model(images, training=False)
        # One graph function called from every place that runs the model
        # (each symmetry of the ensemble, each plane of an RGB image),
        # traced once instead of once per call.
        if not hasattr(self, "_network_function"):
            import tensorflow as tf

            self._network_function = tf.function(
                lambda x: self.image_model(x, training=False),
                input_signature=[
                    tf.TensorSpec(
                        [None, None, None, self.model_channels], tf.float32
                    )
                ],
                autograph=False,
            )
        return self._network_function(images)

    def call(self, images):
        height, width = ops.shape(images)[1], ops.shape(images)[2]
        if self.pad_mode is not None and self.multiple > 1:
            # Positive operands only: ONNX's integer division truncates.
            multiple = self.multiple
            padded_height = (height + multiple - 1) // multiple * multiple
            padded_width = (width + multiple - 1) // multiple * multiple
            rows = _padding_indices(height, padded_height, self.pad_mode)
            cols = _padding_indices(width, padded_width, self.pad_mode)
            images = ops.take(ops.take(images, rows, axis=1), cols, axis=2)
        outputs = run_on_channels(
            self._run_model,
            images,
            self.model_channels,
            self.output_channels,
            color_space=self.color_space,
        )
        return ops.clip(outputs[:, :height, :width, :], 0.0, 1.0)


def _serving_functions(tf, networks):
    """The uint8 and float32 `tf.function`s around the float32 networks.

    `networks` maps each accepted channel count to the network traced for
    it; the graph picks one by the input's channels (`tf.cond`). The input
    specs leave rank and channels open and the graph checks them: a loaded
    signature (or TF Serving) does not reliably enforce the static shape
    of its inputs, and a check against an open shape cannot be folded
    away.
    """
    accepted = sorted(networks)
    counts = " or ".join(str(channels) for channels in accepted)
    message = (
        f"Input '{INPUT_NAME}' must have shape (batch, height, width, "
        f"{counts}): a batch of images with {_channels_text(accepted)}."
    )

    def run_network(images, channels):
        images = tf.ensure_shape(images, [None, None, None, channels])
        return networks[channels](images)

    def run(images):
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_equal(tf.size(shape), 4, message=message),
        ]
        with tf.control_dependencies(checks):
            channels = shape[tf.size(shape) - 1]
        checks.append(
            tf.debugging.Assert(
                tf.reduce_any(tf.equal(channels, accepted)), [message]
            )
        )
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        if len(accepted) == 1:
            return run_network(images, accepted[0])
        first, second = accepted
        return tf.cond(
            tf.equal(channels, first),
            lambda: run_network(images, first),
            lambda: run_network(images, second),
        )

    float_spec = tf.TensorSpec(None, tf.float32, name=INPUT_NAME)
    uint8_spec = tf.TensorSpec(None, tf.uint8, name=INPUT_NAME)

    @tf.function(input_signature=[uint8_spec], autograph=False)
    def serve_uint8(images):
        outputs = run(tf.cast(images, tf.float32) / 255.0)
        outputs = tf.cast(tf.floor(outputs * 255.0 + 0.5), tf.uint8)
        return {OUTPUT_NAME: tf.identity(outputs, name=OUTPUT_NAME)}

    @tf.function(input_signature=[float_spec], autograph=False)
    def serve_float32(images):
        outputs = run(images)
        return {OUTPUT_NAME: tf.identity(outputs, name=OUTPUT_NAME)}

    return serve_uint8, serve_float32


def _write_savedmodel(serving_model, directory):
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(serving_model)
    endpoint_arguments = {}
    if keras.backend.backend() == "jax":
        # Serving needs no gradients; without them jax2tf writes no custom
        # gradient functions that TensorFlow warns about on loading.
        endpoint_arguments["jax2tf_kwargs"] = {"with_gradient": False}
    networks = {}
    for channels in accepted_channels(
        serving_model.model_channels, serving_model.output_channels
    ):
        networks[channels] = archive.add_endpoint(
            f"network_{channels}",
            serving_model.__call__,
            input_signature=[
                tf.TensorSpec(
                    [None, None, None, channels], tf.float32, name=INPUT_NAME
                )
            ],
            **endpoint_arguments,
        )
    serve_uint8, serve_float32 = _serving_functions(tf, networks)
    signatures = {
        "serving_default": serve_uint8.get_concrete_function(),
        "serving_float32": serve_float32.get_concrete_function(),
    }
    root = tf.Module()
    # The variables that the signatures read, and only those: TF Serving's
    # session loader restores each saved variable into the graph node that
    # the signatures read from. On TensorFlow these are the `tf.Variable`s
    # inside the Keras variables; saving the Keras variables instead would
    # restore copies that no signature reads.
    root.captured_variables = _captured_variables(signatures.values())
    root.serving_default = serve_uint8
    root.serving_float32 = serve_float32
    # Serving computes no gradients: without the custom gradients of the
    # pooling and unpooling switches the export traces each network call
    # once instead of again for its gradient.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(root, directory, signatures=signatures, options=options)
    write_warmup_requests(directory, INPUT_NAME, SIGNATURE_DTYPES)


def _captured_variables(functions):
    """The variables that the concrete `functions` read, each once."""
    captured = {}
    for function in functions:
        for variable in function.variables:
            captured.setdefault(id(variable), variable)
    return list(captured.values())


def _export_in_tensorflow_process(model, name, path, **options):
    """Runs `export` under the TensorFlow backend in a child process."""
    with tempfile.TemporaryDirectory() as scratch:
        model_path = os.path.join(scratch, "model.keras")
        model.save(model_path)
        code = (
            "import keras, keras_rbdn\n"
            f"model = keras.saving.load_model({model_path!r})\n"
            f"print(keras_rbdn.export(model, {os.fspath(path)!r}, "
            f"name={name!r}, **{options!r}))\n"
        )
        environment = dict(os.environ, KERAS_BACKEND="tensorflow")
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=environment,
        )
    if result.returncode != 0:
        raise RuntimeError(
            "Exporting through a TensorFlow-backend process failed:\n"
            f"{result.stderr}"
        )
    return result.stdout.strip().splitlines()[-1]


def export(
    model_or_name,
    path,
    version=1,
    name=None,
    format="savedmodel",
    pad_mode="reflect",
    pad_multiple=None,
    color_space="opponent",
    ensemble=1,
    overwrite=False,
    verbose=False,
):
    """Exports an image -> image model for serving, pixels in, pixels out.

    `format="savedmodel"` writes a SavedModel in TF Serving's layout,
    `<path>/<name>/<version>/`, that needs neither Keras nor keras-rbdn to
    run: every pre- and post-processing step is a stock TensorFlow op in
    the graph. It loads with `tf.saved_model.load` and with the session
    loader of TF Serving, and holds warm-up requests for TF Serving (a
    small gray and a small RGB image per signature, in
    `assets.extra/tf_serving_warmup_requests`). Its signatures take a
    batch of images of any height and width and return images of the same
    size:

    - `serving_default`: input `images`, uint8 0-255,
      `(batch, height, width, channels_in)`; output `output_images`,
      uint8 0-255, `(batch, height, width, channels_out)`.
    - `serving_float32`: the same with float32 pixels in [0, 1].

    A gray model (a denoiser or relighter) takes gray images and returns
    gray ones, and RGB images and returns RGB (each plane of the
    `color_space` through the gray network); a colorizer (an RGB model)
    takes RGB images and gray ones (the gray channel repeated). Rank and
    channels are left open in the signatures so that a wrong rank or
    channel count fails inside the graph with a readable message (`Input
    'images' must have shape (batch, height, width, 1 or 3): a batch of
    images with 1 channel (gray) or 3 channels (RGB).`) on every runtime,
    TF Serving included. Inside, the images are padded to a multiple of
    2^(branches + 1) (`pad_mode`) and cropped back after the network, and
    the output is clipped to [0, 1].

    `format="onnx"` writes `<path>/<name>.onnx` (or `path` itself when it
    ends in `.onnx`; `version` is not used) with Keras's
    ONNX export (`model.export(format="onnx")`, which needs `tf2onnx` and
    `onnx`, the `onnx` extra): the `serving_float32` computation (padding,
    model, cropping, clipping; no checks), float32 pixels in [0, 1] of any
    size in and out, with the model's own channel count.

    Backends: the SavedModel export runs in-process on TensorFlow and on
    JAX (through `jax2tf`, with symbolic batch, height and width; the graph
    then holds the network as one `XlaCallModule` op, a stock TensorFlow
    op compiled for the CPU). Keras cannot export SavedModels from PyTorch
    without `torch_xla`, so on the torch backend (and for ONNX on JAX and
    torch) the model is saved to a temporary `.keras` file and exported by
    a child Python process that runs the TensorFlow backend: same weights,
    same graph as a TensorFlow export.

    Args:
        model_or_name: A Keras model that maps float32 images in [0, 1]
            `(batch, height, width, channels_in)` to images in [0, 1]
            (such as `keras_rbdn.image_model(network, task)`, or an RBDN
            for denoising or relighting), or the name of a shipped model
            (loaded with `keras_rbdn.load`).
        path: str or path-like. Base directory (TF Serving's model base
            path); the export goes to `<path>/<name>/<version>/`.
        version: int. Positive version number, the folder TF Serving
            serves the highest of. Defaults to `1`.
        name: str or `None`. Model name, the folder under `path` and the
            `MODEL_NAME` of TF Serving. `None` uses the shipped model's name
            or the Keras model's `name`. Defaults to `None`.
        format: str. `"savedmodel"` or `"onnx"`. Defaults to
            `"savedmodel"`.
        pad_mode: str or `None`. How the SavedModel pads images to a
            multiple of `pad_multiple`: `"reflect"` (mirror without
            repeating the border, folded again for pads larger than the
            image), `"edge"` (repeat the border pixels) or `None` (no
            padding: the network's own ceil-mode pooling). Defaults to
            `"reflect"`.
        pad_multiple: int or `None`. Multiple to pad height and width to;
            `None` means 2^(branches + 1) of the RBDN inside the model.
            Defaults to `None`.
        color_space: str. How a gray model processes RGB images:
            `"opponent"` (orthonormal opponent color space) or
            `"per_channel"` (R, G and B). Defaults to `"opponent"`.
        ensemble: int. 1, 2, 4 or 8: how many flips and rotations of each
            image the graph runs the network on and averages
            (`keras_rbdn.self_ensemble`); the serving time grows by that
            factor. Defaults to `1`.
        overwrite: bool. Whether to replace an existing export of the same
            version. Defaults to `False`.
        verbose: bool. Whether to print where the export went. Defaults to
            `False`.

    Returns:
        The path of the written version folder (SavedModel) or ONNX file,
        as a string.

    Example:

    >>> model = keras_rbdn.build(branches=1, task="denoise", c=4, D=1)
    >>> keras_rbdn.export(model, "/tmp/models", name="denoise")
    '/tmp/models/denoise/1'
    """
    check_choice("format", format, FORMATS)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(
            f"`version` must be a positive integer. Received: "
            f"version={version!r}"
        )
    if version < 1:
        raise ValueError(
            f"`version` must be a positive integer. Received: "
            f"version={version!r}"
        )
    check_choice("color_space", color_space, COLOR_SPACES)
    check_ensemble(ensemble)
    if format == "savedmodel":
        serving_api()  # A clear error before any work.
    model, default_name = _resolve_model(model_or_name)
    name = name or default_name
    if not name or os.sep in name or name in (".", ".."):
        raise ValueError(
            f"`name` must be a plain folder name. Received: name={name!r}"
        )
    multiple = _pad_multiple(model, pad_mode, pad_multiple)
    _image_channels(model)  # A clear error before any work.
    path = os.fspath(path)
    version_directory = os.path.join(path, name, str(version))
    if format == "onnx":
        target = path if path.endswith(".onnx") else f"{path}/{name}.onnx"
    else:
        target = version_directory
    if os.path.exists(target) and not overwrite:
        raise ValueError(
            f"{target} already exists; pass `overwrite=True` to replace it "
            f"or choose another version. Received: version={version}"
        )

    backend = keras.backend.backend()
    native = backend == "tensorflow" or (
        backend == "jax" and format == "savedmodel"
    )
    if not native:
        return _export_in_tensorflow_process(
            model,
            name,
            path,
            version=version,
            format=format,
            pad_mode=pad_mode,
            pad_multiple=pad_multiple,
            color_space=color_space,
            ensemble=ensemble,
            overwrite=overwrite,
        )

    serving_model = _ServingModel(
        model,
        multiple,
        pad_mode,
        color_space,
        ensemble,
        name=f"{name}_serving",
    )
    # Traced for any device (TF Serving or an ONNX runtime may run it on a
    # GPU), and with stock ops only.
    with portable_forms():
        return _write(serving_model, format, target, version_directory, verbose)


def _write(serving_model, format, target, version_directory, verbose):
    """Writes the ONNX file or SavedModel version folder; returns its path."""
    if format == "onnx":
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        serving_model.export(
            target,
            format="onnx",
            verbose=verbose,
            input_signature=[
                keras.InputSpec(
                    shape=(None, None, None, serving_model.model_channels),
                    dtype="float32",
                    name=INPUT_NAME,
                )
            ],
        )
        return target

    model_directory = os.path.dirname(version_directory)
    os.makedirs(model_directory, exist_ok=True)
    # Write next to the target and move it in at the end, so that a
    # server watching the folder never loads a half-written version.
    version = os.path.basename(version_directory)
    staging = tempfile.mkdtemp(prefix=f".{version}-", dir=model_directory)
    try:
        _write_savedmodel(serving_model, staging)
        # `mkdtemp` makes the folder private; a server running as another
        # user must read it.
        os.chmod(staging, 0o755)
        if os.path.exists(version_directory):
            shutil.rmtree(version_directory)
        os.replace(staging, version_directory)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    if verbose:
        print(f"Exported SavedModel to {version_directory}")
    return version_directory
