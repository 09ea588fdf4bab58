"""Where RBDN-3's and DnCNN-17's time goes, layer by layer (JAX).

Runs each network's jitted inference (or, with `--training`, the loss and
its gradients) under `jax.profiler.trace`, reads the
trace back with `jax.profiler.ProfileData` and adds up the time of every
XLA operation: on a GPU the device time of its kernels (the "XLA Ops"
lines), on a CPU the time of its thunks. Each operation is attributed to
the Keras layer that produced it through the `op_name` metadata of the
compiled HLO, which holds the layer's name scope. XLA fuses neighbouring
operations; a fusion counts for the layer of its root, so a convolution's
batch normalization and ReLU may be counted with it or with the next
layer. Rows group a layer with its `_bn` and `_relu` layers.

For the layers with a convolution the report gives the multiply-adds per
pixel and the arithmetic rate, which shows layers running far below the
others. It also lists the most expensive XLA operations. Records Markdown
under `benchmarks/results/`.

Run from the repository root, for example on a JAX GPU machine
(`benchmarks/gpu_speed.sh` runs it there):

    KERAS_BACKEND=jax python benchmarks/layer_profile.py \\
        --precision mixed_bfloat16
"""

import argparse
import collections
import datetime
import glob
import os
import re
import statistics
import tempfile

import dncnn
import keras
import numpy as np
import speed

import keras_rbdn

NETWORKS = {
    "RBDN-3": lambda: keras_rbdn.build(branches=3, task="denoise"),
    "DnCNN-17": lambda: dncnn.dncnn(depth=17),
}
GROUP_SUFFIXES = ("_bn", "_relu")
_WRAPPED = re.compile(r"^\w+\((.*)\)$")
_SIGNATURE = re.compile(
    r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\w+\[[\d,]*\])\S*\s+([\w\-]+)\("
)
_INSTRUCTION = re.compile(
    r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*op_name="([^"]*)"'
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--training",
        action="store_true",
        help="profile a training step (forward and gradients of an MSE "
        "loss, batch normalization in training mode) instead of inference",
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="default: 16, training 64"
    )
    parser.add_argument(
        "--size", type=int, default=None, help="default: 512, training 128"
    )
    parser.add_argument("--calls", type=int, default=5, help="traced calls")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--precision", default="float32", choices=speed.PRECISIONS
    )
    parser.add_argument(
        "--top", type=int, default=25, help="XLA operations listed"
    )
    parser.add_argument(
        "--trace-dir",
        default=None,
        help="keep the raw traces here (default: a temporary folder)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default: benchmarks/results/layer_profile_"
        "[training_]<backend>_<precision>_<date>.md); '-' writes nothing",
    )
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 64 if args.training else 16
    if args.size is None:
        args.size = 128 if args.training else 512
    return args


def jitted_gradients(model):
    """The MSE loss of `model` (training mode, target: the images) and its
    gradients, as one jitted function of (weights, images)."""
    import jax
    from keras import ops

    def loss(trainable, non_trainable, images):
        outputs, non_trainable = model.stateless_call(
            trainable, non_trainable, images, training=True
        )
        error = ops.cast(outputs, "float32") - images
        return ops.mean(ops.square(error)), non_trainable

    return jax.jit(jax.value_and_grad(loss, has_aux=True))


def hlo_layers(module_text, layer_names):
    """`{HLO instruction: Keras layer}` from the compiled module's metadata."""
    layers = {}
    for line in module_text.splitlines():
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        for scope in match.group(2).split("/"):
            # Under differentiation scopes read `jvp(conv1)` or
            # `transpose(jvp(conv1))`.
            while _WRAPPED.match(scope):
                scope = _WRAPPED.match(scope).group(1)
            if scope in layer_names:
                layers[match.group(1)] = scope
                break
    return layers


def hlo_signatures(module_text):
    """`{HLO instruction: "f32[...] opcode"}`, for the report.

    Some instructions carry no metadata (XLA writes the kernel gradients
    of convolutions as new convolutions); their shape says what they are.
    """
    signatures = {}
    for line in module_text.splitlines():
        match = _SIGNATURE.match(line)
        if match:
            signatures[match.group(1)] = f"{match.group(2)} {match.group(3)}"
    return signatures


def operation_times(trace_dir, module):
    """Nanoseconds per XLA operation of `module` in the trace under
    `trace_dir`, and which part of the trace they were read from."""
    import jax

    paths = glob.glob(
        os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True
    )
    if not paths:
        raise RuntimeError(f"The profiler wrote no trace under {trace_dir}.")
    profile = jax.profiler.ProfileData.from_file(
        max(paths, key=os.path.getmtime)
    )
    planes = list(profile.planes)
    device_planes = [p for p in planes if p.name.startswith("/device:")]
    times = collections.Counter()
    sources = set()
    for plane in device_planes or planes:
        for line, from_ops_line in _operation_lines(plane, bool(device_planes)):
            for event in line.events:
                stats = dict(event.stats)
                name = stats.get("hlo_op")
                if from_ops_line or (name is None and device_planes):
                    name = event.name  # a device's kernel: its own name
                if name is None or event.name.startswith("end:"):
                    continue
                if not str(stats.get("hlo_module", module)).startswith(module):
                    continue
                times[name.lstrip("%")] += event.duration_ns
                sources.add(f"{plane.name} / {line.name}")
    if not times:
        found = {p.name: [line.name for line in p.lines] for p in planes}
        raise RuntimeError(
            f"No XLA operation of {module} found in the trace; planes and "
            f"lines: {found}"
        )
    return times, sorted(sources)


def _operation_lines(plane, device):
    """The lines of `plane` to read, each with whether it is an "XLA Ops"
    line (one event per XLA operation).

    A device plane may hold an "XLA Ops" line; if not, its kernels are
    read from its "Stream" lines (other lines may repeat them). On a CPU
    every line is read, and only events with an `hlo_op` stat count.
    """
    lines = list(plane.lines)
    op_lines = [line for line in lines if line.name == "XLA Ops"]
    if op_lines:
        return [(line, True) for line in op_lines]
    if device:
        streams = [line for line in lines if line.name.startswith("Stream")]
        return [(line, False) for line in streams or lines]
    return [(line, False) for line in lines]


def _layer_of(name, layers):
    """The layer of an operation; GPU kernels of fusions are named like
    the fusion with `_` for `.`."""
    if name in layers:
        return layers[name]
    for instruction, layer in layers.items():
        if instruction.replace(".", "_") == name:
            return layer
    return "(not attributed)"


def group_of(layer):
    for suffix in GROUP_SUFFIXES:
        if layer.endswith(suffix):
            return layer[: -len(suffix)]
    return layer


def profile_network(model, images, args, trace_dir):
    """Wall time per call and per-layer operation times of one network."""
    import jax

    step = (jitted_gradients if args.training else speed.jitted_inference)(
        model
    )
    weights = speed.weight_values(model)
    images = jax.device_put(images)
    compiled = step.lower(*weights, images).compile()
    module_text = compiled.as_text()
    module = re.search(r"HloModule\s+([\w.\-]+)", module_text).group(1)
    wall = speed.alternate(
        {"step": lambda: jax.block_until_ready(step(*weights, images))},
        args.warmup,
        args.calls,
    )["step"]
    with jax.profiler.trace(trace_dir):
        for _ in range(args.calls):
            jax.block_until_ready(step(*weights, images))
    times, sources = operation_times(trace_dir, module)
    layers = hlo_layers(module_text, {layer.name for layer in model.layers})
    signatures = hlo_signatures(module_text)
    return {
        "wall": statistics.median(wall),
        "times": {name: ns / args.calls / 1e9 for name, ns in times.items()},
        "layers": layers,
        "signatures": signatures,
        "sources": sources,
        "multiply_adds": dncnn.multiply_adds_per_layer(model),
    }


def network_section(title, result, megapixels, top, passes):
    """Markdown for one network. `passes` multiplies the forward
    multiply-adds in the rates: 1 at inference, 3 for a training step
    (forward, input gradient, kernel gradient)."""
    times, layers = result["times"], result["layers"]
    total = sum(times.values())
    by_group = collections.Counter()
    for name, seconds in times.items():
        by_group[group_of(_layer_of(name, layers))] += seconds
    lines = [
        f"## {title}",
        "",
        f"- wall time per call, median, untraced: {result['wall'] * 1e3:.2f} "
        f"ms ({megapixels / result['wall']:.1f} MP/s)",
        f"- XLA operation time per call, traced: {total * 1e3:.2f} ms, read "
        f"from: {'; '.join(result['sources'])}",
        "",
        "| layer (with its _bn, _relu) | ms per call | share | "
        f"multiply-adds per pixel | GMAC/s{' (x3 passes)' * (passes > 1)} |",
        "|---|---|---|---|---|",
    ]
    for group, seconds in by_group.most_common():
        macs = result["multiply_adds"].get(group)
        rate = (
            f"{passes * macs * megapixels * 1e6 / seconds / 1e9:,.0f}"
            if macs and seconds > 0
            else ""
        )
        lines.append(
            f"| {group} | {seconds * 1e3:.3f} | {seconds / total:.1%} | "
            f"{f'{macs:,.0f}' if macs else ''} | {rate} |"
        )
    lines += [
        "",
        f"Top {top} XLA operations:",
        "",
        "| operation | HLO | layer | ms per call |",
        "|---|---|---|---|",
    ]
    ranked = sorted(times.items(), key=lambda item: -item[1])[:top]
    for name, seconds in ranked:
        layer = _layer_of(name, layers)
        signature = result["signatures"].get(name, "")
        lines.append(
            f"| `{name}` | {signature} | {layer} | {seconds * 1e3:.3f} |"
        )
    return lines + [""]


def main(argv=None):
    args = parse_args(argv)
    speed.require_backend("layer_profile.py", "jax", "reads XLA's profile")
    backend = keras.backend.backend()
    keras.mixed_precision.set_global_policy(args.precision)
    shape = (args.batch, args.size, args.size, 1)
    images = np.random.default_rng(0).uniform(size=shape).astype("float32")
    megapixels = np.prod(shape[:3]) / 1e6
    start = datetime.datetime.now(datetime.timezone.utc)
    work = "training step" if args.training else "inference"
    lines = [
        f"# Layer profile, {work}, {backend}, {args.precision}",
        "",
        *speed.environment_lines(start),
        f"- batch {args.batch} x {args.size}x{args.size} x 1; "
        f"{args.warmup} warm-up calls, {args.calls} timed and "
        f"{args.calls} traced calls per network",
        "",
    ]
    for title, build in NETWORKS.items():
        with tempfile.TemporaryDirectory() as scratch:
            trace_dir = scratch
            if args.trace_dir:
                trace_dir = os.path.join(args.trace_dir, title)
            result = profile_network(build(), images, args, trace_dir)
        passes = 3 if args.training else 1
        lines += network_section(title, result, megapixels, args.top, passes)
    speed.record(
        "\n".join(lines),
        args.output,
        f"layer_profile_{'training_' * args.training}{backend}_"
        f"{args.precision}_{start:%Y%m%d}.md",
    )


if __name__ == "__main__":
    main()
