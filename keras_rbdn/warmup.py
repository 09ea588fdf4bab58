"""TF Serving warm-up requests, written into each exported SavedModel.

TF Serving runs the requests of `assets.extra/tf_serving_warmup_requests`
in a model version (a TFRecord file of `PredictionLog`s) when it loads the
version, before it serves it, so that the first clients do not wait for the
runtime's lazy initialization. A request that fails there fails the load.
`keras_rbdn.export` writes one small gray and one small RGB image for each
signature, built with `tensorflow-serving-api` (a dependency of
keras-rbdn).
"""

import os

import numpy as np

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Not a multiple of any pooling size: the requests run the padding too.
WARMUP_SIZE = (12, 10)


def serving_api():
    """`predict_pb2` and `prediction_log_pb2` of `tensorflow-serving-api`."""
    try:
        from tensorflow_serving.apis import predict_pb2
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError as error:
        raise ImportError(
            "Exporting a SavedModel writes TF Serving warm-up requests with "
            "the `tensorflow-serving-api` package, a dependency of "
            "keras-rbdn that is not installed. Install it with "
            "`pip install tensorflow-serving-api`."
        ) from error
    return predict_pb2, prediction_log_pb2


def warmup_images(dtype):
    """A gray and an RGB image of `WARMUP_SIZE`, batch 1: ramps, 0-255
    for uint8 and 0-1 for float32."""
    height, width = WARMUP_SIZE
    ramp = np.add.outer(np.arange(height), np.arange(width)) * 255.0
    ramp = ramp / (height + width - 2)
    rgb = np.stack([ramp, ramp[::-1], ramp[:, ::-1]], axis=-1)
    images = [ramp[None, :, :, None], rgb[None]]
    if dtype == "uint8":
        return [np.round(image).astype("uint8") for image in images]
    return [(image / 255.0).astype(dtype) for image in images]


def write_warmup_requests(directory, input_name, signature_dtypes):
    """Writes the warm-up file into the SavedModel folder `directory`.

    Args:
        directory: The SavedModel's version folder.
        input_name: The signatures' input key.
        signature_dtypes: `{signature name: input dtype}`; each signature
            gets a gray and an RGB request of that dtype.

    Returns:
        The path of the written file.
    """
    import tensorflow as tf

    predict_pb2, prediction_log_pb2 = serving_api()
    path = os.path.join(directory, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, dtype in signature_dtypes.items():
            for images in warmup_images(dtype):
                request = predict_pb2.PredictRequest()
                request.model_spec.signature_name = signature
                request.inputs[input_name].CopyFrom(
                    tf.make_tensor_proto(images)
                )
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
    return path
