import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BACKEND_DEPENDENT_ONLY = "--backend-dependent-only"

# The tests of these classes share module fixtures that take a minute to
# build (SavedModels exported, then served in a fresh process): pytest-xdist
# sends each class whole to one worker, which builds them once. Any other
# test goes to whichever worker is free.
ONE_WORKER_CLASSES = ("tests/export_test.py::SavedModelTest",)


def pytest_addoption(parser):
    parser.addoption(
        BACKEND_DEPENDENT_ONLY,
        action="store_true",
        help=(
            "deselect the tests marked `backend_independent`: for a run on a "
            "second Keras backend, after a full run on another one"
        ),
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption(BACKEND_DEPENDENT_ONLY):
        return
    selected, deselected = [], []
    for item in items:
        if item.get_closest_marker("backend_independent"):
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_xdist_make_scheduler(config, log):
    # xdist's own `--dist loadgroup` marks the grouped tests by renaming
    # them, which pytest 9 ignores: the groups are made here from the names.
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerClassScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            for scope in ONE_WORKER_CLASSES:
                if nodeid.startswith(scope + "::"):
                    return scope
            return nodeid

    return OneWorkerClassScheduling(config, log)


@pytest.fixture(autouse=True)
def _clear_session():
    # Keras is imported here, not with this file: pytest-xdist's controller
    # process, which runs no test, then does not load a backend.
    import keras

    keras.utils.set_random_seed(0)
    yield
    # Without the full garbage collection (`free_memory`): with TensorFlow,
    # JAX and PyTorch loaded it takes 0.4-1.7 s, after every test; Python's
    # own collector still runs.
    keras.backend.clear_session(free_memory=False)
