"""`keras-rbdn`: denoise, relight and colorize image files from the shell.

    keras-rbdn denoise photo.png -o clean.png
    keras-rbdn relight faces/*.png --output-dir relit/
    keras-rbdn colorize old.jpg --model colorize_lab
    keras-rbdn evaluate --data ../shared/data --output results.md
    keras-rbdn export --model denoise --output savedmodels

Images of any size are accepted (large ones go through overlapping tiles),
gray, RGB or RGBA (alpha kept), 8 or 16 bits. Outputs keep the input's
metadata and encoding where their format holds them: EXIF (orientation
included: pixels are processed as stored), ICC profile (not a gray one on
the colorizers' RGB output), DPI, PNG text, JPEG quantization tables and
subsampling (`--quality` sets a quality instead; 95 for other inputs),
lossless WebP, TIFF compression and 16 bits (`keras_rbdn.data.writing`
has the details per format). `denoise` runs the RGB
denoiser `denoise_color` on RGB images where the install ships it, and on
8-bit files the variant trained on 8-bit noise (`denoise_8bit`,
`denoise_color_8bit`; `keras_rbdn.presets.for_bit_depth`); a gray
model denoises an RGB image in the opponent color space (`--color-space`).
Unless `--ensemble` says otherwise, `denoise` averages the model over 4
rotations of each image, and `relight` and `colorize` over the image and
its mirror (faces and scenes are upright: they take only 1 or 2). On a
terminal, a progress bar on stderr shows the time
left (`--quiet`: none). Outputs are written
atomically and never replace an existing file without `--overwrite`; the
input is never modified. Errors are one line on stderr and a non-zero exit
status.
"""

import argparse
import contextlib
import os
import sys

# Importing this module imports the package first, which imports Keras
# quietly for the command line (`keras_rbdn._quiet_start`).
import keras

import keras_rbdn
from keras_rbdn.channels import COLOR_SPACES
from keras_rbdn.data import writing
from keras_rbdn.self_ensemble import ENSEMBLE_SIZES
from keras_rbdn.training import PRECISIONS

# `--ensemble` of the image commands: the sizes each accepts and its
# default (docs/results.md has the measurements). Denoising has all eight
# symmetries, and 4 gives most of the quality of 8 at half its time. Faces
# and scenes are upright: only the mirror is a symmetry of relighting and
# colorization, and averaging over the four rotations makes both worse
# than no ensemble (by 1.9 dB and 0.1 dB).
ENSEMBLES = {
    "denoise": (ENSEMBLE_SIZES, 4),
    "relight": ((1, 2), 2),
    "colorize": ((1, 2), 2),
}

# The shipped RGB denoiser that `keras-rbdn denoise` runs on RGB images
# when it is in this install (gray images go through `denoise`).
RGB_DENOISER = "denoise_color"

# What the image commands' outputs keep, for their --help.
KEPT = (
    "Each output keeps its input's EXIF (orientation included: pixels are "
    "processed as stored), ICC profile (a gray one is left off colorized "
    "RGB), DPI, PNG text and encoding (JPEG quantization tables and "
    "subsampling, lossless WebP, TIFF compression, 16 bits) where its "
    "format holds them; the format is the output's extension."
)

COMMANDS = {
    # command: (default model, default task, output suffix, help)
    "denoise": ("denoise", "denoise", "_denoised", "remove Gaussian noise"),
    "relight": ("relight", "relight", "_relit", "relight faces"),
    # The colorizer closest to the originals on CBSD68 (PSNR and ab-error
    # AuC, docs/results.md); `--model colorize_lab` gives more vivid colors.
    "colorize": (
        "colorize_ycbcr",
        "colorize_ycbcr",
        "_colorized",
        "colorize gray images",
    ),
}


def _load_in_precision(name, task, precision):
    """`keras_rbdn.load` with the layers built in `precision`.

    Only a shipped model is built here; a `.keras` file keeps the precision
    it was saved with, so any other precision is refused for it. The
    global dtype policy is restored afterwards.
    """
    if name not in keras_rbdn.presets.PRESETS:
        if precision != "float32" and os.path.isfile(name):
            raise ValueError(
                f"--precision {precision} applies to the shipped models "
                f"({', '.join(sorted(keras_rbdn.presets.PRESETS))}); "
                f"{name} keeps the precision it was saved with"
            )
        # A model file in its own precision, or a name that the loader
        # rejects with its own error.
        return keras_rbdn.load(name, task=task)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        return keras_rbdn.load(name, task=task)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _load_model(args, name, task):
    """The model to run: loaded in `--precision`, folded if
    `--fold-batch-norm`."""
    model = _load_in_precision(name, task, args.precision)
    if args.fold_batch_norm:
        model = keras_rbdn.fold_batch_norm(model)
    return model


def _add_precision_flag(parser):
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="compute in float32 (default) or in a mixed precision, for "
        "the shipped models: mixed_bfloat16 ran the denoiser 1.5x faster "
        "with TensorFlow on a CPU with AMX-BF16, its PSNR within 0.05 dB, "
        "but 1.6-4x slower on CPUs without AMX",
    )


def _add_fold_flag(parser, use, default=False):
    parser.add_argument(
        "--fold-batch-norm",
        action=argparse.BooleanOptionalAction,
        default=default,
        help="fold batch normalization into the convolutions: about 15%% "
        f"faster {use} with TensorFlow on a CPU, the same function up to "
        f"float rounding (default: {'on' if default else 'off'})",
    )


def _add_ensemble_flag(parser, default, choices=ENSEMBLE_SIZES):
    meanings = {1: "none", 2: "mirror", 4: "rotations", 8: "all"}
    parser.add_argument(
        "--ensemble",
        type=int,
        choices=choices,
        default=default,
        help="average the model over N flips and rotations of each image "
        f"({', '.join(f'{n}: {meanings[n]}' for n in choices)}): N times "
        f"slower, usually cleaner (default: {default})",
    )


def _add_color_space_flag(parser):
    parser.add_argument(
        "--color-space",
        choices=COLOR_SPACES,
        default="opponent",
        help="how a gray model processes an RGB image: in the orthonormal "
        "opponent color space (default) or R, G and B separately",
    )


def _quality(text):
    """`--quality`: an int from 1 to 100."""
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(
            f"must be an integer from 1 to 100, not {text!r}"
        )
    return int(text)


def _output_path(args, input_path, suffix):
    if args.output is not None:
        return args.output
    stem, extension = os.path.splitext(os.path.basename(input_path))
    if args.output_dir is not None:
        return os.path.join(args.output_dir, stem + extension)
    directory = os.path.dirname(input_path)
    return os.path.join(directory, stem + suffix + extension)


def _default_model(command, default_model, channels, bit_depth=8):
    """The shipped model a command runs on an image file of `channels` and
    `bit_depth` bits per channel: for `denoise`, the RGB denoiser on RGB
    images and, on 8-bit files, the denoiser trained on 8-bit noise, where
    this install ships them (`keras_rbdn.presets.for_bit_depth`)."""
    if command != "denoise":
        return default_model
    name = default_model
    if channels == 3 and RGB_DENOISER in keras_rbdn.presets.available():
        name = RGB_DENOISER
    return keras_rbdn.presets.for_bit_depth(name, bit_depth)


class _AboveTheBars:
    """A stdout whose lines print above the progress bars on stderr."""

    def __init__(self, stream):
        self.stream = stream
        self.pending = ""

    def write(self, text):
        from tqdm import tqdm

        self.pending += text
        if "\n" in self.pending:
            lines, self.pending = self.pending.rsplit("\n", 1)
            with tqdm.external_write_mode(file=sys.stderr):
                self.stream.write(lines + "\n")
                self.stream.flush()

    def flush(self):
        self.stream.flush()


def _files(jobs, show):
    """Yields `(number, job)` pairs; with `show` and several jobs, under a
    bar over the files, with stdout printed above it."""
    from tqdm import tqdm

    if not show or len(jobs) < 2:
        yield from enumerate(jobs, start=1)
        return
    bar = tqdm(total=len(jobs), desc="files", unit="file", file=sys.stderr)
    with bar, contextlib.redirect_stdout(_AboveTheBars(sys.stdout)):
        for number, job in enumerate(jobs, start=1):
            yield number, job
            bar.update()


def _run_images(args):
    from keras_rbdn import inference

    default_model, default_task, suffix, _ = COMMANDS[args.command]
    if args.output is not None and len(args.inputs) > 1:
        raise ValueError(
            "-o/--output takes one input image; use --output-dir for "
            f"{len(args.inputs)} inputs"
        )
    if args.output_dir is not None:
        os.makedirs(args.output_dir, exist_ok=True)
    # Check every input and output before the (slow) model load.
    jobs = []
    for input_path in args.inputs:
        output_path = _output_path(args, input_path, suffix)
        if os.path.abspath(output_path) == os.path.abspath(input_path):
            raise inference.ImageError(
                f"{output_path}: is the input; choose another output"
            )
        if os.path.exists(output_path) and not args.overwrite:
            raise inference.ImageError(
                f"{output_path}: already exists (pass --overwrite)"
            )
        writing.output_format(output_path)
        image = inference.read_image(input_path)
        jobs.append((input_path, output_path, image))
    models = {}
    show = not args.quiet and sys.stderr.isatty()
    for index, (input_path, output_path, image) in _files(jobs, show):
        name = args.model or _default_model(
            args.command, default_model, image.channels, image.bit_depth
        )
        if name not in models:
            models[name] = _load_model(args, name, args.task or default_task)
        label = f"[{index}/{len(jobs)}] {os.path.basename(input_path)}"
        pixels = inference.apply_model(
            models[name],
            image.pixels,
            progress=show and label,
            tile_size=args.tile_size,
            color_space=args.color_space,
            ensemble=args.ensemble,
        )
        inference.write_image(
            output_path,
            pixels,
            alpha=image.alpha,
            overwrite=args.overwrite,
            like=image,
            quality=args.quality,
        )
        print(f"{input_path} -> {output_path} ({name})")
    return 0


def _run_evaluate(args):
    from keras_rbdn import evaluation

    model = _load_in_precision(args.model, "denoise", args.precision)
    rows = {f"{args.model} (measured)": {}, "noisy input (measured)": {}}
    for name in evaluation.DENOISE_SETS:
        folder = os.path.join(args.data, "denoise", name)
        rows[f"{args.model} (measured)"][name] = evaluation.evaluate_denoiser(
            evaluation.model_denoiser(
                model, tile_size=args.tile_size, ensemble=args.ensemble
            ),
            folder,
            sigmas=args.sigmas,
            seed=args.seed,
            limit=args.limit,
        )
        rows["noisy input (measured)"][name] = evaluation.evaluate_denoiser(
            None, folder, sigmas=args.sigmas, seed=args.seed, limit=args.limit
        )
    table = evaluation.denoising_table(rows, sigmas=tuple(args.sigmas))
    print(table)
    if args.output:
        evaluation.write_text(args.output, table + "\n", args.overwrite)
    return 0


def _run_export(args):
    model = _load_model(args, args.model, args.task)
    name = args.name
    if name is None and args.model in keras_rbdn.presets.PRESETS:
        name = args.model
    path = keras_rbdn.export(
        model,
        args.output,
        version=args.version,
        name=name,
        format=args.format,
        color_space=args.color_space,
        ensemble=args.ensemble,
        overwrite=args.overwrite,
    )
    print(path)
    return 0


def _parser():
    parser = argparse.ArgumentParser(
        prog="keras-rbdn",
        description="RBDN image-to-image models: denoise, relight, "
        "colorize, evaluate, export.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, (model, _, suffix, help_text) in COMMANDS.items():
        sub = commands.add_parser(
            command,
            help=help_text,
            description=f"{help_text.capitalize()}. {KEPT}",
        )
        sub.add_argument("inputs", nargs="+", help="input image files")
        target = sub.add_mutually_exclusive_group()
        target.add_argument(
            "-o", "--output", help="output file (one input only)"
        )
        target.add_argument(
            "--output-dir",
            help=f"folder for the outputs (default: next to each input, "
            f"named <name>{suffix}.<ext>)",
        )
        default = model
        if command == "denoise":
            default = (
                f"{model}; {RGB_DENOISER} for RGB images; on 8-bit files "
                "their 8-bit variants, trained on clipped and rounded "
                "noise: where shipped"
            )
        sub.add_argument(
            "--model",
            help=f"shipped model name or .keras file (default: {default})",
        )
        sub.add_argument(
            "--task", help="task of a bare RBDN in a .keras --model file"
        )
        sub.add_argument(
            "--tile-size",
            type=int,
            help="largest tile side (default: tiles sized from the image "
            "and the memory available)",
        )
        sub.add_argument(
            "--quality",
            type=_quality,
            metavar="1-100",
            help="JPEG and WebP quality (default: a JPEG input's own "
            f"quantization tables, a lossless input lossless, else "
            f"{writing.DEFAULT_QUALITY})",
        )
        choices, default = ENSEMBLES[command]
        _add_ensemble_flag(sub, default, choices)
        _add_color_space_flag(sub)
        _add_fold_flag(sub, "inference", default=True)
        _add_precision_flag(sub)
        sub.add_argument("--overwrite", action="store_true")
        sub.add_argument(
            "--quiet",
            action="store_true",
            help="no progress bar (it shows only when stderr is a terminal)",
        )
        sub.set_defaults(handler=_run_images)

    sub = commands.add_parser(
        "evaluate", help="denoising PSNR/SSIM table on BSD68 and Set12"
    )
    sub.add_argument("--model", default="denoise")
    sub.add_argument(
        "--data",
        default=os.path.join("..", "shared", "data"),
        help="data root holding denoise/bsd68 and denoise/set12",
    )
    sub.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--limit", type=int, help="first N images per set")
    sub.add_argument("--tile-size", type=int, default=1024)
    _add_ensemble_flag(sub, 1)
    _add_precision_flag(sub)
    sub.add_argument("--output", help="also write the table to this file")
    sub.add_argument("--overwrite", action="store_true")
    sub.set_defaults(handler=_run_evaluate)

    sub = commands.add_parser(
        "export", help="write a TF Serving SavedModel (or ONNX)"
    )
    sub.add_argument("--model", default="denoise")
    sub.add_argument("--task", help="task of a bare RBDN in a .keras file")
    sub.add_argument("--output", default="savedmodels")
    sub.add_argument("--name")
    sub.add_argument("--version", type=int, default=1)
    sub.add_argument(
        "--format", choices=("savedmodel", "onnx"), default="savedmodel"
    )
    _add_ensemble_flag(sub, 1)
    _add_color_space_flag(sub)
    _add_fold_flag(sub, "serving")
    sub.add_argument("--overwrite", action="store_true")
    # SavedModels are exported in float32.
    sub.set_defaults(handler=_run_export, precision="float32")
    return parser


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv=None):
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("keras-rbdn: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        print(
            f"keras-rbdn {args.command}: error: {_one_line(error)}",
            file=sys.stderr,
        )
        return 1
    except Exception as error:  # One line, never a traceback.
        print(
            f"keras-rbdn {args.command}: error: {type(error).__name__}: "
            f"{_one_line(error)}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
