"""Other forms of RBDN's two 9x9 one-channel convolutions, timed.

`conv1` (9x9, 1 -> 64 channels) and `deconv1` (9x9, 64 -> 1) run at full
resolution with one channel on one side, a shape that convolution kernels
handle poorly: on this CPU under JAX they take 28% of RBDN-3's time for 8%
of its multiply-adds (`results/layer_profile_jax_float32_xeon.md`).
This script times the same convolutions in other forms that compute the
same function (each is checked against the plain one first):

- `plain`: one convolution, as the network has it;
- `rows`: the kernel rows as channels. For `deconv1` a 1 x 9 convolution
  to 9 channels and a one-hot 9 x 1 shift-sum (`NarrowConv2D`'s
  TensorFlow path); for `conv1` a one-hot 9 x 1 shift of the image into 9
  channels, then a 1 x 9 convolution from 9 channels;
- `s2d2`, `s2d4`: space-to-depth by 2 or 4 (each block of pixels becomes
  channels), a 5x5 or 3x3 convolution between blocks with the kernel
  rearranged, and depth-to-space back. More multiply-adds (1.2x, 1.8x) in
  a shape convolution kernels like. The layout changes are timed too; the
  `(given)` rows leave out the one on the 64-channel side, which an
  unpooling or pooling working in that layout would not need.

Forward only, batch and size as the speed benchmark's inference. Records
Markdown under `benchmarks/results/`. `benchmarks/gpu_speed.sh` runs it.

    KERAS_BACKEND=jax python benchmarks/conv_forms.py --precision mixed_bfloat16
"""

import argparse
import datetime
import statistics

import keras
import numpy as np
import speed
from keras import ops

from keras_rbdn.backend.conv_forms import block_taps
from keras_rbdn.backend.conv_forms import blocked_kernel
from keras_rbdn.backend.conv_forms import conv_in_blocks
from keras_rbdn.backend.conv_forms import depth_to_space
from keras_rbdn.backend.conv_forms import row_shift_kernel
from keras_rbdn.backend.conv_forms import rows_then_shift
from keras_rbdn.backend.conv_forms import space_to_depth

CHANNELS = 64


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    speed.add_timing_arguments(parser, "conv_forms")
    parser.add_argument(
        "--kernel-size",
        type=int,
        default=9,
        help="odd kernel size: 9 for RBDN's conv1 and deconv1 (default), 3 "
        "for DnCNN's first and last layers",
    )
    return parser.parse_args(argv)


def forms(kernel, direction, constant):
    """`{name: (function of x, input block, output block)}` for one
    convolution: the blocks are 1 for the usual layout, else the block
    size of a space-to-depth layout.

    `constant` turns a NumPy kernel into a tensor of the compute dtype.
    """
    size = kernel.shape[0]
    plain = constant(kernel)
    forms = {"plain": (lambda x: ops.conv(x, plain, padding="same"), 1, 1)}
    shift = row_shift_kernel(size, 1)
    if direction == "down":  # deconv1: 64 channels -> 1, as NarrowConv2D
        shift = constant(shift)
        forms["rows"] = (lambda x: rows_then_shift(x, plain, shift), 1, 1)
    else:  # conv1: 1 channel -> 64
        # The image spread into `size` copies, each shifted by one row.
        spread = constant(np.transpose(shift, (0, 1, 3, 2)))
        column_kernel = constant(
            np.transpose(kernel, (1, 0, 2, 3)).reshape(1, size, size, CHANNELS)
        )
        forms["rows"] = (
            lambda x: ops.conv(
                ops.conv(x, spread, padding="same"),
                column_kernel,
                padding="same",
            ),
            1,
            1,
        )
    for block in (2, 4):
        blocked = blocked_kernel(plain, block_taps(size, block))

        def full(x, b=block, k=blocked):  # NarrowConv2D's blocks form
            return conv_in_blocks(x, k, b)

        def given(x, b=block, k=blocked):
            # deconv1 reads blocks; conv1's blocks stay blocks.
            if direction == "down":
                return depth_to_space(ops.conv(x, k, padding="same"), b)
            return ops.conv(space_to_depth(x, b), k, padding="same")

        forms[f"s2d{block}"] = (full, 1, 1)
        if direction == "down":
            forms[f"s2d{block} (given)"] = (given, block, 1)
        else:
            forms[f"s2d{block} (given)"] = (given, 1, block)
    return forms


def compiled(function):
    """`function` compiled as the backend compiles a model, and a call that
    waits for the result."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jitted = jax.jit(function)
        return lambda x: jitted(x).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function)
    import torch

    def call(x):
        with torch.no_grad():
            result = function(x)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return result

    return call


def main(argv=None):
    args = parse_args(argv)
    dtype = keras.mixed_precision.Policy(args.precision).compute_dtype
    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size)
    images = rng.uniform(size=(*shape, 1)).astype("float32")
    features = rng.normal(size=(*shape, CHANNELS)).astype("float32")
    size = args.kernel_size
    layers = {
        f"conv1 ({size}x{size}, 1 -> 64)": (
            rng.normal(size=(size, size, 1, CHANNELS)) * 0.1,
            "up",
            images,
        ),
        f"deconv1 ({size}x{size}, 64 -> 1)": (
            rng.normal(size=(size, size, CHANNELS, 1)) * 0.02,
            "down",
            features,
        ),
    }
    start = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for title, (kernel, direction, x) in layers.items():
        candidates = forms(
            kernel.astype("float32"),
            direction,
            lambda a: ops.cast(ops.convert_to_tensor(a), dtype),
        )
        functions, reference = {}, None
        for name, (function, in_block, out_block) in candidates.items():
            inputs = x if in_block == 1 else space_to_depth(x, in_block)
            inputs = ops.cast(ops.convert_to_tensor(inputs), dtype)
            call = compiled(function)
            result = ops.cast(call(inputs), "float32")
            if out_block > 1:
                result = depth_to_space(result, out_block)
            result = ops.convert_to_numpy(result)
            if reference is None:
                reference = result
            difference = float(np.max(np.abs(result - reference)))
            scale = float(np.max(np.abs(reference)))
            functions[name] = (
                lambda call=call, inputs=inputs: call(inputs),
                difference,
                scale,
            )
        seconds = speed.alternate(
            {name: entry[0] for name, entry in functions.items()},
            args.warmup,
            args.repeats,
        )
        plain = statistics.median(seconds["plain"])
        for name, (_, difference, scale) in functions.items():
            median = statistics.median(seconds[name])
            rows.append(
                f"| {title} | {name} | {median * 1e3:.2f} | "
                f"{min(seconds[name]) * 1e3:.2f} | {plain / median:.2f}x | "
                f"{difference:.1e} (of {scale:.1f}) |"
            )
    backend = keras.backend.backend()
    lines = [
        f"# Forms of conv1 and deconv1, forward, {backend}, {args.precision}",
        "",
        *speed.environment_lines(start),
        f"- batch {args.batch} x {args.size}x{args.size}; forms timed "
        f"alternately, {args.warmup} warm-up and {args.repeats} timed calls "
        "each",
        "",
        "| layer | form | ms per call, median | min | speed-up over plain "
        "| max difference to plain |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    speed.record(
        "\n".join(lines),
        args.output,
        f"conv_forms_{backend}_{args.precision}_{start:%Y%m%d}.md",
    )


if __name__ == "__main__":
    main()
