"""Runs a SavedModel's signatures the way TF Serving does.

TF Serving's C++ `SavedModelBundle` imports the MetaGraph into a
`Session`, restores the variables with the `saver_def`'s restore op, runs
the init op and runs a signature with `Session::Run`, feeding and fetching
the tensors that the `SignatureDef` names. TensorFlow's
`tf.compat.v1.saved_model.loader.load` does the same (TF2's
`tf.saved_model.load` instead rebuilds the object graph). TensorFlow
only: `export_serving_client.py` runs this in a process without Keras.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


class SessionModel:
    """A SavedModel loaded into its own graph and `Session`."""

    def __init__(self, directory):
        self.session = tf.compat.v1.Session(graph=tf.Graph())
        meta_graph = tf.compat.v1.saved_model.loader.load(
            self.session, [tf.saved_model.SERVING], directory
        )
        self.signatures = meta_graph.signature_def

    def run(self, signature, inputs):
        """`{output key: array}` of `signature` on `{input key: array}`."""
        definition = self.signatures[signature]
        feeds = {
            definition.inputs[key].name: value for key, value in inputs.items()
        }
        fetches = {key: info.name for key, info in definition.outputs.items()}
        return self.session.run(fetches, feeds)

    def close(self):
        self.session.close()


def warmup_requests(directory):
    """`(log type, signature, {input key: array})` of each warm-up record
    of the SavedModel in `directory` (a `PredictionLog`), read back as TF
    Serving reads them."""
    path = os.path.join(directory, WARMUP_FILE)
    requests = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        inputs = {
            key: tf.make_ndarray(proto) for key, proto in request.inputs.items()
        }
        signature = request.model_spec.signature_name
        requests.append((log.WhichOneof("log_type"), signature, inputs))
    return requests
