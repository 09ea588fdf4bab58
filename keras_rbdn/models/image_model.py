"""End-to-end image-to-image models: task pre-processing + network + post."""

import keras

from keras_rbdn.models.tasks import get_task


class _TaskLayer(keras.layers.Layer):
    """Base class of the task's pre- and post-processing layers."""

    def __init__(self, task, **kwargs):
        super().__init__(**kwargs)
        self.task = get_task(task).name

    def get_config(self):
        config = super().get_config()
        config.update({"task": self.task})
        return config


@keras.saving.register_keras_serializable(package="keras_rbdn")
class TaskInput(_TaskLayer):
    """Turns images in [0, 1] into what a task's network reads.

    `denoise`, `relight`: the image itself; `colorize_ycbcr`: the Y of
    BT.601 YCbCr (divided by 255); `colorize_lab`: L / 100.

    Args:
        task: str. A `keras_rbdn.TASKS` name.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(batch_size, height, width, image_channels)`.

    Output shape:
        `(batch_size, height, width, network input channels)`.
    """

    def call(self, inputs):
        return get_task(self.task).to_network_input(inputs, xp=keras.ops)

    def compute_output_shape(self, input_shape):
        spec = get_task(self.task)
        channels = input_shape[-1] if spec.same_channels else 1
        return tuple(input_shape[:-1]) + (channels,)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class TaskOutput(_TaskLayer):
    """Turns a task network's output back into an image in [0, 1].

    `denoise`, `relight`: the output clipped to [0, 1];
    `colorize_ycbcr`: RGB from the input Y and the predicted Cb, Cr;
    `colorize_lab`: RGB from the input L and the annealed mean (T = 0.38)
    of the predicted ab-bin distribution. Always clipped to [0, 1].

    Args:
        task: str. A `keras_rbdn.TASKS` name.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        A list `[network_input, network_output]`.

    Output shape:
        `(batch_size, height, width, image_channels)`.
    """

    def call(self, inputs):
        network_input, network_output = inputs
        return get_task(self.task).to_image(network_input, network_output)

    def compute_output_shape(self, input_shape):
        spec = get_task(self.task)
        network_output_shape = input_shape[1]
        channels = (
            network_output_shape[-1]
            if spec.same_channels
            else spec.image_channels
        )
        return tuple(network_output_shape[:-1]) + (channels,)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            self.compute_output_shape([inputs[0].shape, inputs[1].shape]),
            dtype="float32",
        )


def image_model(network, task, name=None):
    """Wraps a task network into an image-in, image-out Keras model.

    The returned model takes pixels in [0, 1], float32, channels last, of
    any height and width, and returns pixels in [0, 1] of the same size:

    - `denoise`, `relight`: image -> network -> clipped to [0, 1]. The
      image has the network's channels (1 gray, 3 RGB).
    - `colorize_ycbcr`: RGB -> Y (BT.601) -> network predicts Cb, Cr ->
      RGB from Y, Cb, Cr, clipped. Only the luma of the input is used, so
      a gray image may be passed as RGB with three equal channels.
    - `colorize_lab`: RGB -> L / 100 -> network predicts the ab-bin
      logits -> softmax, annealed mean (T = 0.38) -> RGB from L, a, b,
      clipped.

    Everything is written with `keras.ops` (layers `TaskInput` and
    `TaskOutput`), so the model runs on every backend, saves to `.keras`
    and exports to a SavedModel (`model.export(path)` on TensorFlow) as one
    graph: clients send pixels and get pixels.

    Args:
        network: A Keras model mapping the task's network input to its
            output, such as `keras_rbdn.build(task=task)` after training.
        task: str or `TaskSpec`. The task `network` was trained for.
        name: str or `None`. Model name. Defaults to `"<task>_image_model"`.

    Returns:
        A functional `keras.Model` with input `"image"`:
        `(batch_size, height, width, image_channels)` in [0, 1].

    Example:

    >>> network = keras_rbdn.build(branches=1, task="colorize_lab", c=8)
    >>> model = keras_rbdn.image_model(network, "colorize_lab")
    >>> rgb = model.predict(np.random.rand(1, 33, 20, 3), verbose=0)
    >>> rgb.shape
    (1, 33, 20, 3)
    """
    spec = get_task(task)
    network_input_channels = network.input_shape[-1]
    network_output_channels = network.output_shape[-1]
    if spec.same_channels:
        image_channels = network_input_channels
        expected = (network_input_channels, network_input_channels)
    else:
        image_channels = spec.image_channels
        expected = (spec.input_channels, spec.output_channels)
    if (network_input_channels, network_output_channels) != expected:
        raise ValueError(
            f"Task {spec.name!r} needs a network with (input, output) "
            f"channels {expected}. Received: a network with "
            f"{(network_input_channels, network_output_channels)}"
        )
    image = keras.Input((None, None, image_channels), name="image")
    network_input = TaskInput(spec.name, name="task_input")(image)
    network_output = network(network_input)
    output = TaskOutput(spec.name, name="task_output")(
        [network_input, network_output]
    )
    return keras.Model(image, output, name=name or f"{spec.name}_image_model")
