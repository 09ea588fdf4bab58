"""Runs exported SavedModels with TensorFlow alone, as a server would.

`tests/export_test.py` starts this script in a fresh Python process in
which Keras and keras-rbdn cannot be imported (hidden from the import
system, as if not installed): the SavedModels must stand on their own.
Usage:

    python tests/export_serving_client.py JOB.json

`JOB.json` holds `{"inputs": NPZ, "results": NPZ, "exports": {key: dir},
"calls": [[export_key, signature, input_key, loader], ...], "loaders":
[loader, ...]}`. For each call the signature is run on `inputs[input_key]`
and its `output_images` (or the error message) is stored under the call's
index. `loader` is `"eager"` (`tf.saved_model.load`, TF2's object graph)
or `"session"` (the session loader of TF Serving,
`serving_session.SessionModel`); `loaders` (default: both) are the ones
the exports are loaded with. Every warm-up request of every export is run
through each of them and stored under
`<export_key>.warmup<index>.<loader>`. Per export, the op types of the
graph and of every function in its library are listed, with the ones
missing from TensorFlow's op registry. The script writes `results` and
prints a JSON summary.
"""

import importlib.machinery
import json
import os
import sys

HIDDEN = ("keras", "keras_rbdn", "tf_keras")


class _HideKeras:
    """Finds modules as usual, except Keras and keras-rbdn: not installed.

    `import tensorflow` imports Keras by itself when it is installed (for
    `tf.keras`); hiding it makes this process a machine without Keras, as
    a TF Serving host is.
    """

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)

    @staticmethod
    def invalidate_caches():
        importlib.machinery.PathFinder.invalidate_caches()


sys.meta_path[:] = [
    _HideKeras if finder is importlib.machinery.PathFinder else finder
    for finder in sys.meta_path
]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from serving_session import SessionModel  # noqa: E402
from serving_session import warmup_requests  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402


def op_types(directory):
    """Op types used by the graph and its function library, function names
    (a node may call a library function by name), and the names of nodes
    and functions marked for XLA compilation (`_XlaMustCompile`)."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as file:
        proto.ParseFromString(file.read())
    types, functions, compiled = set(), set(), set()
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        nodes = list(graph.node)
        for function in graph.library.function:
            functions.add(function.signature.name)
            nodes.extend(function.node_def)
            if function.attr["_XlaMustCompile"].b:
                compiled.add(function.signature.name)
        types.update(node.op for node in nodes)
        compiled.update(
            node.name for node in nodes if node.attr["_XlaMustCompile"].b
        )
    return types, functions, compiled


class EagerModel:
    """A SavedModel loaded with `tf.saved_model.load`."""

    def __init__(self, directory):
        self.loaded = tf.saved_model.load(directory)

    def run(self, signature, inputs):
        function = self.loaded.signatures[signature]
        outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        return {key: value.numpy() for key, value in outputs.items()}


LOADERS = {"eager": EagerModel, "session": SessionModel}


def run_signature(model, signature, inputs, name, results, errors):
    """Stores the signature's `output_images`, or its error, as `name`."""
    try:
        results[name] = model.run(signature, inputs)["output_images"]
    except Exception as error:  # noqa: BLE001 - reported to the test
        errors[name] = f"{type(error).__name__}: {error}"


def run_calls(job, inputs, models, results, errors):
    for index, (key, signature, input_key, loader) in enumerate(job["calls"]):
        images = {"images": inputs[input_key]}
        model = models[loader][key]
        run_signature(model, signature, images, str(index), results, errors)


def run_warmup_requests(job, models, results, errors):
    """Runs each export's warm-up requests through each loader in
    `models`; returns what they are."""
    described = {}
    for key, directory in job["exports"].items():
        described[key] = []
        for index, (log_type, signature, inputs) in enumerate(
            warmup_requests(directory)
        ):
            described[key].append(
                {
                    "log_type": log_type,
                    "signature": signature,
                    "inputs": {
                        name: [str(array.dtype), list(array.shape)]
                        for name, array in inputs.items()
                    },
                }
            )
            for loader, loaded in models.items():
                name = f"{key}.warmup{index}.{loader}"
                model = loaded[key]
                run_signature(model, signature, inputs, name, results, errors)
    return described


def main(job_path):
    with open(job_path) as file:
        job = json.load(file)
    inputs = np.load(job["inputs"])
    models = {
        loader: {
            key: LOADERS[loader](directory)
            for key, directory in job["exports"].items()
        }
        for loader in job.get("loaders", LOADERS)
    }
    results, errors = {}, {}
    run_calls(job, inputs, models, results, errors)
    warmup = run_warmup_requests(job, models, results, errors)
    np.savez(job["results"], **results)

    ops = {}
    for key, directory in job["exports"].items():
        types, functions, compiled = op_types(directory)
        ops[key] = {
            "types": sorted(types),
            "xla_compiled": sorted(compiled),
            "unregistered": sorted(
                op
                for op in types
                if op not in functions and op_def_registry.get(op) is None
            ),
        }
    imported = sorted(
        name for name in sys.modules if name.split(".")[0] in HIDDEN
    )
    print(
        json.dumps(
            {
                "errors": errors,
                "ops": ops,
                "imported": imported,
                "warmup": warmup,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
