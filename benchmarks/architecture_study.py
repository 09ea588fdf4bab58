"""The paper's architecture study, rerun small, on face relighting.

Santhanam et al., CVPR 2017, Section 3.3, 4.2.1 and Fig. 6: depth D;
K, c and T; branches 0-4; learnable vs bilinear upsampling; recursive vs
linear. Each variant is trained on Extended Yale B (cropped) faces,
every lighting of a subject mapped to its canonical lighting, validated
on held-out subjects. Writes `NAME.json` (the curves), `NAME.md` (a table
and a verdict per finding) and `NAME.png` (validation MSE per epoch, like
Fig. 6) to `benchmarks/results/` (`docs/architecture_study.md`):

    KERAS_BACKEND=tensorflow python benchmarks/architecture_study.py
    # only re-draw the table and plot from the saved JSON:
    python benchmarks/architecture_study.py --report-only

`python recipes/tune_architecture.py study ...` runs the same.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCHMARKS))

sys.path.insert(0, os.path.join(os.path.dirname(BENCHMARKS), "recipes"))

from architecture_findings import findings  # noqa: E402
from tune_architecture import add_data_flags  # noqa: E402
from tune_architecture import load_data  # noqa: E402

import keras_rbdn  # noqa: E402
import keras_rbdn.data  # noqa: E402

DEFAULT_RESULTS = os.path.join(BENCHMARKS, "results")
# The branch and Fig. 6 comparisons run before the minor K, c, T changes,
# so that a study cut short keeps the main findings.
RUN_ORDER = ("depth", "branches", "upsampling", "merge", "seed", "K, c, T")


def study_variants(filters, depths):
    """(group, label, build arguments) for every run of the study: the
    base network B_0 (K9-c-T3-D9) first, as in the paper's Section 3.3,
    then the branch count and the two Fig. 6 ablations on RBDN-3."""
    base = dict(branches=0, K=9, c=filters, T=3, D=9)
    variants = [("depth", f"B0 D={d}", dict(base, D=d)) for d in depths]
    variants += [
        ("K, c, T", "B0 K=5", dict(base, K=5)),
        ("K, c, T", "B0 K=9 (base)", base),
        ("K, c, T", "B0 T=5", dict(base, T=5)),
        ("K, c, T", f"B0 c={filters // 2}", dict(base, c=filters // 2)),
        ("K, c, T", f"B0 c={filters * 2}", dict(base, c=filters * 2)),
    ]
    variants += [
        ("branches", f"RBDN-{n}", dict(base, branches=n)) for n in range(5)
    ]
    rbdn3 = dict(base, branches=3)
    return variants + [
        ("upsampling", "RBDN-3 learnable", rbdn3),
        ("upsampling", "RBDN-3 bilinear", dict(rbdn3, upsampling="bilinear")),
        ("merge", "RBDN-3 recursive (concat)", rbdn3),
        ("merge", "RBDN-3 linear (no merge)", dict(rbdn3, merge="none")),
        ("seed", "RBDN-3 seed 2", dict(rbdn3, seed=1)),
        ("seed", "B0 D=9 seed 2", dict(base, seed=1)),
    ]


def group_id(group):
    """The name `--groups` takes: "K, c, T" is "kct"."""
    return "".join(ch for ch in group.lower() if ch.isalnum())


def run_key(arguments):
    return json.dumps(arguments, sort_keys=True)


def train_variant(arguments, data, args):
    (x, y), (x_val, y_val) = data
    arguments = dict(arguments)
    seed = args.seed + arguments.pop("seed", 0)
    keras.utils.set_random_seed(seed)
    model = keras_rbdn.build(task="relight", **arguments)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras_rbdn.TASKS["relight"].loss,
    )
    start = time.time()
    history = model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
    )
    result = {
        "params": model.count_params(),
        "loss": [float(v) for v in history.history["loss"]],
        "val_loss": [float(v) for v in history.history["val_loss"]],
        "seconds": time.time() - start,
        "seed": seed,
    }
    keras.backend.clear_session()
    return result


def run_study(args):
    data = load_data(args)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, f"{args.name}.json")
    record = {"settings": None, "runs": {}}
    if os.path.exists(path) and args.resume:
        with open(path) as file:
            record = json.load(file)
    (x, y), (x_val, y_val) = data
    record["settings"] = {
        "backend": keras.backend.backend(),
        "image_size": list(args.image_size),
        "train_pairs": int(len(x)),
        "validation_pairs": int(len(x_val)),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "filters": args.filters,
        "seed": args.seed,
        # Two trivial predictors, to read the networks' errors against.
        "identity_val_mse": float(np.mean((x_val - y_val) ** 2)),
        "mean_face_val_mse": float(np.mean((y.mean(axis=0) - y_val) ** 2)),
    }
    variants = study_variants(args.filters, args.depths)
    groups = args.groups.split(",") if args.groups else None
    in_order = sorted(variants, key=lambda v: RUN_ORDER.index(v[0]))
    for group, label, arguments in in_order:
        key = run_key(arguments)
        if (groups and group_id(group) not in groups) or key in record["runs"]:
            continue
        print(f"[{group}] {label}: {arguments}", flush=True)
        result = train_variant(arguments, data, args)
        record["runs"][key] = dict(result, arguments=arguments)
        print(
            f"    params {result['params']:,}  best val MSE "
            f"{min(result['val_loss']):.5f}  ({result['seconds']:.0f} s)",
            flush=True,
        )
        with open(path, "w") as file:
            json.dump(record, file, indent=1)
    write_report(record, variants, args.output_dir, args.name)


def table(record, variants):
    rows = [
        "| group | variant | params | best val MSE (epoch) | final val MSE "
        "| final train MSE | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, label, arguments in variants:
        run = record["runs"].get(run_key(arguments))
        if run is None:
            continue
        best = int(np.argmin(run["val_loss"]))
        rows.append(
            f"| {group} | {label} | {run['params']:,} | "
            f"{run['val_loss'][best]:.5f} ({best + 1}) | "
            f"{run['val_loss'][-1]:.5f} | {run['loss'][-1]:.5f} | "
            f"{run['seconds'] / len(run['loss']):.1f} |"
        )
    return rows


def plot(record, variants, path):
    """Validation MSE per epoch, one panel per group (the paper's Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = record["settings"]
    groups = list(dict.fromkeys(group for group, _, _ in variants))
    columns = 3
    figure, axes = plt.subplots(
        -(-len(groups) // columns),
        columns,
        figsize=(4.6 * columns, 3.6 * -(-len(groups) // columns)),
        sharey=True,
        squeeze=False,
    )
    axes = axes.ravel()
    for axis in axes[len(groups) :]:
        axis.set_visible(False)
    for axis, group in zip(axes, groups, strict=False):
        for variant_group, label, arguments in variants:
            run = record["runs"].get(run_key(arguments))
            if variant_group == group and run is not None:
                epochs = np.arange(1, len(run["val_loss"]) + 1)
                axis.plot(epochs, run["val_loss"], marker=".", label=label)
        if "mean_face_val_mse" in settings:
            axis.axhline(
                settings["mean_face_val_mse"],
                color="gray",
                linestyle="--",
                linewidth=1,
                label="mean training face",
            )
        axis.set_title(group)
        axis.set_xlabel("epoch")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_lines():
            axis.legend(fontsize=7)
    for axis in axes[::columns]:
        axis.set_ylabel("validation MSE (held-out subjects)")
    height, width = settings["image_size"]
    figure.suptitle(
        "RBDN architecture study, face relighting "
        f"({height}x{width}, {settings['backend']})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def related(output_dir, name):
    """Lines that point to the other runs of the study in `output_dir`."""
    lines = []
    for file_name in sorted(os.listdir(output_dir)):
        other, extension = os.path.splitext(file_name)
        if extension != ".json" or other == name:
            continue
        if not other.startswith("architecture_study"):
            continue
        with open(os.path.join(output_dir, file_name)) as file:
            record = json.load(file)
        lines.append(
            f"See also `{other}.md`: {len(record['runs'])} runs of the "
            f"same study with {record['settings']['epochs']} epochs."
        )
    return lines + [""] if lines else []


def best_mses(record, variants):
    """`{variant label: best validation MSE}` of the runs in `record`."""
    runs = record["runs"]
    return {
        label: min(runs[run_key(arguments)]["val_loss"])
        for _, label, arguments in variants
        if run_key(arguments) in runs
    }


def write_report(record, variants, output_dir, name):
    runs, s = record["runs"], record["settings"]
    depths = [
        arguments["D"] for group, _, arguments in variants if group == "depth"
    ]
    plot(record, variants, os.path.join(output_dir, f"{name}.png"))
    still_improving = sum(
        int(np.argmin(run["val_loss"])) == len(run["val_loss"]) - 1
        for run in runs.values()
    )
    baselines = []
    if "identity_val_mse" in s:
        baselines = [
            "For scale, on the same validation pairs: returning the input "
            f"unchanged scores {s['identity_val_mse']:.5f}; returning the "
            "mean canonical face of the training subjects scores "
            f"{s['mean_face_val_mse']:.5f}.",
            "",
        ]
    size = f"{s['image_size'][0]}x{s['image_size'][1]}"
    text = [
        "# RBDN architecture study (face relighting)",
        "",
        "Made by `benchmarks/architecture_study.py`; the raw curves are in "
        f"`{name}.json`, the plot in `{name}.png` "
        "(validation MSE vs epoch per variant, like the paper's Fig. 6).",
        "",
        "Settings: Extended Yale B (cropped), any lighting -> "
        f"`P00A+000E+00`, downscaled to {size} (box filter); "
        f"{s['train_pairs']} training pairs, {s['validation_pairs']} "
        f"validation pairs from held-out subjects; {s['epochs']} epochs, "
        f"batch {s['batch_size']}, Adam {s['learning_rate']}, "
        f"c={s['filters']} unless stated, backend {s['backend']}, seed "
        f"{s['seed']}. MSE on [0, 1] intensities. One run per variant (plus "
        "two seed repeats); the paper used full-size faces, c=64 and far "
        "longer training. s/epoch is wall-clock time on a shared 2-core "
        "machine, not a speed benchmark.",
        "",
        *related(output_dir, name),
        *baselines,
        *table(record, variants),
        "",
        f"{still_improving} of {len(runs)} runs reach their lowest "
        "validation error at the last epoch, so they were still improving "
        "when training stopped: longer training could reorder close "
        "variants.",
        "",
        "## The paper's findings at this scale",
        "",
        *findings(best_mses(record, variants), depths, s["filters"]),
        "",
    ]
    with open(os.path.join(output_dir, f"{name}.md"), "w") as file:
        file.write("\n".join(text))
    print("\n".join(text), flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_flags(parser)
    parser.add_argument(
        "--filters", type=int, default=16, help="c of the study's base network"
    )
    parser.add_argument(
        "--depths", type=int, nargs="+", default=[1, 3, 5, 7, 9, 11]
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--groups",
        default=None,
        help="comma-separated subset of the study's groups: depth, kct, "
        "branches, upsampling, merge, seed",
    )
    parser.add_argument("--output-dir", default=DEFAULT_RESULTS)
    parser.add_argument(
        "--name",
        default="architecture_study",
        help="file name (no extension) of the JSON, Markdown and PNG results",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep finished runs of the JSON in output-dir",
    )
    parser.add_argument("--report-only", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.report_only:
        return run_study(args)
    with open(os.path.join(args.output_dir, f"{args.name}.json")) as file:
        record = json.load(file)
    variants = study_variants(record["settings"]["filters"], args.depths)
    write_report(record, variants, args.output_dir, args.name)


if __name__ == "__main__":
    main()
