"""Where RBDN-3's and DnCNN-17's inference time goes under PyTorch.

Runs each network's eager inference (`model(images, training=False)`
without gradients, as `predict_on_batch` runs it) under `torch.profiler`
and lists PyTorch's operators by their own time: the CUDA time on a GPU,
the CPU time otherwise: where PyTorch's time goes, such as the copies
Keras 3.15.1 makes of every convolution's input, which
`keras_rbdn.layers.Conv2D` avoids (`docs/performance.md`, "Conv2D under
PyTorch"). `benchmarks/gpu_speed.sh` runs it on a GPU too. Records
Markdown under `benchmarks/results/`.

    KERAS_BACKEND=torch python benchmarks/torch_profile.py \\
        --precision mixed_bfloat16
"""

import argparse
import datetime
import time

import keras
import numpy as np
import speed

NETWORKS = ("RBDN-3", "DnCNN-17")
COPY_OPERATOR = "aten::copy_"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    speed.add_timing_arguments(parser, "torch_profile", repeats=2)
    parser.add_argument(
        "--top", type=int, default=15, help="operators listed per network"
    )
    return parser.parse_args(argv)


def profile_network(model, images, warmup, calls):
    """Operators of `calls` inference calls, by their own time per call.

    Returns the profiled wall time per call (seconds), the device
    profiled ("cuda" or "cpu") and rows `(operator, milliseconds per
    call, occurrences per call)`, largest first.
    """
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    on_gpu = torch.cuda.is_available()
    inputs = keras.ops.convert_to_tensor(images)

    def call():
        with torch.no_grad():
            model(inputs, training=False)
        if on_gpu:
            torch.cuda.synchronize()

    for _ in range(warmup):
        call()
    activities = [ProfilerActivity.CPU]
    if on_gpu:
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as profiler:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        wall = (time.perf_counter() - start) / calls
    rows = []
    for event in profiler.key_averages():
        own = event.self_cpu_time_total
        if on_gpu:
            own = event.self_device_time_total
        if own > 0:
            rows.append((event.key, own / 1e3 / calls, event.count / calls))
    rows.sort(key=lambda row: -row[1])
    return wall, ("cuda" if on_gpu else "cpu"), rows


def network_section(name, wall, device, rows, top):
    total = sum(milliseconds for _, milliseconds, _ in rows)
    copies = sum(ms for operator, ms, _ in rows if operator == COPY_OPERATOR)
    lines = [
        "",
        f"## {name}",
        "",
        f"- profiled wall time per call: {wall * 1e3:.1f} ms; operators' "
        f"own {device} time: {total:.1f} ms per call",
        f"- `{COPY_OPERATOR}`: {copies:.2f} ms per call, "
        f"{100 * copies / total:.1f}% of the operators' time",
        "",
        "| operator | ms per call | share | calls per call |",
        "|---|---|---|---|",
    ]
    for operator, milliseconds, count in rows[:top]:
        lines.append(
            f"| `{operator}` | {milliseconds:.2f} | "
            f"{100 * milliseconds / total:.1f}% | {count:g} |"
        )
    return lines


def main(argv=None):
    args = parse_args(argv)
    speed.require_backend(
        "torch_profile.py", "torch", "profiles PyTorch's operators"
    )
    start = datetime.datetime.now(datetime.timezone.utc)
    # Eager, as `predict_on_batch` runs without `jit_compile`; this also
    # sets the precision policy.
    models = speed.build_models(
        argparse.Namespace(precision=args.precision, jit="false")
    )
    shape = (args.batch, args.size, args.size, 1)
    images = np.random.default_rng(0).uniform(size=shape).astype("float32")
    lines = [
        f"# PyTorch operators of RBDN-3 and DnCNN-17, {args.precision}",
        "",
        *speed.environment_lines(start),
        f"- inference, batch {args.batch} x {args.size}x{args.size}, eager, "
        f"{args.warmup} warm-up and {args.repeats} profiled calls per network",
    ]
    for name in NETWORKS:
        wall, device, rows = profile_network(
            models[name], images, args.warmup, args.repeats
        )
        lines += network_section(name, wall, device, rows, args.top)
    text = "\n".join(lines) + "\n"
    name = f"torch_profile_{args.precision}_{start:%Y%m%d}.md"
    speed.record(text, args.output, name)


if __name__ == "__main__":
    main()
