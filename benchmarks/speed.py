"""Speed of RBDN-3 against DnCNN-17 (and BM3D), side by side in one run.

Prints and records (Markdown under `benchmarks/results/`) for RBDN-3 and
a DnCNN-17 baseline built with the same Keras layers in the same backend:

- inference throughput, megapixels per second, at a stated batch and size
  (default 16 x 512x512), with `predict_on_batch` and, under JAX, also
  with the batch already on the device (on a GPU, `predict_on_batch`
  spends most of its time copying the batch there and back);
- training throughput, crops per second (`train_on_batch` with Adam and
  MSE, or `fit` over `--fit-steps` steps per timed call, which keeps a
  GPU's queue full as a training run does), at a stated batch and crop
  size (default 64 x 128x128);
- the RBDN / DnCNN ratio of both;
- seconds per 481x321 gray image for RBDN-3 (batch 1) and, when the
  optional `bm3d` package is installed (`pip install -e ".[bench]"`),
  for BM3D at sigma 25, and their ratio.

Every measurement comes after warm-up (compilation) and is repeated; the
two networks are timed alternately (RBDN, DnCNN, RBDN, DnCNN, ...) so that
a change in machine load hits both, and the report gives medians, the
median of the per-pair ratios, and the load average before and after.

Run from the repository root:

    KERAS_BACKEND=tensorflow python benchmarks/speed.py
    KERAS_BACKEND=jax python benchmarks/speed.py --precision mixed_bfloat16
    # quick look on a small CPU:
    python benchmarks/speed.py --infer-batch 4 --infer-size 256 \
        --train-batch 16 --train-size 64 --repeats 3 --no-bm3d

With `--fold-batch-norm`, inference and the single image are timed on
both networks in inference form (`keras_rbdn.fold_batch_norm`: batch
normalization folded into the convolutions); training is not affected.

On a GPU machine with JAX only (no TensorFlow installed), the same command
with `KERAS_BACKEND=jax` works: nothing here imports TensorFlow unless it
is the backend.
"""

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dncnn  # noqa: E402

import keras_rbdn  # noqa: E402

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCHMARKS, "results")
REPOSITORY = os.path.dirname(BENCHMARKS)
BM3D_SIGMA = 25.0
BM3D_SHAPE = (321, 481)  # rows, columns: a landscape BSD68 image
PRECISIONS = keras_rbdn.training.PRECISIONS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--infer-size", type=int, default=512)
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed calls per network"
    )
    parser.add_argument(
        "--fit-steps",
        type=int,
        default=0,
        help="time training as `fit` over this many steps per call "
        "(0: one `train_on_batch` per call)",
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed calls per network"
    )
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument(
        "--jit",
        default="auto",
        choices=("auto", "true", "false"),
        help="`jit_compile` of model.compile (auto: XLA on TF and JAX)",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to skip: inference,training,image",
    )
    parser.add_argument(
        "--fold-batch-norm",
        action="store_true",
        help="time inference and the single image with batch normalization "
        "folded into the convolutions, in both networks (training keeps it)",
    )
    add_bm3d_arguments(parser, repeats=3)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file to write (default: benchmarks/results/"
        "speed_<backend>_<precision>_<date>.md); '-' writes nothing",
    )
    parser.add_argument("--label", default="", help="free text for the report")
    return parser.parse_args(argv)


# --- Environment -------------------------------------------------------------


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def accelerator():
    """The device the backend computes on, in words."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind} (jax.devices()[0])"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"GPU: {gpus[0].name}" if gpus else "CPU"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
        return f"CPU (torch threads: {torch.get_num_threads()})"
    return "unknown"


def versions():
    backend = keras.backend.backend()
    found = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "keras_rbdn": keras_rbdn.__version__,
    }
    if backend == "tensorflow":
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax
        import jaxlib

        found["jax"] = jax.__version__
        found["jaxlib"] = jaxlib.__version__
    elif backend == "torch":
        import torch

        found["torch"] = torch.__version__
    try:
        found["bm3d"] = importlib.metadata.version("bm3d")
    except importlib.metadata.PackageNotFoundError:
        found["bm3d"] = "not installed"
    return found


def versions_text():
    """`versions()` as "name version, ..."."""
    return ", ".join(
        f"{name} {version}" for name, version in versions().items()
    )


def _commit():
    """The checked-out commit, read from .git without running git."""
    try:
        with open(os.path.join(REPOSITORY, ".git", "HEAD")) as head:
            ref = head.read().strip()
        if ref.startswith("ref: "):
            with open(os.path.join(REPOSITORY, ".git", ref[5:])) as target:
                return target.read().strip()[:12]
        return ref[:12]
    except OSError:
        return "unknown"


def _tracked_files_changed():
    """True or False from `git status`, or None where git cannot tell (no
    git on the machine, or no repository)."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if status.returncode != 0:
        return None
    return bool(status.stdout.strip())


def source_revision():
    """The checked-out commit, and whether tracked files differ from it."""
    changed = _tracked_files_changed()
    if changed is None:
        return f"{_commit()} (git could not check the working tree)"
    return _commit() + (" plus uncommitted changes" if changed else "")


def load_average():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


# Environment variables that change what the kernels do, recorded in every
# report when set (`ONEDNN_MAX_CPU_ISA` caps the instructions oneDNN uses,
# which is how a run imitates an older CPU: docs/performance.md, "Mixed
# precision and AMX").
TUNING_VARIABLES = (
    "XLA_FLAGS",
    "TF_XLA_FLAGS",
    "ONEDNN_MAX_CPU_ISA",
    "TF_ENABLE_ONEDNN_OPTS",
    "OMP_NUM_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)


def tuning_environment_lines():
    """One report line per set variable of `TUNING_VARIABLES`."""
    return [
        f"- {name}: `{os.environ[name]}`"
        for name in TUNING_VARIABLES
        if os.environ.get(name)
    ]


def environment_lines(start):
    """Report lines with the date, machine, versions and revision (and the
    set `TUNING_VARIABLES`)."""
    return [
        f"- date: {start:%Y-%m-%d %H:%M} UTC; machine: {cpu_model()}, "
        f"{os.cpu_count()} CPUs; device: {accelerator()}",
        f"- versions: {versions_text()}",
        f"- source revision: {source_revision()}",
        *tuning_environment_lines(),
    ]


def report_header(title, script, argv, start):
    """A report's first lines: `# <title>, <backend>`, the command that
    ran `benchmarks/<script>` (`argv`, or the process's arguments when
    `None`) and `environment_lines(start)`."""
    backend = keras.backend.backend()
    arguments = " ".join(sys.argv[1:] if argv is None else argv)
    return [
        f"# {title}, {backend}",
        "",
        f"- command: `KERAS_BACKEND={backend} python benchmarks/{script} "
        f"{arguments}`",
        *environment_lines(start),
    ]


def require_backend(script, backend, reason):
    """Exits with a one-line message unless Keras runs on `backend`."""
    received = keras.backend.backend()
    if received != backend:
        raise SystemExit(
            f"{script} {reason} and needs KERAS_BACKEND={backend}. "
            f"Received: {received}"
        )


def add_bm3d_arguments(parser, repeats):
    """`--no-bm3d` and `--bm3d-repeats`, which `bm3d_seconds` reads."""
    parser.add_argument(
        "--no-bm3d", action="store_true", help="skip BM3D even if installed"
    )
    parser.add_argument("--bm3d-repeats", type=int, default=repeats)


def add_timing_arguments(parser, name, repeats=10):
    """`--batch`, `--size`, `--repeats`, `--warmup`, `--precision` and
    `--output` (default `benchmarks/results/<name>_<backend>_<precision>_
    <date>.md`), as the smaller benchmarks take them."""
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument(
        "--output",
        default=None,
        help=f"Markdown file (default: benchmarks/results/{name}_<backend>_"
        "<precision>_<date>.md); '-' writes nothing",
    )


# --- Timing ------------------------------------------------------------------


def jit_compile(args):
    return {"auto": "auto", "true": True, "false": False}[args.jit]


def build_models(args):
    keras.mixed_precision.set_global_policy(args.precision)
    jit = jit_compile(args)
    models = {
        "RBDN-3": keras_rbdn.build(branches=3, task="denoise"),
        "DnCNN-17": dncnn.dncnn(depth=17),
    }
    for model in models.values():
        model.compile(optimizer="adam", loss="mse", jit_compile=jit)
    return models


def inference_models(models, args):
    """The networks to time at inference: as built, or folded."""
    if not args.fold_batch_norm:
        return models
    jit = jit_compile(args)
    folded = {
        "RBDN-3": keras_rbdn.fold_batch_norm(models["RBDN-3"]),
        "DnCNN-17": dncnn.fold_batch_norm(models["DnCNN-17"]),
    }
    for model in folded.values():
        model.compile(loss="mse", jit_compile=jit)
    return folded


def alternate(functions, warmup, repeats):
    """Seconds per call of each function, timed in alternation."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    seconds = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def speed_up_rows(seconds):
    """Markdown rows for two alternately timed functions (`seconds`: name
    -> seconds per call, the baseline first): each one's median and
    minimum, then the baseline's median over the other's, and the median
    of the per-pair ratios."""
    rows = [
        f"| {name} | {statistics.median(times):.4f} | {min(times):.4f} |"
        for name, times in seconds.items()
    ]
    baseline, candidate = seconds.values()
    pairs = [a / b for a, b in zip(baseline, candidate, strict=True)]
    speed_up = statistics.median(baseline) / statistics.median(candidate)
    return rows + [
        f"| **speed-up** | **{speed_up:.2f}x** (median of per-pair "
        f"ratios {statistics.median(pairs):.2f}x) | |"
    ]


def summarize(seconds, work):
    """Median throughput (work per second) of each network, and ratios."""
    names = list(seconds)
    rows = {}
    for name in names:
        rates = [work / s for s in seconds[name]]
        rows[name] = {
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "seconds": statistics.median(seconds[name]),
        }
    first, second = names
    pair_ratios = [
        b / a for a, b in zip(seconds[first], seconds[second], strict=True)
    ]
    ratio = {
        "of_medians": rows[first]["median"] / rows[second]["median"],
        "median_pair": statistics.median(pair_ratios),
    }
    return rows, ratio


def inference_batch(args):
    """The images every inference timing uses, and their megapixels."""
    shape = (args.infer_batch, args.infer_size, args.infer_size, 1)
    x = np.random.default_rng(0).uniform(size=shape).astype("float32")
    return x, np.prod(shape[:3]) / 1e6


def inference(models, args):
    x, megapixels = inference_batch(args)
    functions = {
        name: (lambda model=model: model.predict_on_batch(x))
        for name, model in models.items()
    }
    seconds = alternate(functions, args.warmup, args.repeats)
    return summarize(seconds, megapixels)


def jitted_inference(model):
    """JAX: `model` at inference as one jitted function of (weights,
    images)."""
    import jax

    def infer(trainable, non_trainable, images):
        outputs, _ = model.stateless_call(
            trainable, non_trainable, images, training=False
        )
        return outputs

    return jax.jit(infer)


def weight_values(model):
    """(trainable, non-trainable) variable values, for `stateless_call`."""
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
    )


def device_inference(models, args):
    """JAX: inference with the batch already on the device, each network
    one jitted function, waiting for its result; no copies to or from
    the host, which `predict_on_batch` makes on every call."""
    import jax

    images, megapixels = inference_batch(args)
    x = jax.device_put(images)
    functions = {}
    for name, model in models.items():
        step, weights = jitted_inference(model), weight_values(model)
        functions[name] = lambda step=step, weights=weights: (
            jax.block_until_ready(step(*weights, x))
        )
    seconds = alternate(functions, args.warmup, args.repeats)
    return summarize(seconds, megapixels)


def training(models, args):
    rng = np.random.default_rng(1)
    shape = (args.train_batch, args.train_size, args.train_size, 1)
    clean = rng.uniform(size=shape).astype("float32")
    noisy = clean + rng.normal(scale=25 / 255, size=shape).astype("float32")
    if args.fit_steps:
        batches = SameBatch(noisy, clean, args.fit_steps)
        functions = {
            name: (lambda model=model: model.fit(batches, verbose=0))
            for name, model in models.items()
        }
    else:
        functions = {
            name: (lambda model=model: model.train_on_batch(noisy, clean))
            for name, model in models.items()
        }
    seconds = alternate(functions, args.warmup, args.repeats)
    return summarize(seconds, args.train_batch * max(1, args.fit_steps))


class SameBatch(keras.utils.PyDataset):
    """One `(x, y)` batch, `steps` times: an epoch of `fit` with no input
    pipeline cost."""

    def __init__(self, x, y, steps):
        super().__init__()
        self.x, self.y, self.steps = x, y, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.x, self.y


def gray_test_image():
    """A 321x481 gray image in [0, 1]: BSD68 when present, else camera."""
    from PIL import Image

    bsd68 = os.path.join(REPOSITORY, "..", "shared", "data", "denoise", "bsd68")
    if os.path.isdir(bsd68):
        for name in sorted(os.listdir(bsd68)):
            if not name.endswith(".png"):
                continue
            image = np.asarray(Image.open(os.path.join(bsd68, name)))
            if image.shape == BM3D_SHAPE:
                return image.astype("float32") / 255.0, f"BSD68 {name}"
            if image.shape == BM3D_SHAPE[::-1]:
                return image.T.astype("float32") / 255.0, f"BSD68 {name}.T"
    camera = os.path.join(
        os.path.dirname(keras_rbdn.__file__), "assets", "camera.png"
    )
    image = np.asarray(Image.open(camera).convert("L"), "float32") / 255.0
    rows, cols = BM3D_SHAPE
    return image[:rows, :cols], "camera.png cropped"


def noisy_test_image():
    """`gray_test_image()` with noise of sigma `BM3D_SIGMA`, and its
    source."""
    image, source = gray_test_image()
    rng = np.random.default_rng(2)
    noisy = image + rng.normal(scale=BM3D_SIGMA / 255, size=image.shape)
    return noisy.astype("float32"), source


def bm3d_seconds(noisy, args):
    """Seconds of each of `args.bm3d_repeats` BM3D calls on `noisy` (a 2-D
    image), or a string saying why BM3D was not run."""
    if args.no_bm3d:
        return "skipped (--no-bm3d)"
    try:
        import bm3d
    except ImportError:
        return "not installed (pip install bm3d)"
    seconds = []
    for _ in range(args.bm3d_repeats):
        start = time.perf_counter()
        bm3d.bm3d(noisy, sigma_psd=BM3D_SIGMA / 255)
        seconds.append(time.perf_counter() - start)
    return seconds


def single_image(models, args):
    """Seconds per 481x321 gray image: RBDN-3 (batch 1) and BM3D."""
    noisy, source = noisy_test_image()
    model = models["RBDN-3"]
    batch = noisy[None, :, :, None]
    times = alternate(
        {"RBDN-3": lambda: model.predict_on_batch(batch)},
        args.warmup,
        args.repeats,
    )["RBDN-3"]
    result = {"source": source, "RBDN-3": statistics.median(times)}
    bm3d_times = bm3d_seconds(noisy, args)
    if isinstance(bm3d_times, str):
        result["BM3D"] = bm3d_times
        return result
    result["BM3D"] = statistics.median(bm3d_times)
    result["BM3D_all"] = bm3d_times
    return result


# --- Report ------------------------------------------------------------------


def record(text, output, default_name):
    """Prints a Markdown report and writes it to `output`.

    `None` writes `benchmarks/results/<default_name>`; `"-"` writes
    nothing. Returns the path written, or `None`.
    """
    print(text)
    if output == "-":
        return None
    path = output or os.path.join(RESULTS_DIR, default_name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    print(f"written: {path}")
    return path


def format_section(title, unit, rows, ratio):
    lines = [
        f"| {title} | {unit}, median | min | max | seconds per call |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['median']:.3f} | {row['min']:.3f} | "
            f"{row['max']:.3f} | {row['seconds']:.3f} |"
        )
    lines.append(
        f"| **ratio RBDN/DnCNN** | **{ratio['of_medians']:.2f}x** "
        f"(median of per-pair ratios {ratio['median_pair']:.2f}x) | | | |"
    )
    return lines


def report(args, results, loads, elapsed):
    backend = keras.backend.backend()
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"# Speed: RBDN-3 vs DnCNN-17, {backend}, {args.precision}",
        "",
        f"- date: {now:%Y-%m-%d %H:%M} UTC",
        f"- command: `KERAS_BACKEND={backend} python benchmarks/speed.py "
        + " ".join(sys.argv[1:])
        + "`",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}",
        f"- device: {accelerator()}",
        f"- versions: {versions_text()}",
        f"- source revision: {source_revision()}",
        *tuning_environment_lines(),
        f"- precision policy: {args.precision}; jit_compile={args.jit}",
        "- batch normalization at inference: "
        + (
            "folded into the convolutions in both networks "
            "(`--fold-batch-norm`; training keeps it)"
            if args.fold_batch_norm
            else "as built (separate layers)"
        ),
        f"- warm-up calls: {args.warmup}; timed calls per network: "
        f"{args.repeats}, alternating between the networks",
        "- load average (1, 5, 15 min): "
        + "; ".join(f"{k}: {v}" for k, v in loads.items()),
        f"- wall time of the benchmark: {elapsed:.0f} s",
    ]
    if args.label:
        lines.append(f"- note: {args.label}")
    if "inference" in results:
        lines += [
            "",
            f"## Inference, batch {args.infer_batch} x "
            f"{args.infer_size}x{args.infer_size} x 1 (`predict_on_batch`)",
            "",
        ]
        lines += format_section("network", "MP/s", *results["inference"])
    if "device inference" in results:
        lines += [
            "",
            f"## Inference on the device, batch {args.infer_batch} x "
            f"{args.infer_size}x{args.infer_size} x 1 (JAX: jitted "
            "`stateless_call`, the batch already on the device, no copies)",
            "",
        ]
        lines += format_section("network", "MP/s", *results["device inference"])
    if "training" in results:
        lines += [
            "",
            f"## Training, batch {args.train_batch} x "
            f"{args.train_size}x{args.train_size} x 1 ("
            + (
                f"`fit`, {args.fit_steps} steps per timed call"
                if args.fit_steps
                else "`train_on_batch`"
            )
            + ", Adam, MSE)",
            "",
        ]
        lines += format_section("network", "crops/s", *results["training"])
    if "image" in results:
        image = results["image"]
        lines += [
            "",
            f"## One {BM3D_SHAPE[1]}x{BM3D_SHAPE[0]} gray image "
            f"({image['source']}, sigma {BM3D_SIGMA:g})",
            "",
            "| method | seconds per image, median |",
            "|---|---|",
            f"| RBDN-3 (batch 1) | {image['RBDN-3']:.4f} |",
        ]
        if isinstance(image["BM3D"], float):
            all_times = ", ".join(f"{t:.2f}" for t in image["BM3D_all"])
            lines += [
                f"| BM3D (`bm3d.bm3d`, sigma_psd={BM3D_SIGMA:g}/255; "
                f"runs: {all_times}) | {image['BM3D']:.2f} |",
                f"| **BM3D / RBDN-3** | "
                f"**{image['BM3D'] / image['RBDN-3']:.1f}x** |",
            ]
        else:
            lines.append(f"| BM3D | {image['BM3D']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    skip = {part for part in args.skip.split(",") if part}
    start = time.perf_counter()
    loads = {"start": load_average()}
    models = build_models(args)
    predicting = inference_models(models, args)
    results = {}
    if "inference" not in skip:
        results["inference"] = inference(predicting, args)
        if keras.backend.backend() == "jax":
            results["device inference"] = device_inference(predicting, args)
        loads["after inference"] = load_average()
    if "training" not in skip:
        results["training"] = training(models, args)
        loads["after training"] = load_average()
    if "image" not in skip:
        results["image"] = single_image(predicting, args)
        loads["after image"] = load_average()
    text = report(args, results, loads, time.perf_counter() - start)
    record(
        text,
        args.output,
        f"speed_{keras.backend.backend()}_{args.precision}_"
        f"{datetime.date.today():%Y%m%d}.md",
    )


if __name__ == "__main__":
    main()
