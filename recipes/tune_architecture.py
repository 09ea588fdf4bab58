"""Architecture search and the paper's architecture study, on face relighting.

Title: RBDN architecture study (Santhanam et al., CVPR 2017, Section 3.3,
4.2.1 and Fig. 6) and keras-tuner search over K, c, T, D and branches.

Data: Extended Yale B (cropped) faces, every lighting of a subject mapped to
its canonical lighting, downscaled (box filter); validation subjects are
never seen in training.

Run the study (the table and the plot land in benchmarks/results/):

    KERAS_BACKEND=tensorflow python recipes/tune_architecture.py study

    # only re-draw the table and plot from the saved JSON:
    python recipes/tune_architecture.py study --report-only

Run a search (RandomSearch, Hyperband or BayesianOptimization):

    python recipes/tune_architecture.py search --tuner hyperband \
        --max-trials 20 --epochs 10

Distributed search (keras-tuner chief/worker mode): start the same command
once as the chief and once per worker, with the same `--directory`:

    export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief   python recipes/tune_architecture.py search &
    KERASTUNER_TUNER_ID=tuner0  python recipes/tune_architecture.py search &
    KERASTUNER_TUNER_ID=tuner1  python recipes/tune_architecture.py search

The chief serves the oracle and prints the best architecture when every
worker has finished; the workers train the trials.
"""

import argparse
import json
import os
import time

import keras
import keras_tuner
import numpy as np

import keras_rbdn
import keras_rbdn.data
import keras_rbdn.tuning

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPOSITORY, "..", "shared", "data", "relight")
DEFAULT_RESULTS = os.path.join(REPOSITORY, "benchmarks", "results")

# ==========================================================================
# Data
# ==========================================================================


def load_data(args):
    (x, y), (x_val, y_val) = keras_rbdn.data.load_relight_split(
        args.data_dir,
        validation_subjects=args.validation_subjects,
        image_size=tuple(args.image_size),
        train_subjects=args.train_subjects,
        lightings_per_subject=args.lightings_per_subject,
        seed=args.seed,
    )
    print(
        f"relight pairs: train {x.shape}, validation {x_val.shape} "
        f"(disjoint subjects)",
        flush=True,
    )
    return (x, y), (x_val, y_val)


# ==========================================================================
# The study (paper Section 3.3 and Fig. 6)
# ==========================================================================


def study_variants(filters, depths):
    """(group, label, build arguments) for every run of the study.

    The base network B_0 (K9-c-T3-D9) is tuned first, as in the paper's
    Section 3.3; the branch count and the two Fig. 6 ablations follow on
    the full RBDN.
    """
    base = dict(branches=0, K=9, c=filters, T=3, D=9)
    variants = []
    for depth in depths:
        variants.append(("depth", f"B0 D={depth}", dict(base, D=depth)))
    variants += [
        ("K, c, T", "B0 K=5", dict(base, K=5)),
        ("K, c, T", "B0 K=9 (base)", base),
        ("K, c, T", "B0 T=5", dict(base, T=5)),
        ("K, c, T", f"B0 c={filters // 2}", dict(base, c=filters // 2)),
        ("K, c, T", f"B0 c={filters * 2}", dict(base, c=filters * 2)),
    ]
    for branches in range(5):
        variants.append(
            ("branches", f"RBDN-{branches}", dict(base, branches=branches))
        )
    rbdn3 = dict(base, branches=3)
    variants += [
        ("upsampling", "RBDN-3 learnable", rbdn3),
        ("upsampling", "RBDN-3 bilinear", dict(rbdn3, upsampling="bilinear")),
        ("merge", "RBDN-3 recursive (concat)", rbdn3),
        ("merge", "RBDN-3 linear (no merge)", dict(rbdn3, merge="none")),
        ("seed", "RBDN-3 seed 2", dict(rbdn3, seed=1)),
        ("seed", "B0 D=9 seed 2", dict(base, seed=1)),
    ]
    return variants


# The study runs the branch and Fig. 6 comparisons before the minor K, c, T
# changes, so that a study cut short keeps the main findings.
RUN_ORDER = ("depth", "branches", "upsampling", "merge", "seed", "K, c, T")


def group_id(group):
    """The name `--groups` takes: "K, c, T" is "kct"."""
    return "".join(ch for ch in group.lower() if ch.isalnum())


def run_order(variant):
    return RUN_ORDER.index(variant[0])


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
    seconds = time.time() - start
    result = {
        "params": model.count_params(),
        "loss": [float(v) for v in history.history["loss"]],
        "val_loss": [float(v) for v in history.history["val_loss"]],
        "seconds": seconds,
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
    record["settings"] = {
        "backend": keras.backend.backend(),
        "image_size": list(args.image_size),
        "train_pairs": int(len(data[0][0])),
        "validation_pairs": int(len(data[1][0])),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "filters": args.filters,
        "seed": args.seed,
        # Two trivial predictors, to read the networks' errors against.
        "identity_val_mse": float(np.mean((data[1][0] - data[1][1]) ** 2)),
        "mean_face_val_mse": float(
            np.mean((data[0][1].mean(axis=0) - data[1][1]) ** 2)
        ),
    }
    variants = study_variants(args.filters, args.depths)
    groups = args.groups.split(",") if args.groups else None
    for group, label, arguments in sorted(variants, key=run_order):
        if groups and group_id(group) not in groups:
            continue
        key = run_key(arguments)
        if key in record["runs"]:
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


# ==========================================================================
# Results: table, plot and the paper's findings
# ==========================================================================


def findings(record, variants):
    """One plain verdict per finding of the paper, with the numbers.

    Two runs count as different only if their best validation MSEs differ
    by more than the seed-to-seed spread of the same network (the "seed"
    group), and by at least 2%.
    """
    runs = record["runs"]
    best = {
        label: min(runs[run_key(arguments)]["val_loss"])
        for _, label, arguments in variants
        if run_key(arguments) in runs
    }
    lines = []
    seed_pairs = [
        ("B0 K=9 (base)", "B0 D=9 seed 2"),
        ("RBDN-3", "RBDN-3 seed 2"),
    ]
    spreads = [
        abs(best[a] - best[b]) / max(best[a], best[b])
        for a, b in seed_pairs
        if a in best and b in best
    ]
    tolerance = max(spreads + [0.02])
    lines.append(
        "Seed-to-seed spread of the best validation MSE (same network, "
        "another initialization and shuffle): "
        + (", ".join(f"{100 * s:.1f}%" for s in spreads) or "not measured")
        + f"; below, differences under {100 * tolerance:.1f}% count as "
        'noise ("about equal").'
    )

    def compare(a, b):
        """-1 if a is clearly lower than b, 1 if clearly higher, else 0."""
        if abs(a - b) <= tolerance * max(a, b):
            return 0
        return -1 if a < b else 1

    def percent(a, b):
        return f"{100 * (a - b) / b:+.1f}%"

    depth = [
        (arguments["D"], best[label])
        for group, label, arguments in variants
        if group == "depth" and label in best
    ]
    if len(depth) >= 3 and 9 in dict(depth):
        nine = dict(depth)[9]
        up_to_9 = [v for d, v in depth if d <= 9]
        steps = zip(up_to_9, up_to_9[1:], strict=False)
        never_worse = all(compare(b, a) <= 0 for a, b in steps)
        improves = compare(nine, up_to_9[0]) < 0
        after = [(d, v) for d, v in depth if d > 9]
        saturates = all(compare(v, nine) >= 0 for _, v in after)
        verdict = (
            "REPRODUCED"
            if never_worse and improves and after and saturates
            else "PARTLY REPRODUCED"
            if improves
            else "NOT REPRODUCED"
        )
        lines.append(
            "1. **Depth D** (B_0; best validation MSE "
            + ", ".join(f"D={d}: {v:.5f}" for d, v in depth)
            + "). Paper: steady improvement up to D=9, then saturation. "
            f"Here: D=9 vs D={depth[0][0]} {percent(nine, up_to_9[0])}, "
            + (
                "no step up to D=9 clearly worse"
                if never_worse
                else "not monotone up to D=9"
            )
            + (
                "; after D=9: "
                + ", ".join(f"D={d} {percent(v, nine)}" for d, v in after)
                + (" (saturated)" if saturates else " (still improving)")
                if after
                else ""
            )
            + f". **{verdict}.**"
        )
    base = best.get("B0 K=9 (base)")
    kct = [
        (label, best[label])
        for group, label, _ in variants
        if group == "K, c, T" and label in best and label != "B0 K=9 (base)"
    ]
    if base is not None and kct:
        # "Minor gains": no change of K, c or T beats the base clearly.
        margin = max(tolerance, 0.10)
        big_gains = [label for label, v in kct if (base - v) / base > margin]
        lines.append(
            "   **K, c, T** against the base B_0 "
            f"(K9-c{record['settings']['filters']}-T3-D9, {base:.5f}): "
            + ", ".join(f"{label} {percent(v, base)}" for label, v in kct)
            + ". Paper: changing them gives only minor gains. Here "
            + (
                f"no change improves on the base by more than "
                f"{100 * margin:.0f}%. **REPRODUCED.**"
                if not big_gains
                else f"{', '.join(big_gains)} improve(s) on the base by more "
                f"than {100 * margin:.0f}%. **NOT REPRODUCED.**"
            )
        )
    if all(f"RBDN-{n}" in best for n in range(5)):
        values = [best[f"RBDN-{n}"] for n in range(5)]
        first_gain = values[0] - values[1]
        later_gain = values[1] - values[3]
        large_first = compare(values[1], values[0]) < 0 and (
            first_gain > later_gain
        )
        gradual = compare(values[3], values[1]) <= 0
        worse_at_4 = compare(values[4], values[3]) > 0
        verdict = (
            "REPRODUCED"
            if large_first and gradual and worse_at_4
            else "PARTLY REPRODUCED"
            if large_first or worse_at_4
            else "NOT REPRODUCED"
        )
        lines.append(
            "2. **Branches** (best validation MSE "
            + ", ".join(f"RBDN-{n}: {v:.5f}" for n, v in enumerate(values))
            + "). Paper: large gain from 0 to 1, gradual gains up to 3, "
            "worse at 4 (overfitting). Here: 0->1 "
            f"{percent(values[1], values[0])}, 1->3 "
            f"{percent(values[3], values[1])}, 3->4 "
            f"{percent(values[4], values[3])}: "
            + (
                "the largest gain is 0->1"
                if large_first
                else "0->1 is not the largest gain"
            )
            + ", "
            + ("1->3 is not worse" if gradual else "1->3 is worse")
            + ", "
            + ("4 is worse than 3" if worse_at_4 else "4 is not worse than 3")
            + f". **{verdict}.**"
        )
    for number, name, ours, theirs, paper in (
        (
            3,
            "Upsampling",
            "RBDN-3 learnable",
            "RBDN-3 bilinear",
            "learnable unpooling + deconvolution beats fixed bilinear",
        ),
        (
            4,
            "Recursive branching",
            "RBDN-3 recursive (concat)",
            "RBDN-3 linear (no merge)",
            "the recursive merges beat the linear network without them",
        ),
    ):
        if ours in best and theirs in best:
            a, b = best[ours], best[theirs]
            verdict = {
                -1: "REPRODUCED",
                0: "NOT REPRODUCED: same direction as the paper, but "
                "within the seed spread"
                if a < b
                else "NOT REPRODUCED (about equal)",
                1: "NOT REPRODUCED (the other way round)",
            }[compare(a, b)]
            lines.append(
                f"{number}. **{name}** ({ours}: {a:.5f}, {theirs}: {b:.5f} "
                f"best validation MSE, {percent(b, a)} for the latter). "
                f"Paper: {paper}. **{verdict}.**"
            )
    return lines


def still_improving(runs):
    """A caveat line: how many runs were still improving at the end."""
    last = [
        int(np.argmin(run["val_loss"])) == len(run["val_loss"]) - 1
        for run in runs.values()
    ]
    return (
        f"{sum(last)} of {len(last)} runs reach their lowest validation "
        "error at the last epoch, so they were still improving when "
        "training stopped: longer training could reorder close variants."
    )


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


def baselines(settings):
    """Lines that put the errors next to two trivial predictors."""
    if "identity_val_mse" not in settings:
        return []
    return [
        "For scale, on the same validation pairs: returning the input "
        f"unchanged scores {settings['identity_val_mse']:.5f}; returning the "
        "mean canonical face of the training subjects scores "
        f"{settings['mean_face_val_mse']:.5f}.",
        "",
    ]


def write_report(record, variants, output_dir, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = record["runs"]
    settings = record["settings"]
    group_names = []
    for group, _, _ in variants:
        if group not in group_names:
            group_names.append(group)
    rows = [
        "| group | variant | params | best val MSE (epoch) | final val MSE "
        "| final train MSE | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    columns = 3
    rows_of_plots = -(-len(group_names) // columns)
    figure, axes = plt.subplots(
        rows_of_plots,
        columns,
        figsize=(4.6 * columns, 3.6 * rows_of_plots),
        sharey=True,
        squeeze=False,
    )
    axes = axes.ravel()
    for axis in axes[len(group_names) :]:
        axis.set_visible(False)
    for axis, group in zip(axes, group_names, strict=False):
        for variant_group, label, arguments in variants:
            run = runs.get(run_key(arguments))
            if variant_group != group or run is None:
                continue
            best = int(np.argmin(run["val_loss"]))
            rows.append(
                f"| {group} | {label} | {run['params']:,} | "
                f"{run['val_loss'][best]:.5f} ({best + 1}) | "
                f"{run['val_loss'][-1]:.5f} | {run['loss'][-1]:.5f} | "
                f"{run['seconds'] / len(run['loss']):.1f} |"
            )
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
    figure.suptitle(
        "RBDN architecture study, face relighting "
        f"({settings['image_size'][0]}x{settings['image_size'][1]}, "
        f"{settings['backend']})"
    )
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, f"{name}.png"), dpi=110)
    plt.close(figure)

    text = [
        "# RBDN architecture study (face relighting)",
        "",
        "Made by `recipes/tune_architecture.py study`; the raw curves are in "
        f"`{name}.json`, the plot in `{name}.png` "
        "(validation MSE vs epoch per variant, like the paper's Fig. 6).",
        "",
        "Settings: Extended Yale B (cropped), any lighting -> "
        "`P00A+000E+00`, downscaled to "
        f"{settings['image_size'][0]}x{settings['image_size'][1]} (box "
        f"filter); {settings['train_pairs']} training pairs, "
        f"{settings['validation_pairs']} validation pairs from held-out "
        f"subjects; {settings['epochs']} epochs, batch "
        f"{settings['batch_size']}, Adam {settings['learning_rate']}, "
        f"c={settings['filters']} unless stated, backend "
        f"{settings['backend']}, seed {settings['seed']}. MSE on [0, 1] "
        "intensities. One run per variant (plus two seed repeats); the "
        "paper used full-size faces, c=64 and far longer training. "
        "s/epoch is wall-clock time on a shared 2-core machine, not a "
        "speed benchmark.",
        "",
        *related(output_dir, name),
        *baselines(settings),
        *rows,
        "",
        still_improving(runs),
        "",
        "## The paper's findings at this scale",
        "",
        *findings(record, variants),
        "",
    ]
    with open(os.path.join(output_dir, f"{name}.md"), "w") as file:
        file.write("\n".join(text))
    print("\n".join(text), flush=True)


# ==========================================================================
# keras-tuner search (optionally distributed)
# ==========================================================================


def parse_choices(text, kind=int):
    return [kind(value) for value in text.split(",")]


def make_tuner(args):
    hypermodel = keras_rbdn.tuning.RBDNHyperModel(
        task="relight",
        K=parse_choices(args.kernel_sizes),
        c=parse_choices(args.filter_choices),
        T=parse_choices(args.trunk_kernel_sizes),
        D=parse_choices(args.trunk_depths),
        branches=parse_choices(args.branch_choices),
        upsampling=parse_choices(args.upsampling, str),
        merge=parse_choices(args.merge, str),
        learning_rate=(args.min_learning_rate, args.max_learning_rate),
        image_size=tuple(args.image_size),
    )
    common = dict(
        objective="val_loss",
        directory=args.directory,
        project_name=args.project_name,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    if args.tuner == "random":
        return keras_tuner.RandomSearch(
            hypermodel, max_trials=args.max_trials, **common
        )
    if args.tuner == "bayesian":
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=args.max_trials, **common
        )
    return keras_tuner.Hyperband(
        hypermodel, max_epochs=args.epochs, factor=3, **common
    )


def run_search(args):
    tuner = make_tuner(args)
    role = os.environ.get("KERASTUNER_TUNER_ID", "single process")
    is_worker = "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in role
    data = None
    if "chief" not in role:
        data = load_data(args)
    if data is None:
        # The chief only serves the oracle; it trains nothing.
        tuner.search(epochs=args.epochs)
    else:
        (x, y), validation = data
        tuner.search(
            x,
            y,
            validation_data=validation,
            epochs=args.epochs,
            batch_size=args.batch_size,
            verbose=args.verbose,
        )
    if is_worker:
        print(f"worker {role}: done", flush=True)
        return
    model, values = keras_rbdn.tuning.build_best_model(tuner)
    best = tuner.oracle.get_best_trials(1)[0]
    summary = {
        "tuner": args.tuner,
        "backend": keras.backend.backend(),
        "trials": len(tuner.oracle.trials),
        "best_val_loss": float(best.score),
        "best_hyperparameters": values,
        "build_arguments": keras_rbdn.tuning.architecture_arguments(values),
        "params": model.count_params(),
    }
    print(json.dumps(summary, indent=1), flush=True)
    if args.summary:
        with open(args.summary, "w") as file:
            json.dump(summary, file, indent=1)


# ==========================================================================
# Command line
# ==========================================================================


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["study", "search"])
    parser.add_argument("--data-dir", default=DEFAULT_DATA)
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=[48, 42],
        metavar=("HEIGHT", "WIDTH"),
    )
    parser.add_argument("--validation-subjects", type=int, default=6)
    parser.add_argument("--train-subjects", type=int, default=None)
    parser.add_argument("--lightings-per-subject", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    study = parser.add_argument_group("study")
    study.add_argument(
        "--filters", type=int, default=16, help="c of the study's base network"
    )
    study.add_argument(
        "--depths", type=int, nargs="+", default=[1, 3, 5, 7, 9, 11]
    )
    study.add_argument("--learning-rate", type=float, default=1e-3)
    study.add_argument(
        "--groups",
        default=None,
        help="comma-separated subset of the study's groups: depth, kct, "
        "branches, upsampling, merge, seed",
    )
    study.add_argument("--output-dir", default=DEFAULT_RESULTS)
    study.add_argument(
        "--name",
        default="architecture_study",
        help="file name (no extension) of the JSON, Markdown and PNG results",
    )
    study.add_argument(
        "--resume",
        action="store_true",
        help="keep finished runs of the JSON in output-dir",
    )
    study.add_argument("--report-only", action="store_true")
    search = parser.add_argument_group("search")
    search.add_argument(
        "--tuner",
        default="hyperband",
        choices=["random", "hyperband", "bayesian"],
    )
    search.add_argument("--max-trials", type=int, default=10)
    search.add_argument("--kernel-sizes", default="5,7,9")
    search.add_argument("--filter-choices", default="8,16,32")
    search.add_argument("--trunk-kernel-sizes", default="3,5")
    search.add_argument("--trunk-depths", default="3,5,7,9")
    search.add_argument("--branch-choices", default="0,1,2,3,4")
    search.add_argument("--upsampling", default="learnable,bilinear")
    search.add_argument("--merge", default="concat,none")
    search.add_argument("--min-learning-rate", type=float, default=1e-4)
    search.add_argument("--max-learning-rate", type=float, default=3e-3)
    search.add_argument("--directory", default="tuning")
    search.add_argument("--project-name", default="rbdn_relight")
    search.add_argument("--overwrite", action="store_true")
    search.add_argument(
        "--summary", default=None, help="write the best trial as JSON here"
    )
    search.add_argument("--verbose", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.mode == "search":
        run_search(args)
    elif args.report_only:
        path = os.path.join(args.output_dir, f"{args.name}.json")
        with open(path) as file:
            record = json.load(file)
        write_report(
            record,
            study_variants(record["settings"]["filters"], args.depths),
            args.output_dir,
            args.name,
        )
    else:
        run_study(args)


if __name__ == "__main__":
    main()
