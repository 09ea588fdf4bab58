"""Architecture search over the RBDN hyperparameters with keras-tuner.

The paper (Section 3.3) tunes the base network's K (first/last kernel), c
(filters), T (trunk kernel) and D (trunk depth), then the number of
branches and the Fig. 6 ablations (fixed bilinear upsampling, linear
network without merges). `RBDNHyperModel` exposes all of them, plus the
learning rate, to any keras-tuner tuner (`RandomSearch`, `Hyperband`,
`BayesianOptimization`, `GridSearch`) on every Keras backend.

Every model, during the search and after it, is made by the public
`keras_rbdn.build`; `architecture_arguments` turns a trial's
hyperparameter values into `build`'s arguments, so the best model is
rebuilt with `keras_rbdn.build(**architecture_arguments(values))`.

Distributed search uses keras-tuner's chief/worker mode: run the same
search script in several processes with `KERASTUNER_ORACLE_IP`,
`KERASTUNER_ORACLE_PORT` and `KERASTUNER_TUNER_ID` set (`"chief"` for the
process that serves the oracle, `"tuner0"`, `"tuner1"`, ... for the
workers that train the trials).
"""

import keras
import keras_tuner

from keras_rbdn.models.build import PAPER_ALIASES
from keras_rbdn.models.build import build
from keras_rbdn.models.rbdn import MERGE_MODES
from keras_rbdn.models.rbdn import UPSAMPLING_MODES
from keras_rbdn.models.tasks import get_task

# The searched `build` arguments, in the order they are declared to the
# tuner, with the paper's ranges around its 9-64-3-9 choice.
DEFAULT_SEARCH_SPACE = {
    "branches": (0, 1, 2, 3, 4),
    "kernel_size": (5, 7, 9),
    "filters": (16, 32, 64),
    "trunk_kernel_size": (3, 5),
    "trunk_depth": (1, 3, 5, 7, 9, 11),
    "upsampling": UPSAMPLING_MODES,
    "merge": MERGE_MODES,
}
DEFAULT_LEARNING_RATE = (1e-4, 1e-2)

# (minimum, must be odd) for the integer hyperparameters.
_INTEGER_RULES = {
    "branches": (0, False),
    "kernel_size": (1, True),
    "filters": (1, False),
    "trunk_kernel_size": (1, True),
    "trunk_depth": (1, False),
}
_MODE_CHOICES = {"upsampling": UPSAMPLING_MODES, "merge": MERGE_MODES}


def _label(name):
    """`kernel_size (K)` for messages, so both names are recognizable."""
    aliases = {argument: alias for alias, argument in PAPER_ALIASES.items()}
    return f"`{name}` ({aliases[name]})" if name in aliases else f"`{name}`"


def _as_choices(name, value):
    """A search-space entry as a tuple: a scalar is one fixed choice."""
    if isinstance(value, (list, tuple, range)):
        choices = tuple(value)
    else:
        choices = (value,)
    if not choices:
        raise ValueError(
            f"The search space of {_label(name)} needs at least one choice. "
            f"Received: {name}={value!r}"
        )
    if len(set(choices)) != len(choices):
        raise ValueError(
            f"The choices of {_label(name)} must be distinct. "
            f"Received: {name}={value!r}"
        )
    for choice in choices:
        if name in _INTEGER_RULES:
            minimum, odd = _INTEGER_RULES[name]
            if (
                isinstance(choice, bool)
                or not isinstance(choice, int)
                or choice < minimum
                or (odd and choice % 2 == 0)
            ):
                kind = "odd integers" if odd else "integers"
                raise ValueError(
                    f"The choices of {_label(name)} must be {kind} >= "
                    f"{minimum}. Received: {name}={value!r}"
                )
        elif choice not in _MODE_CHOICES[name]:
            raise ValueError(
                f"The choices of `{name}` must be among "
                f"{_MODE_CHOICES[name]}. Received: {name}={value!r}"
            )
    return choices


def _check_learning_rate(value):
    if isinstance(value, (list, tuple)):
        if (
            len(value) != 2
            or not all(isinstance(v, (int, float)) for v in value)
            or not 0 < value[0] < value[1]
        ):
            raise ValueError(
                "A learning-rate range must be `(low, high)` with "
                f"0 < low < high. Received: learning_rate={value!r}"
            )
        return tuple(float(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            "`learning_rate` must be a positive float or a `(low, high)` "
            f"range. Received: learning_rate={value!r}"
        )
    if value <= 0:
        raise ValueError(
            f"`learning_rate` must be positive. Received: learning_rate={value}"
        )
    return float(value)


def check_combination(arguments, image_size=None):
    """Raises a `ValueError` if one RBDN configuration cannot be trained.

    Args:
        arguments: dict. `build` arguments (`branches`, `merge`, ...).
        image_size: tuple `(height, width)` or `None`. The training image
            size, if known.
    """
    branches = arguments.get("branches", 3)
    if arguments.get("merge", "concat") == "none" and branches == 0:
        raise ValueError(
            '`merge="none"` removes the branch merges, so it needs at least '
            "one branch; with `branches=0` it is the base network B_0 again. "
            f"Received: branches={branches}, merge='none'"
        )
    if image_size is not None:
        # pool1 and one pooling per branch. Pooling runs in ceil mode, so
        # any size runs, but a map that is already one pixel wide stops
        # shrinking: deeper branches would add cost and no context.
        smallest = 2 ** (branches + 1)
        if min(image_size) < smallest:
            raise ValueError(
                f"`branches={branches}` pools the image {branches + 1} "
                f"times, so it needs images of at least {smallest} x "
                f"{smallest} pixels (smaller maps stop shrinking and the "
                "deeper branches add no context). Received: "
                f"branches={branches}, image_size={tuple(image_size)}"
            )


def architecture_arguments(values, task="relight", channels=None):
    """`keras_rbdn.build` arguments from a trial's hyperparameter values.

    Args:
        values: dict or `keras_tuner.HyperParameters`. The values of a
            trial, for example `tuner.get_best_hyperparameters()[0]`.
            Searched names (`kernel_size`, ...) or the paper's aliases
            (`K`, `c`, `T`, `D`) are accepted; `learning_rate` is ignored.
        task: str. The task passed to `build`. Defaults to `"relight"`.
        channels: int or `None`. Image channels passed to `build`. Defaults
            to `None` (the task's default).

    Returns:
        A dict for `keras_rbdn.build(**arguments)`.

    Example:

    >>> values = {"branches": 2, "K": 7, "c": 32, "T": 3, "D": 5}
    >>> model = keras_rbdn.build(**architecture_arguments(values))
    """
    if isinstance(values, keras_tuner.HyperParameters):
        values = values.values
    values = {
        PAPER_ALIASES.get(key, key): value for key, value in values.items()
    }
    arguments = {"task": task, "channels": channels}
    for name in DEFAULT_SEARCH_SPACE:
        if name in values:
            arguments[name] = values[name]
    if arguments.get("branches") == 0:
        # Without branches there is nothing to merge: both modes are B_0.
        arguments.pop("merge", None)
    return arguments


class RBDNHyperModel(keras_tuner.HyperModel):
    """keras-tuner search space over the RBDN architecture.

    Each architecture argument is either a list of choices (searched with
    `hp.Choice`) or a single value (kept fixed with `hp.Fixed`, so it is
    still recorded with the trial). The paper's aliases `K`, `c`, `T`,
    `D` are accepted for `kernel_size`, `filters`, `trunk_kernel_size`,
    `trunk_depth`.

    Args:
        task: str. One of `keras_rbdn.TASKS`; sets the loss. Defaults to
            `"relight"`.
        channels: int or `None`. Image channels (see `keras_rbdn.build`).
            Defaults to `None`.
        branches: int or list of int. Choices of N. Defaults to
            `(0, 1, 2, 3, 4)`.
        kernel_size: odd int or list of odd int. Choices of K. Defaults to
            `(5, 7, 9)`.
        filters: int or list of int. Choices of c. Defaults to
            `(16, 32, 64)`.
        trunk_kernel_size: odd int or list of odd int. Choices of T.
            Defaults to `(3, 5)`.
        trunk_depth: int or list of int. Choices of D. Defaults to
            `(1, 3, 5, 7, 9, 11)`.
        upsampling: str or list of str. Choices among `"learnable"` and
            `"bilinear"`. Defaults to both.
        merge: str or list of str. Choices among `"concat"` and `"none"`.
            Defaults to both. A trial that draws `merge="none"` with
            `branches=0` uses `"concat"` (the two are the same network).
        learning_rate: float or tuple `(low, high)`. A fixed Adam learning
            rate, or a range searched on a log scale. Defaults to
            `(1e-4, 1e-2)`.
        image_size: tuple `(height, width)` or `None`. The training image
            size; if given, branch counts too deep for it are rejected.
            Defaults to `None`.
        name: str or `None`. Name of the search space. Defaults to `None`.
        tunable: bool. Whether the hyperparameters are tunable. Defaults
            to `True`.

    Example:

    >>> hypermodel = RBDNHyperModel(D=(3, 9), c=(16, 32), branches=(0, 3))
    >>> tuner = keras_tuner.RandomSearch(
    ...     hypermodel, objective="val_loss", max_trials=4
    ... )
    >>> tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    >>> model = keras_rbdn.build(
    ...     **architecture_arguments(tuner.get_best_hyperparameters()[0])
    ... )
    """

    def __init__(
        self,
        task="relight",
        channels=None,
        learning_rate=DEFAULT_LEARNING_RATE,
        image_size=None,
        name=None,
        tunable=True,
        **search_space,
    ):
        super().__init__(name=name, tunable=tunable)
        self.task = get_task(task).name
        self.channels = channels
        self.learning_rate = _check_learning_rate(learning_rate)
        self.image_size = None if image_size is None else tuple(image_size)
        space = {}
        for key, value in search_space.items():
            argument = PAPER_ALIASES.get(key, key)
            if argument not in DEFAULT_SEARCH_SPACE:
                raise ValueError(
                    "Unknown search-space argument. Expected one of "
                    f"{list(DEFAULT_SEARCH_SPACE)} or {list(PAPER_ALIASES)}. "
                    f"Received: {key}={value!r}"
                )
            if argument in space:
                raise ValueError(
                    f"`{key}` and `{argument}` name the same "
                    f"hyperparameter; pass only one. Received: {key}={value!r}"
                )
            space[argument] = value
        self.search_space = {
            argument: _as_choices(argument, space.get(argument, default))
            for argument, default in DEFAULT_SEARCH_SPACE.items()
        }
        branch_choices = self.search_space["branches"]
        if set(self.search_space["merge"]) == {"none"}:
            check_combination(
                {"branches": min(branch_choices), "merge": "none"}
            )
        check_combination({"branches": max(branch_choices)}, self.image_size)

    def declare(self, hp):
        """Declares the hyperparameters on `hp`; returns `build` arguments."""
        values = {}
        for name, choices in self.search_space.items():
            if len(choices) == 1:
                values[name] = hp.Fixed(name, choices[0])
            else:
                values[name] = hp.Choice(name, list(choices))
        if isinstance(self.learning_rate, tuple):
            low, high = self.learning_rate
            learning_rate = hp.Float("learning_rate", low, high, sampling="log")
        else:
            learning_rate = hp.Fixed("learning_rate", self.learning_rate)
        arguments = architecture_arguments(values, self.task, self.channels)
        check_combination(arguments, self.image_size)
        return arguments, learning_rate

    def build(self, hp):
        arguments, learning_rate = self.declare(hp)
        model = build(**arguments)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=get_task(self.task).loss,
        )
        return model


def build_best_model(tuner, trial=0, compile=True):
    """Rebuilds a tuner's best architecture, untrained, with `build`.

    Args:
        tuner: a `keras_tuner.Tuner` that searched an `RBDNHyperModel`.
        trial: int. 0 for the best trial, 1 for the second best, ...
            Defaults to `0`.
        compile: bool. Whether to compile it as the search did. Defaults
            to `True`.

    Returns:
        `(model, values)`: the `RBDN` and the trial's hyperparameter values.
    """
    hypermodel = tuner.hypermodel
    if not isinstance(hypermodel, RBDNHyperModel):
        raise ValueError(
            "`tuner` must search an `RBDNHyperModel`. Received: "
            f"tuner.hypermodel={hypermodel!r}"
        )
    best = tuner.get_best_hyperparameters(trial + 1)
    if len(best) <= trial:
        raise ValueError(
            f"The tuner has only {len(best)} finished trials. "
            f"Received: trial={trial}"
        )
    values = dict(best[trial].values)
    if compile:
        return hypermodel.build(best[trial]), values
    arguments = architecture_arguments(
        values, hypermodel.task, hypermodel.channels
    )
    return build(**arguments), values
