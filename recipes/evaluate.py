"""Evaluate the RBDN models: the tables of `docs/results.md`.

Run:

    KERAS_BACKEND=jax python recipes/evaluate.py --data ../shared/data \
        --output results/evaluation.md

Sections (each only for the models given: shipped names, `.keras` files,
or `NAME=PATH.weights.h5`, a shipped model's architecture with other
weights, such as a fine-tuning's `--export`):

- Denoising (`--denoise`, default the shipped `denoise`): PSNR / SSIM on
  BSD68 and Set12 at sigma 15, 25 and 50 (0-255 scale), with fixed noise
  seeds so that every run sees the same noisy images, one table per noise
  protocol of `--protocols` (`float`: not clipped, the papers' protocol;
  `uint8`: clipped and rounded to 8 bits, as in a PNG), for each
  geometric self-ensemble size of `--ensemble` (default 1), next to the
  noisy input, BM3D measured live (`--bm3d`, needs `pip install bm3d`;
  about 5 s an image, so on the first `--bm3d-limit` images) and, under
  the float protocol, the quoted reference rows (BM3D, DnCNN-B, DRUNet,
  the RBDN paper), labelled as quoted.
- Color denoising (`--color-denoise`, e.g. the gray `denoise`): the same
  on CBSD68. A gray
  model runs in the opponent color space for each `--ensemble` size, and
  per channel (R, G, B) at ensemble 1 as the baseline; an RGB model
  (such as an `OpponentDenoiser` `.keras` file) for each `--ensemble`
  size; CBM3D measured live with `--bm3d` (about 25 s an image, so on the
  first `--bm3d-limit` images) and CBM3D / CDnCNN-B quoted from the DnCNN
  paper.
- Relighting (`--relight`): PSNR / SSIM on the held-out Yale B subjects
  (the same seeded subject split as `train_relight.py`) against the
  identity baseline (the input face as it is), scored against the
  canonical images as stored and aligned onto each subject's inputs
  (`--relight-targets`); then per held-out subject,
  the worst subject's gain, and the gain on the inputs lit within 15
  degrees of frontal, with how many of them come out worse.
- Colorization (`--colorize`): PSNR / SSIM against the originals, the AuC
  of the per-pixel ab-error curve (thresholds 0-150, Zhang et al. 2016)
  and the mean CIELAB chroma on CBSD68, against the gray baseline.

Relighting and colorization run each model at each `--ensemble` size too;
only 1 and 2 (the mirror) are symmetries of their upright images.

The Markdown is printed and, with `--output`, written atomically.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_rbdn  # noqa: E402
from keras_rbdn import evaluation  # noqa: E402
from keras_rbdn.self_ensemble import ENSEMBLE_SIZES  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--denoise", nargs="*", default=["denoise"])
    parser.add_argument("--color-denoise", nargs="*", default=[])
    parser.add_argument(
        "--ensemble",
        type=int,
        nargs="+",
        default=[1],
        choices=ENSEMBLE_SIZES,
        help="self-ensemble sizes to evaluate (flips and rotations)",
    )
    parser.add_argument(
        "--protocols",
        nargs="+",
        default=["float"],
        choices=evaluation.NOISE_PROTOCOLS,
        help="noise protocols of the denoising tables (float: not clipped; "
        "uint8: clipped and rounded to 8 bits), one table each",
    )
    parser.add_argument("--relight", nargs="*", default=[])
    parser.add_argument("--colorize", nargs="*", default=[])
    parser.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=list(evaluation.DENOISE_SIGMAS),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="first N images of each set (quick checks)",
    )
    parser.add_argument("--bm3d", action="store_true")
    parser.add_argument(
        "--bm3d-limit",
        type=int,
        default=None,
        help="first N images of each set for BM3D and CBM3D, which are slow",
    )
    parser.add_argument("--validation-subjects", type=float, default=0.2)
    parser.add_argument("--relight-seed", type=int, default=0)
    parser.add_argument(
        "--relight-targets",
        nargs="+",
        choices=sorted(TARGET_KINDS),
        default=["stored", "aligned"],
        help="score relighting against the canonical images as stored, "
        "and/or aligned onto each subject's inputs",
    )
    parser.add_argument("--output")
    return parser.parse_args(argv)


def _bm3d_method(args, label):
    """`{label: BM3D denoiser}` with `--bm3d` and the package, else `{}`."""
    if not args.bm3d:
        return {}
    bm3d = evaluation.bm3d_denoiser()
    if bm3d is None:
        print("--bm3d: the `bm3d` package is not installed; skipped")
        return {}
    return {label: bm3d}


def _measure(methods, folders, args, mode="gray", protocol="float"):
    """Rows for `evaluation.denoising_table` and mean seconds per method.

    `methods` maps a label to a `(denoiser, limit)` pair.
    """
    rows, seconds = {}, {}
    for label, (denoise, limit) in methods.items():
        rows[label] = {}
        for name, folder in folders.items():
            results = evaluation.evaluate_denoiser(
                denoise,
                folder,
                args.sigmas,
                seed=args.seed,
                limit=limit,
                mode=mode,
                protocol=protocol,
            )
            rows[label][name] = results
            seconds.setdefault(label, []).extend(
                result["seconds"] for result in results.values()
            )
            print(
                f"{label} {name}: "
                + ", ".join(
                    f"s={sigma:g} {result['psnr']:.2f} dB"
                    for sigma, result in results.items()
                ),
                flush=True,
            )
    timing = "; ".join(
        f"{label}: {sum(values) / len(values):.2f} s"
        for label, values in seconds.items()
        if "noisy" not in label
    )
    return rows, timing


def _bm3d_limit(args):
    """How many images of each set BM3D / CBM3D run on (about 5 / 25 s
    an image)."""
    return min(args.bm3d_limit or 68, args.limit or 68)


def _protocol_tables(methods, folders, args, mode, title, references):
    """One denoising table per noise protocol of `--protocols`; quoted
    `references` only under the papers' float protocol."""
    sections = []
    for protocol in args.protocols:
        rows, timing = _measure(methods, folders, args, mode, protocol)
        table = evaluation.denoising_table(
            rows,
            sets=tuple(folders),
            sigmas=tuple(args.sigmas),
            references=references if protocol == "float" else {},
        )
        sections.append(
            f"## {title}, {protocol} noise, PSNR dB / SSIM)\n\nNoise seed "
            f"{args.seed}; backend {keras.backend.backend()}; mean time per "
            f"image: {timing}.\n\n{table}\n"
        )
    return "\n".join(sections)


def load_model(spec):
    """`keras_rbdn.load` of a model argument: a shipped name, a `.keras`
    file, or `NAME=PATH.weights.h5`."""
    name, _, weights = spec.partition("=")
    return keras_rbdn.load(name, weights=weights or None)


def denoising_section(args):
    methods = {}
    for name in args.denoise:
        model = load_model(name)
        for ensemble in args.ensemble:
            denoise = evaluation.model_denoiser(model, ensemble=ensemble)
            label = f"{name}, ensemble {ensemble} (measured)"
            methods[label] = (denoise, args.limit)
    methods["noisy input (measured)"] = (None, args.limit)
    bm3d_limit = _bm3d_limit(args)
    for label, bm3d in _bm3d_method(
        args, f"BM3D (bm3d package, first {bm3d_limit} images, measured)"
    ).items():
        methods[label] = (bm3d, bm3d_limit)
    folders = {
        name: os.path.join(args.data, "denoise", name)
        for name in evaluation.DENOISE_SETS
    }
    return _protocol_tables(
        methods,
        folders,
        args,
        "gray",
        "Denoising (gray",
        evaluation.REFERENCE_DENOISING,
    )


def color_denoising_section(args):
    methods = {}
    for name in args.color_denoise:
        model = load_model(name)
        gray = model.input_shape[-1] == 1
        for ensemble in args.ensemble:
            space = ", opponent" if gray else ""
            label = f"{name}{space}, ensemble {ensemble} (measured)"
            methods[label] = (
                evaluation.model_denoiser(model, ensemble=ensemble),
                args.limit,
            )
        if gray:
            label = f"{name}, per channel, ensemble 1 (measured)"
            methods[label] = (
                evaluation.model_denoiser(model, color_space="per_channel"),
                args.limit,
            )
    methods["noisy input (measured)"] = (None, args.limit)
    bm3d_limit = _bm3d_limit(args)
    for label, bm3d in _bm3d_method(
        args, f"CBM3D (bm3d package, first {bm3d_limit} images, measured)"
    ).items():
        methods[label] = (bm3d, bm3d_limit)
    folders = {"cbsd68": os.path.join(args.data, "color", "cbsd68")}
    return _protocol_tables(
        methods,
        folders,
        args,
        "rgb",
        "Color denoising (CBSD68",
        evaluation.REFERENCE_COLOR_DENOISING,
    )


# Inputs lit within this many degrees of frontal (azimuth and elevation):
# already close to the target, they should not come out worse.
NEAR_FRONTAL_DEGREES = keras_rbdn.data.NEAR_FRONTAL_DEGREES
# `--relight-targets`: what relit faces are scored against.
TARGET_KINDS = {
    "stored": "each subject's canonical image as the database stores it",
    "aligned": "each subject's canonical image moved onto its inputs "
    "(`keras_rbdn.data.canonical_offset`; the database crops it apart)",
}


def relighting_section(args):
    directory = os.path.join(args.data, "relight")
    subjects = keras_rbdn.data.list_relight_subjects(directory)
    validation_subjects = args.validation_subjects
    if validation_subjects >= 1:
        validation_subjects = int(validation_subjects)
    _, held_out = keras_rbdn.data.split_relight_subjects(
        subjects, validation_subjects, seed=args.relight_seed
    )
    # Each model relights the faces once (the inputs are the same for
    # every kind of target); each kind of target scores them.
    tables = []
    for kind in args.relight_targets:
        inputs, targets = keras_rbdn.data.load_relight_arrays(
            directory, held_out, align_targets=kind == "aligned"
        )
        inputs, targets = inputs[: args.limit], targets[: args.limit]
        tables.append(
            RelightingTables(directory, held_out, kind, inputs, targets)
        )
    for name, ensemble in model_runs(args.relight, args):
        outputs = evaluation.relight_faces(
            load_model(name), inputs, ensemble=ensemble
        )
        for table in tables:
            table.add(f"{name}, ensemble {ensemble}", outputs)
    return "\n".join(table.text() for table in tables)


class RelightingTables:
    """The relighting tables against the canonical images `kind`: as
    `"stored"`, or `"aligned"` onto each subject's inputs, starting with
    the identity baseline (the input face as it is)."""

    def __init__(self, directory, held_out, kind, inputs, targets):
        self.held_out, self.targets = held_out, targets
        # The same pairs in the same order as the arrays.
        pairs = keras_rbdn.data.list_relight_pairs(directory, held_out)
        pairs = pairs[: len(targets)]
        self.pair_subjects = np.array([subject for subject, _, _ in pairs])
        frontal_paths = {
            path
            for _, path, _ in keras_rbdn.data.list_relight_pairs(
                directory, held_out, within_degrees=NEAR_FRONTAL_DEGREES
            )
        }
        self.near_frontal = np.array(
            [path in frontal_paths for _, path, _ in pairs]
        )
        self.lines = [
            f"## Relighting (held-out Yale B subjects, {kind} targets)\n",
            f"{len(targets)} pairs of subjects {', '.join(held_out)}, "
            f"against {TARGET_KINDS[kind]}.\n",
            "| method | PSNR dB | SSIM |",
            "|---|---|---|",
        ]
        self.per_subject = [
            "",
            "Per held-out subject, PSNR dB (gain over the input); "
            f"near-frontal: the {self.near_frontal.sum()} inputs lit within "
            f"{NEAR_FRONTAL_DEGREES} degrees of frontal, with how many come "
            "out worse than they went in.\n",
            "| method | " + " | ".join(held_out) + " | worst gain | "
            "near-frontal gain | near-frontal made worse |",
            "|---|" + "---|" * (len(held_out) + 3),
        ]
        self.identity = evaluation.score_relit_faces(inputs, targets)
        self.lines.append(
            f"| identity (input as it is) | {self.identity['psnr']:.2f} | "
            f"{self.identity['ssim']:.4f} |"
        )
        print(self.lines[-1])

    def add(self, label, outputs):
        """The rows of `outputs`, relit faces in the pairs' order."""
        result = evaluation.score_relit_faces(outputs, self.targets)
        self.lines.append(
            f"| {label} | {result['psnr']:.2f} | {result['ssim']:.4f} |"
        )
        print(self.lines[-1])
        gain = result["pair_psnr"] - self.identity["pair_psnr"]
        cells, gains = [], []
        for subject in self.held_out:
            own = self.pair_subjects == subject
            gains.append(gain[own].mean())
            cells.append(
                f"{result['pair_psnr'][own].mean():.2f} ({gains[-1]:+.2f})"
            )
        near = self.near_frontal
        frontal_gain = f"{gain[near].mean():+.2f}" if near.any() else "-"
        self.per_subject.append(
            f"| {label} | " + " | ".join(cells) + f" | {min(gains):+.2f} | "
            f"{frontal_gain} | {int((gain[near] < 0).sum())} |"
        )
        print(self.per_subject[-1])

    def text(self):
        return "\n".join(self.lines + self.per_subject) + "\n"


def model_runs(names, args):
    """`(name, ensemble)` for each model of `names` and `--ensemble` size."""
    return [(name, ensemble) for name in names for ensemble in args.ensemble]


def colorization_section(args):
    folder = os.path.join(args.data, "color", "cbsd68")
    lines = [
        "## Colorization (CBSD68, from the gray image)\n",
        "| method | PSNR dB | SSIM | ab-error AuC | mean chroma "
        "(originals: {target}) |",
        "|---|---|---|---|---|",
    ]
    target = None
    for name, ensemble in [(None, 1), *model_runs(args.colorize, args)]:
        model = None if name is None else load_model(name)
        result = evaluation.evaluate_colorizer(
            model, folder, limit=args.limit, ensemble=ensemble
        )
        target = result["target_chroma"]
        label = "gray (no color)"
        if name is not None:
            label = f"{name}, ensemble {ensemble}"
        lines.append(
            f"| {label} | {result['psnr']:.2f} | "
            f"{result['ssim']:.4f} | {100 * result['auc']:.2f}% | "
            f"{result['chroma']:.2f} |"
        )
        print(lines[-1])
    lines[1] = lines[1].format(target=f"{target:.2f}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    sections = []
    if args.denoise:
        sections.append(denoising_section(args))
    if args.color_denoise:
        sections.append(color_denoising_section(args))
    if args.relight:
        sections.append(relighting_section(args))
    if args.colorize:
        sections.append(colorization_section(args))
    text = "\n".join(sections)
    text += f"\nEvaluated in {time.perf_counter() - start:.0f} s.\n"
    print(text)
    if args.output:
        evaluation.write_text(args.output, text)
        print(f"Wrote {args.output}")
    return text


if __name__ == "__main__":
    main()
