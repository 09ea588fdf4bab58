"""Architecture search for RBDN on face relighting, with keras-tuner.

Searches the kernel size K, width c, trunk kernel T, trunk depth D, branch
count, upsampling, merge and learning rate (`keras_rbdn.tuning`) on
Extended Yale B (cropped) faces, every lighting of a subject mapped to its
canonical lighting, downscaled; validation subjects are never seen in
training. Prints (and with `--summary` writes) the best architecture.

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

`python recipes/tune_architecture.py study ...` runs the paper's
architecture study instead (`benchmarks/architecture_study.py`, which
takes the same arguments).
"""

import argparse
import json
import os
import sys

import keras
import keras_tuner

import keras_rbdn
import keras_rbdn.data
import keras_rbdn.tuning

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPOSITORY, "..", "shared", "data", "relight")
TUNERS = {
    "random": keras_tuner.RandomSearch,
    "hyperband": keras_tuner.Hyperband,
    "bayesian": keras_tuner.BayesianOptimization,
}


def load_data(args):
    """Training and validation pairs, from disjoint subjects."""
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
        "(disjoint subjects)",
        flush=True,
    )
    return (x, y), (x_val, y_val)


def choices(text, kind=int):
    """`"5,7,9"` -> `[5, 7, 9]`."""
    return [kind(value) for value in text.split(",")]


def make_tuner(args):
    hypermodel = keras_rbdn.tuning.RBDNHyperModel(
        task="relight",
        K=choices(args.kernel_sizes),
        c=choices(args.filter_choices),
        T=choices(args.trunk_kernel_sizes),
        D=choices(args.trunk_depths),
        branches=choices(args.branch_choices),
        upsampling=choices(args.upsampling, str),
        merge=choices(args.merge, str),
        learning_rate=(args.min_learning_rate, args.max_learning_rate),
        image_size=tuple(args.image_size),
    )
    if args.tuner == "hyperband":
        budget = {"max_epochs": args.epochs, "factor": 3}
    else:
        budget = {"max_trials": args.max_trials}
    return TUNERS[args.tuner](
        hypermodel,
        objective="val_loss",
        directory=args.directory,
        project_name=args.project_name,
        seed=args.seed,
        overwrite=args.overwrite,
        **budget,
    )


def search(args):
    tuner = make_tuner(args)
    role = os.environ.get("KERASTUNER_TUNER_ID", "single process")
    if "chief" in role:
        # The chief only serves the oracle; the workers train the trials.
        tuner.search(epochs=args.epochs)
    else:
        (x, y), validation = load_data(args)
        tuner.search(
            x,
            y,
            validation_data=validation,
            epochs=args.epochs,
            batch_size=args.batch_size,
            verbose=args.verbose,
        )
    if "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in role:
        print(f"worker {role}: done", flush=True)
        return
    model, values = keras_rbdn.tuning.build_best_model(tuner)
    summary = {
        "tuner": args.tuner,
        "backend": keras.backend.backend(),
        "trials": len(tuner.oracle.trials),
        "best_val_loss": float(tuner.oracle.get_best_trials(1)[0].score),
        "best_hyperparameters": values,
        "build_arguments": keras_rbdn.tuning.architecture_arguments(values),
        "params": model.count_params(),
    }
    print(json.dumps(summary, indent=1), flush=True)
    if args.summary:
        with open(args.summary, "w") as file:
            json.dump(summary, file, indent=1)


def add_data_flags(parser):
    """The relighting data and training flags the search and study share."""
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["search", "study"])
    add_data_flags(parser)
    parser.add_argument("--tuner", default="hyperband", choices=TUNERS)
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--kernel-sizes", default="5,7,9")
    parser.add_argument("--filter-choices", default="8,16,32")
    parser.add_argument("--trunk-kernel-sizes", default="3,5")
    parser.add_argument("--trunk-depths", default="3,5,7,9")
    parser.add_argument("--branch-choices", default="0,1,2,3,4")
    parser.add_argument("--upsampling", default="learnable,bilinear")
    parser.add_argument("--merge", default="concat,none")
    parser.add_argument("--min-learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-learning-rate", type=float, default=3e-3)
    parser.add_argument("--directory", default="tuning")
    parser.add_argument("--project-name", default="rbdn_relight")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--summary", default=None, help="write the best trial as JSON here"
    )
    parser.add_argument("--verbose", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["study"]:
        sys.path.insert(0, os.path.join(REPOSITORY, "benchmarks"))
        import architecture_study

        return architecture_study.main(argv[1:])
    search(parse_args(argv))


if __name__ == "__main__":
    main()
