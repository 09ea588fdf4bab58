"""Throughput of the input pipelines, in 128x128 training crops per second.

Times `keras_rbdn.data.image_dataset` (tf.data) for the denoising task on
the 400 gray training images: decode, cache, shuffle, random crop, flips,
batch, per-image Gaussian noise (sigma ~ U[8, 50]), prefetch. The first
pass over the data (which decodes the files and fills the cache) is
timed apart from the steady state that training sees. For comparison it
also times the NumPy loader (`ImagePairLoader`, one process) and, with
`--tasks`, the colorization pipelines on the color training images.

Nothing but the pipeline runs, so this is the most crops per second that
training can get from it; training itself is far slower (see
`benchmarks/speed.py`), so the pipeline must not be the bottleneck.

Run from the repository root (the data lives in ../shared/data):

    KERAS_BACKEND=tensorflow python benchmarks/pipeline.py \
        --output benchmarks/results/pipeline.md
    # quick look:
    python benchmarks/pipeline.py --batches 20 --no-numpy
"""

import argparse
import os
import platform
import time

import numpy as np

import keras_rbdn

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def load_average():
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def time_tf_data(files, task, batch_size, batches, cache, crops_per_image):
    dataset = keras_rbdn.data.image_dataset(
        files,
        task,
        batch_size=batch_size,
        cache=cache,
        repeat=True,
        crops_per_image=crops_per_image,
        seed=0,
    )
    iterator = iter(dataset)
    start = time.perf_counter()
    # One pass over the files: decodes them and fills the cache.
    first_pass = -(-len(files) * crops_per_image // batch_size)
    for _ in range(first_pass):
        next(iterator)
    first = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        x, y = next(iterator)
    np.asarray(y)  # wait for the last batch
    steady = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "first_pass_s": first,
        "crops_per_s": batches * batch_size / steady,
        "crops_per_cpu_s": batches * batch_size / cpu,
        "shape": tuple(x.shape),
    }


def time_numpy_loader(files, task, batch_size, batches):
    loader = keras_rbdn.data.ImagePairLoader(
        files, task, batch_size=batch_size, seed=0
    )
    start = time.perf_counter()
    for index in range(len(loader)):  # first epoch fills the cache
        loader[index]
    first = time.perf_counter() - start
    loader.on_epoch_end()
    start, cpu = time.perf_counter(), time.process_time()
    for index in range(batches):
        x, _ = loader[index % len(loader)]
    steady = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "first_pass_s": first,
        "crops_per_s": batches * batch_size / steady,
        "crops_per_cpu_s": batches * batch_size / cpu,
        "shape": tuple(x.shape),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--no-numpy", action="store_true")
    parser.add_argument(
        "--tasks", action="store_true", help="also colorize_ycbcr and _lab"
    )
    parser.add_argument("--output", help="write a Markdown report here")
    args = parser.parse_args()

    denoise_files = keras_rbdn.data.list_image_files(
        os.path.join(args.data, "denoise", "train400")
    )
    color_files = keras_rbdn.data.list_image_files(
        os.path.join(args.data, "color", "train")
    )
    before = load_average()
    rows = []

    def record(pipeline, task, files, options, result):
        rows.append((pipeline, task, len(files), options, result))
        print(
            f"{pipeline:8s} {task:15s} {options:38s} "
            f"{result['crops_per_s']:8.0f} crops/s "
            f"{result['crops_per_cpu_s']:8.0f} crops/CPU-s  first pass "
            f"{result['first_pass_s']:.1f} s  batch {result['shape']}",
            flush=True,
        )

    for cache in (True, False):
        for crops in (1, 8):
            if not cache and crops > 1:
                continue
            options = f"cache={cache}, crops_per_image={crops}"
            result = time_tf_data(
                denoise_files,
                "denoise",
                args.batch_size,
                args.batches,
                cache,
                crops,
            )
            record("tf.data", "denoise", denoise_files, options, result)
    if args.tasks:
        for task in ("colorize_ycbcr", "colorize_lab"):
            result = time_tf_data(
                color_files, task, args.batch_size, args.batches, True, 1
            )
            record("tf.data", task, color_files, "cache=True", result)
    if not args.no_numpy:
        result = time_numpy_loader(
            denoise_files, "denoise", args.batch_size, args.batches
        )
        record(
            "NumPy", "denoise", denoise_files, "cache=True, 1 process", result
        )
    after = load_average()

    if args.output:
        import keras
        import tensorflow as tf

        lines = [
            "# Input pipeline throughput",
            "",
            "Produced by `benchmarks/pipeline.py` (see its docstring). "
            f"Command: `KERAS_BACKEND={keras.backend.backend()} python "
            f"benchmarks/pipeline.py --batch-size {args.batch_size} "
            f"--batches {args.batches}"
            + (" --tasks" if args.tasks else "")
            + (" --no-numpy" if args.no_numpy else "")
            + f" --output {args.output}`.",
            "",
            f"Machine: {os.cpu_count()} CPU cores "
            f"({platform.processor() or platform.machine()}), "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"load average (1/5/15 min) {before} before, {after} after "
            "(other jobs shared the cores); this process ran at niceness "
            f"{os.nice(0)}.",
            "",
            f"Batches of {args.batch_size} crops of 128x128; steady state "
            f"over {args.batches} batches after one full pass (the first "
            "pass decodes the files and fills the cache).",
            "",
            "`crops/s` is wall-clock throughput on this shared machine; "
            "`crops/CPU-s` divides by the CPU time the process used (all "
            "threads), which depends less on the other jobs: an idle "
            f"machine with {os.cpu_count()} cores can give up to about "
            f"{os.cpu_count()} times that.",
            "",
            "| pipeline | task | images | options | crops/s | crops/CPU-s "
            "| first pass (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for pipeline, task, count, options, result in rows:
            lines.append(
                f"| {pipeline} | {task} | {count} | {options} | "
                f"{result['crops_per_s']:.0f} | "
                f"{result['crops_per_cpu_s']:.0f} | "
                f"{result['first_pass_s']:.1f} |"
            )
        with open(args.output, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
