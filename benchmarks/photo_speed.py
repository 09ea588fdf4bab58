"""Seconds, MP/s and peak memory of `keras-rbdn denoise` on photos.

Runs the command line's default path on synthetic photos of 1, 4 and 12
megapixels (4:3, the bundled chelsea.png resized, noise of sigma 25),
gray and RGB, at ensemble 1 and 4: the shipped model the CLI picks
(`denoise` for gray, `denoise_color` for RGB where shipped) with batch
normalization folded, through `inference.apply_model` with its default
tiles. Each case runs once, cold, in a process of its own, as one CLI
call would; that process then times the same model on one 1024x1024
image (the reference: its steady-state rate, the median of `--repeats`
calls after a warm-up) and reports the peak resident memory of the photo
run. The ratio is the photo's seconds over what the reference rate gives
for its work (ensemble x megapixels). Records Markdown under
`benchmarks/results/photo_speed_<backend>_<machine>.md`.

Run from the repository root (the full grid takes about 20 minutes on
2 cores; `--sizes`, `--kinds` and `--ensembles` pick a part):

    KERAS_BACKEND=tensorflow python benchmarks/photo_speed.py
    KERAS_BACKEND=tensorflow python benchmarks/photo_speed.py --sizes 24 \\
        --kinds rgb --ensembles 1
"""

import argparse
import contextlib
import datetime
import functools
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import keras
import numpy as np
import speed

import keras_rbdn
from keras_rbdn import cli
from keras_rbdn import inference

SIGMA = 25.0
KINDS = {"gray": 1, "rgb": 3}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=float, nargs="+", default=[1, 4, 12], help="MP"
    )
    parser.add_argument(
        "--kinds", nargs="+", choices=tuple(KINDS), default=list(KINDS)
    )
    parser.add_argument("--ensembles", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--reference-size",
        type=int,
        default=1024,
        help="side of the square image the reference rate is timed on",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the cases in this process (peak memory is then this "
        "process's so far)",
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        help="cases to leave out, as kind:MP:ensemble (rgb:12:4)",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        help="run these cases, as kind:MP:ensemble, in this order, "
        "instead of the grid",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default: benchmarks/results/photo_speed_"
        "<backend>_<machine>.md); '-' writes nothing",
    )
    return parser.parse_args(argv)


def machine_name():
    """The short machine name of result files: `epyc`, `xeon` or the CPU
    model's first word."""
    model = speed.cpu_model()
    for name in ("epyc", "xeon"):
        if name in model.lower():
            return name
    return model.split()[0].lower() if model.split() else "unknown"


def clean_photo(height, width):
    """The bundled chelsea.png resized to `height` x `width`, float32 RGB
    in [0, 1]."""
    from PIL import Image

    chelsea = os.path.join(
        os.path.dirname(keras_rbdn.__file__), "assets", "chelsea.png"
    )
    image = Image.open(chelsea).convert("RGB").resize((width, height))
    return np.asarray(image, dtype="float32") / 255.0


def photo(megapixels, channels):
    """A 4:3 noisy photo of `megapixels`, float32 in [0, 1]."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    pixels = clean_photo(height, width)
    noise = np.random.default_rng(0).normal(
        scale=SIGMA / 255, size=pixels.shape
    )
    noisy = (pixels + noise).astype("float32")
    return inference.to_channels(noisy, channels)


@functools.cache
def folded_model(name):
    """The shipped model `name` as the CLI runs it: batch norm folded."""
    return keras_rbdn.fold_batch_norm(keras_rbdn.load(name))


def peak_memory():
    """Peak resident memory of this process, in GB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def reference_rate(model, channels, args):
    """MP/s of `model` on one square image, per second of wall-clock
    and of CPU time: the medians of `--repeats` calls after a warm-up."""
    side = args.reference_size
    square = np.random.default_rng(1).random((1, side, side, channels))
    square = square.astype("float32")
    model.predict_on_batch(square)  # Warm-up: traced once.
    times, cpu_times = [], []
    for _ in range(args.repeats):
        begin, cpu_begin = time.perf_counter(), time.process_time()
        model.predict_on_batch(square)
        times.append(time.perf_counter() - begin)
        cpu_times.append(time.process_time() - cpu_begin)
    megapixels = side * side / 1e6
    return (
        megapixels / statistics.median(times),
        megapixels / statistics.median(cpu_times),
    )


def run_case(kind, megapixels, ensemble, args):
    """Times one photo, then the reference; a dict of the figures."""
    channels = KINDS[kind]
    name = cli._default_model("denoise", "denoise", channels)
    model = folded_model(name)
    image = photo(megapixels, channels)
    start, cpu_start = time.perf_counter(), time.process_time()
    inference.apply_model(model, image, ensemble=ensemble)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    memory = peak_memory()
    rate, cpu_rate = reference_rate(model, channels, args)
    height, width = image.shape[:2]
    work = ensemble * height * width / 1e6
    return {
        "kind": kind,
        "model": name,
        "size": f"{width}x{height}",
        "megapixels": height * width / 1e6,
        "ensemble": ensemble,
        "seconds": seconds,
        "rate": height * width / 1e6 / seconds,
        "reference_rate": rate,
        "ratio": seconds / (work / rate),
        "cpu_ratio": cpu_seconds / (work / cpu_rate),
        "peak_gb": memory,
    }


def run_in_subprocess(kind, megapixels, ensemble, args):
    """`run_case` in a fresh Python process: its own peak memory."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--case",
        json.dumps([kind, megapixels, ensemble]),
        "--reference-size",
        str(args.reference_size),
        "--repeats",
        str(args.repeats),
    ]
    # The child imports the same keras_rbdn as this process.
    package_root = os.path.dirname(os.path.dirname(keras_rbdn.__file__))
    path = os.pathsep.join(
        filter(None, [package_root, os.environ.get("PYTHONPATH")])
    )
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=path),
    )
    if result.returncode != 0:
        raise SystemExit(
            f"case {kind} {megapixels} MP failed:\n{result.stderr}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(results):
    lines = [
        "| image | model | ensemble | seconds | MP/s | reference MP/s | "
        "ratio to reference | CPU-time ratio | peak memory GB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        lines.append(
            f"| {row['kind']} {row['size']} ({row['megapixels']:.1f} MP) | "
            f"`{row['model']}` | {row['ensemble']} | {row['seconds']:.1f} | "
            f"{row['rate']:.3f} | {row['reference_rate']:.3f} | "
            f"**{row['ratio']:.2f}** | {row['cpu_ratio']:.2f} | "
            f"{row['peak_gb']:.2f} |"
        )
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args.case:
        kind, megapixels, ensemble = json.loads(args.case)
        print(json.dumps(run_case(kind, megapixels, ensemble, args)))
        return
    start = datetime.datetime.now(datetime.timezone.utc)
    load_before = speed.load_average()
    run = run_case if args.in_process else run_in_subprocess
    results = []
    cases = [
        f"{kind}:{megapixels:g}:{ensemble}"
        for kind in args.kinds
        for megapixels in args.sizes
        for ensemble in args.ensembles
    ]
    for case in args.cases or cases:
        if case in args.skip:
            continue
        kind, megapixels, ensemble = case.split(":")
        results.append(run(kind, float(megapixels), int(ensemble), args))
        print(table(results)[-1], flush=True)
        report(args, argv, start, load_before, results, quiet=True)
    report(args, argv, start, load_before, results)


def report(args, argv, start, load_before, results, quiet=False):
    """Writes (and unless `quiet` prints) the Markdown report so far."""
    backend = keras.backend.backend()
    lines = [
        *speed.report_header(
            "Photo speed: `keras-rbdn denoise`'s default path",
            "photo_speed.py",
            argv,
            start,
        ),
        f"- photos: chelsea.png resized to 4:3, noise sigma {SIGMA:g}; "
        "shipped models folded (`fold_batch_norm`), "
        "`inference.apply_model` with its default tiles; one cold call "
        "per case"
        + (
            " in this process"
            if args.in_process
            else " in a process of its own"
        ),
        f"- reference: the same model on one {args.reference_size}x"
        f"{args.reference_size} image, median of {args.repeats} calls "
        "after a warm-up; ratio = seconds / (ensemble x MP / reference "
        "MP/s); the CPU-time ratio is the same with the process's CPU "
        "seconds (less sensitive to other processes on a shared machine)",
        f"- load average before: {load_before}; after: {speed.load_average()}",
        "",
        *table(results),
    ]
    name = f"photo_speed_{backend}_{machine_name()}.md"
    if quiet:
        with contextlib.redirect_stdout(io.StringIO()):
            speed.record("\n".join(lines) + "\n", args.output, name)
    else:
        speed.record("\n".join(lines) + "\n", args.output, name)


if __name__ == "__main__":
    main()
