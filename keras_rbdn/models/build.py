"""`keras_rbdn.build`: an RBDN configured for a task."""

from keras_rbdn.models.rbdn import RBDN
from keras_rbdn.models.tasks import get_task

# The paper's names for the hyperparameters (Section 3.3), accepted as
# aliases of the readable constructor arguments.
PAPER_ALIASES = {
    "K": "kernel_size",
    "c": "filters",
    "T": "trunk_kernel_size",
    "D": "trunk_depth",
}


def resolve_paper_aliases(overrides):
    """Renames K, c, T, D in `overrides` to the `RBDN` argument names."""
    resolved = dict(overrides)
    for alias, argument in PAPER_ALIASES.items():
        if alias not in resolved:
            continue
        if argument in resolved:
            raise ValueError(
                f"`{alias}` is an alias of `{argument}`; pass only one. "
                f"Received: {alias}={resolved[alias]!r}, "
                f"{argument}={resolved[argument]!r}"
            )
        resolved[argument] = resolved.pop(alias)
    return resolved


def build(branches=3, task="denoise", channels=None, **overrides):
    """Builds an uncompiled RBDN for a task.

    Args:
        branches: int. Number of recursive branches (0 is the base network
            B_0). Defaults to `3`.
        task: str. One of `keras_rbdn.TASKS`: `"denoise"`, `"relight"`
            (same channels in and out), `"colorize_ycbcr"` (Y -> CbCr) or
            `"colorize_lab"` (L -> 261 ab-bin logits). Defaults to
            `"denoise"`.
        channels: int or `None`. For same-shape tasks (`"denoise"`,
            `"relight"`): image channels, 1 for gray or 3 for RGB. `None`
            keeps the task's default (gray). Defaults to `None`.
        **overrides: Any other `RBDN` argument (`kernel_size`, `filters`,
            `trunk_kernel_size`, `trunk_depth`, `upsampling`, `merge`,
            `global_residual`, ...), or the paper's aliases `K`, `c`, `T`,
            `D`.

    Returns:
        An `RBDN` model, ready to compile with the task's loss
        (`keras_rbdn.TASKS[task].loss`).

    Example:

    >>> model = build(branches=3, task="denoise", channels=3, D=5)
    >>> model.compile(optimizer="adam", loss=TASKS["denoise"].loss)
    """
    spec = get_task(task)
    arguments = resolve_paper_aliases(overrides)
    if "branches" in arguments:
        raise ValueError(
            "Pass `branches` once, as build's first argument. "
            f"Received: branches={arguments['branches']!r}"
        )
    input_channels = arguments.pop("input_channels", None)
    output_channels = arguments.pop("output_channels", None)
    if channels is not None:
        if input_channels is not None or output_channels is not None:
            raise ValueError(
                "Pass either `channels` or `input_channels`/"
                f"`output_channels`. Received: channels={channels!r}, "
                f"input_channels={input_channels!r}, "
                f"output_channels={output_channels!r}"
            )
        if not spec.same_channels:
            raise ValueError(
                f"Task {task!r} reads {spec.input_channels} and predicts "
                f"{spec.output_channels} channels; `channels` is only for "
                f"same-shape tasks. Received: channels={channels!r}"
            )
        input_channels = output_channels = channels
    input_channels = input_channels or spec.input_channels
    output_channels = output_channels or (
        input_channels if spec.same_channels else spec.output_channels
    )
    if spec.same_channels and input_channels != output_channels:
        raise ValueError(
            f"Task {task!r} maps an image to an image of the same channels. "
            f"Received: input_channels={input_channels}, "
            f"output_channels={output_channels}"
        )
    return RBDN(
        branches=branches,
        input_channels=input_channels,
        output_channels=output_channels,
        **arguments,
    )
