"""Faster backend-specific forms of a few named operations (internal).

Every operation here has a portable reference written with `keras.ops`,
kept in the layer module that uses it; it is what runs by default. A
backend module (`tensorflow.py`, `torch.py`, `jax.py` in this package)
may register faster forms of an operation in its `FORMS` dict:
`{operation name: (Form, ...)}`. Each `Form` computes the same function
as the reference (the tests compare every form with it, in
`tests/backend_test.py`) and says in `applies` where it may run.

The rule that picks a form, for the backend Keras is running:

1. The backend's forms of the operation are tried in the order its
   module lists them.
2. A form is skipped inside `without(...)` naming it, and, if it is
   `device_specific` (it relies on kernels of the device the graph is
   traced on), inside `portable_forms()`.
3. The first whose `applies(*args, **kwargs)` is true, called with the
   arguments the operation gets, is used; if none applies, the
   reference.

`operation(name)` turns a reference function into one that follows this
rule. The operations are defined with their references:
`max_pool`, `max_pool_with_mask`, `max_unpool` and `max_unpool_at_map`
in `layers/pooling.py`, `conv2d` in `layers/conv.py`,
`batch_normalization` in `layers/batch_norm.py`. `narrow_conv2d`
(`layers/narrow_conv.py`) is chosen once, when the layer is built: its
forms' `applies` get the kernel's shape, and their `function` is called
with `(inputs, kernel, bias)`. Which forms exist and when they pay is
described in `docs/performance.md`.
"""

import contextlib
import functools
import importlib
from collections.abc import Callable
from typing import NamedTuple

import keras


class Form(NamedTuple):
    """A faster form of a named operation on one backend.

    Attributes:
        name: str. Names the form in `without(...)` (and in tests).
            Forms sharing one technique across operations share a name.
        function: The form, called with the operation's arguments.
        applies: Called with the operation's arguments: whether the form
            may compute it (device, dtypes, configuration, `training`).
        device_specific: bool. Whether the form relies on kernels of the
            device the computation is traced on, so that a graph holding
            it must not run elsewhere: not chosen in `portable_forms()`.
    """

    name: str
    function: Callable
    applies: Callable = lambda *args, **kwargs: True
    device_specific: bool = False


class _Settings:
    portable = 0  # depth of `portable_forms()` contexts
    without = ()  # names of the forms not to choose


@contextlib.contextmanager
def portable_forms():
    """Within it, no device-specific form is chosen.

    For graphs that are traced on one machine and may run on another
    device, such as the SavedModels and ONNX files of `keras_rbdn.export`.
    """
    _Settings.portable += 1
    try:
        yield
    finally:
        _Settings.portable -= 1


@contextlib.contextmanager
def without(*names):
    """Within it, the forms with these names are not chosen (to compare
    them with the reference, or with each other)."""
    before = _Settings.without
    _Settings.without = before + names
    try:
        yield
    finally:
        _Settings.without = before


_FORMS = {}  # backend name -> its module's `FORMS`


def _registered(backend):
    # A dict rather than `functools.cache`, which `torch.compile` warns of.
    if backend not in _FORMS:
        _FORMS[backend] = _import_forms(backend)
    return _FORMS[backend]


def _import_forms(backend):
    module_name = f"{__name__}.{backend}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        return {}  # a backend without forms of its own
    return module.FORMS


def forms(name):
    """The forms of operation `name` registered for the current backend,
    in the order they are tried."""
    return _registered(keras.backend.backend()).get(name, ())


def find(name, *args, **kwargs):
    """The form chosen for operation `name` with these arguments, or
    `None` for the reference (the rule in the module docstring)."""
    for form in forms(name):
        if form.name in _Settings.without:
            continue
        if form.device_specific and _Settings.portable:
            continue
        if form.applies(*args, **kwargs):
            return form
    return None


_REFERENCES = {}


def operation(name):
    """Decorator: the reference of operation `name`, dispatched by `find`.

    The decorated function computes the chosen form, or the reference
    when none applies; the reference stays available as `.reference`.
    """

    def decorate(reference):
        @functools.wraps(reference)
        def dispatch(*args, **kwargs):
            form = find(name, *args, **kwargs)
            function = reference if form is None else form.function
            return function(*args, **kwargs)

        dispatch.reference = reference
        _REFERENCES[name] = reference
        return dispatch

    return decorate


def reference(name):
    """The portable reference of operation `name` (for tests)."""
    return _REFERENCES[name]
