"""Task specifications: what the network reads, predicts and is trained on.

One table (`TASKS`) describes every task; training, evaluation, the command
line and the export all read it instead of branching on task names.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What one image-to-image task asks of the network.

    Args:
        name: str. Task name, as passed to `keras_rbdn.build`.
        description: str. One line for help texts and errors.
        input_channels: int. Channels the network reads by default.
        output_channels: int. Channels the network predicts by default.
        same_channels: bool. Whether output channels always equal input
            channels (same-shape regression such as denoising), so that a
            `channels` override sets both.
        loss: str. Keras loss identifier used to train the network.
    """

    name: str
    description: str
    input_channels: int
    output_channels: int
    same_channels: bool
    loss: str


TASKS = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="denoise",
            description="blind additive white Gaussian noise removal",
            input_channels=1,
            output_channels=1,
            same_channels=True,
            loss="mean_squared_error",
        ),
        TaskSpec(
            name="relight",
            description="face relighting to canonical frontal lighting",
            input_channels=1,
            output_channels=1,
            same_channels=True,
            loss="mean_squared_error",
        ),
    )
}


def get_task(name):
    """Returns the `TaskSpec` called `name`, or raises a `ValueError`."""
    if name not in TASKS:
        raise ValueError(
            f"Unknown task. Supported tasks: {sorted(TASKS)}. "
            f"Received: task={name!r}"
        )
    return TASKS[name]
