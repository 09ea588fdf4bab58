"""Evaluate the RBDN models: the tables of `docs/results.md`.

Run:

    KERAS_BACKEND=jax python recipes/evaluate.py --data ../shared/data \
        --output results/evaluation.md

Sections (each only for the models given, shipped names or `.keras` files):

- Denoising (`--denoise`, default the shipped `denoise`): PSNR / SSIM on
  BSD68 and Set12 at sigma 15, 25 and 50 (0-255 scale), with fixed noise
  seeds so that every run sees the same noisy images, next to the noisy
  input, BM3D measured live (`--bm3d`, needs `pip install bm3d`; about 5 s
  an image) and the quoted reference rows (BM3D, DnCNN-B, DRUNet, the RBDN
  paper), labelled as quoted.
- Relighting (`--relight`): PSNR / SSIM on the held-out Yale B subjects
  (the same seeded subject split as `train_relight.py`) against the
  identity baseline (the input face as it is).
- Colorization (`--colorize`): PSNR / SSIM against the originals and mean
  CIELAB chroma on CBSD68, against the gray baseline.

The Markdown is printed and, with `--output`, written atomically.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_rbdn  # noqa: E402
from keras_rbdn import evaluation  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--denoise", nargs="*", default=["denoise"])
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
    parser.add_argument("--validation-subjects", type=float, default=0.2)
    parser.add_argument("--relight-seed", type=int, default=0)
    parser.add_argument("--output")
    return parser.parse_args(argv)


def denoising_section(args):
    rows = {}
    methods = {
        name: evaluation.model_denoiser(keras_rbdn.load(name))
        for name in args.denoise
    }
    methods["noisy input"] = None
    if args.bm3d:
        bm3d = evaluation.bm3d_denoiser()
        if bm3d is None:
            print("--bm3d: the `bm3d` package is not installed; skipped")
        else:
            methods["BM3D (bm3d package, measured)"] = bm3d
    seconds = {}
    for method, denoise in methods.items():
        label = method if "measured" in method else f"{method} (measured)"
        rows[label] = {}
        for name in evaluation.DENOISE_SETS:
            folder = os.path.join(args.data, "denoise", name)
            results = evaluation.evaluate_denoiser(
                denoise, folder, args.sigmas, seed=args.seed, limit=args.limit
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
                )
            )
    table = evaluation.denoising_table(rows, sigmas=tuple(args.sigmas))
    timing = "; ".join(
        f"{label}: {sum(values) / len(values):.2f} s"
        for label, values in seconds.items()
        if "noisy" not in label
    )
    return (
        "## Denoising (gray, PSNR dB / SSIM)\n\n"
        f"Noise seed {args.seed}; backend {keras.backend.backend()}; mean "
        f"time per image: {timing}.\n\n{table}\n"
    )


def relighting_section(args):
    directory = os.path.join(args.data, "relight")
    subjects = keras_rbdn.data.list_relight_subjects(directory)
    validation_subjects = args.validation_subjects
    if validation_subjects >= 1:
        validation_subjects = int(validation_subjects)
    _, held_out = keras_rbdn.data.split_relight_subjects(
        subjects, validation_subjects, seed=args.relight_seed
    )
    inputs, targets = keras_rbdn.data.load_relight_arrays(directory, held_out)
    inputs, targets = inputs[: args.limit], targets[: args.limit]
    lines = [
        "## Relighting (held-out Yale B subjects)\n",
        f"{len(inputs)} pairs of subjects {', '.join(held_out)}.\n",
        "| method | PSNR dB | SSIM |",
        "|---|---|---|",
    ]
    for name in [None, *args.relight]:
        model = None if name is None else keras_rbdn.load(name)
        result = evaluation.evaluate_relighter(model, inputs, targets)
        label = "identity (input as it is)" if name is None else name
        lines.append(
            f"| {label} | {result['psnr']:.2f} | {result['ssim']:.4f} |"
        )
        print(lines[-1])
    return "\n".join(lines) + "\n"


def colorization_section(args):
    folder = os.path.join(args.data, "color", "cbsd68")
    lines = [
        "## Colorization (CBSD68, from the gray image)\n",
        "| method | PSNR dB | SSIM | mean chroma (originals: {target}) |",
        "|---|---|---|---|",
    ]
    target = None
    for name in [None, *args.colorize]:
        model = None if name is None else keras_rbdn.load(name)
        result = evaluation.evaluate_colorizer(model, folder, limit=args.limit)
        target = result["target_chroma"]
        label = "gray (no color)" if name is None else name
        lines.append(
            f"| {label} | {result['psnr']:.2f} | "
            f"{result['ssim']:.4f} | {result['chroma']:.2f} |"
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
