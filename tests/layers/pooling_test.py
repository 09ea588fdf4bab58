from contextlib import nullcontext

import keras
import numpy as np
import pytest
from keras import ops

from keras_rbdn import backend
from keras_rbdn.layers import MaxPoolingWithArgmax2D
from keras_rbdn.layers import MaxUnpooling2D
from tests.testing import gradient
from tests.testing import run_in_fresh_process

TENSORFLOW = keras.backend.backend() == "tensorflow"
TORCH = keras.backend.backend() == "torch"


@pytest.fixture(params=["ops", "compiled"])
def mask_path(request, monkeypatch):
    """Runs a test with the switch mask as separate ops, then (TensorFlow
    only) with the XLA-compiled mask forced on for every size."""
    if request.param == "compiled":
        if not TENSORFLOW:
            pytest.skip("the XLA-compiled switch mask is TensorFlow-only")
        from keras_rbdn.backend import tensorflow as tf_forms

        monkeypatch.setattr(tf_forms, "COMPILED_MASK_MIN_ELEMENTS", 1)
    return request.param


def reference_pool(x):
    """Caffe's 2x2/2 max pool in ceil mode: values and a switch mask.

    Scans each window in row-major order and keeps the first strict
    maximum, as Caffe's PoolingLayer does.
    """
    batch, height, width, channels = x.shape
    rows, cols = -(-height // 2), -(-width // 2)
    pooled = np.zeros((batch, rows, cols, channels), x.dtype)
    mask = np.zeros_like(x)
    for b in range(batch):
        for c in range(channels):
            for i in range(rows):
                for j in range(cols):
                    best = None
                    for y in range(2 * i, min(2 * i + 2, height)):
                        for z in range(2 * j, min(2 * j + 2, width)):
                            if best is None or x[b, y, z, c] > x[best]:
                                best = (b, y, z, c)
                    pooled[b, i, j, c] = x[best]
                    mask[best] = 1
    return pooled, mask


def reference_unpool(values, mask):
    """Writes each pooled value at its window's switch, zeros elsewhere."""
    out = np.zeros_like(mask)
    height, width = mask.shape[1:3]
    for y in range(height):
        for z in range(width):
            out[:, y, z, :] = values[:, y // 2, z // 2, :] * mask[:, y, z, :]
    return out


SHAPES = [
    (1, 4, 4, 1),
    (2, 7, 5, 3),
    (3, 1, 1, 2),
    (1, 1, 6, 1),
    (2, 9, 2, 64),
    (1, 33, 21, 4),
]


class MaxPoolingWithArgmax2DTest:
    @pytest.mark.parametrize("shape", SHAPES)
    def test_matches_caffe_reference(self, shape, mask_path):
        x = np.random.default_rng(1).normal(size=shape).astype("float32")
        pooled, switches = MaxPoolingWithArgmax2D()(x)
        expected_pooled, expected_mask = reference_pool(x)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(pooled), expected_pooled
        )
        np.testing.assert_array_equal(
            ops.convert_to_numpy(switches), expected_mask
        )

    @pytest.mark.parametrize("shape", [(2, 6, 6, 3), (1, 5, 7, 2)])
    def test_ties_pick_first_in_row_major_order(self, shape, mask_path):
        # Values from {0, 1} make most windows hold ties.
        rng = np.random.default_rng(2)
        x = rng.integers(0, 2, size=shape).astype("float32")
        x[0, 0:2, 0:2, 0] = 1.0  # a window of four equal maxima
        _, switches = MaxPoolingWithArgmax2D()(x)
        switches = ops.convert_to_numpy(switches)
        _, expected_mask = reference_pool(x)
        np.testing.assert_array_equal(switches, expected_mask)
        np.testing.assert_array_equal(
            switches[0, 0:2, 0:2, 0], [[1.0, 0.0], [0.0, 0.0]]
        )

    def test_one_switch_per_window(self):
        x = np.zeros((1, 5, 3, 2), "float32")  # every pixel ties
        _, switches = MaxPoolingWithArgmax2D()(x)
        assert ops.convert_to_numpy(switches).dtype == np.bool_
        windows = ops.convert_to_numpy(
            keras.layers.AveragePooling2D(2, padding="same")(
                ops.cast(switches, "float32")
            )
        )
        # Each window sums to 1; "same" averaging divides by real pixels.
        counts = np.array([[4, 2], [4, 2], [2, 1]], "float32")[None, :, :, None]
        np.testing.assert_allclose(windows * counts, np.ones_like(windows))

    def test_gradient_goes_to_switch_only(self, mask_path):
        rng = np.random.default_rng(3)
        x = rng.integers(0, 3, size=(2, 7, 5, 3)).astype("float32")
        weights = rng.normal(size=(2, 4, 3, 3)).astype("float32")
        layer = MaxPoolingWithArgmax2D()
        grad = gradient(lambda v: ops.multiply(layer(v)[0], weights), x)
        _, mask = reference_pool(x)
        expected = reference_unpool(weights, mask)
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)

    def test_gradient_matches_finite_differences(self):
        # Distinct values 0.1 apart: a step of 0.01 never changes a window's
        # maximum, so central differences of this piecewise-linear function
        # are exact up to float32 rounding.
        rng = np.random.default_rng(4)
        x = (rng.permutation(35).reshape(1, 7, 5, 1) * 0.1).astype("float32")
        weights = rng.normal(size=(1, 4, 3, 1)).astype("float32")
        layer = MaxPoolingWithArgmax2D()

        def objective(v):
            pooled = ops.convert_to_numpy(layer(v)[0]).astype("float64")
            return float(np.sum(pooled * weights))

        numeric = np.zeros(x.shape)
        step = 0.01
        for index in np.ndindex(x.shape):
            plus, minus = x.copy(), x.copy()
            plus[index] += step
            minus[index] -= step
            numeric[index] = (objective(plus) - objective(minus)) / (2 * step)
        analytic = gradient(lambda v: ops.multiply(layer(v)[0], weights), x)
        np.testing.assert_allclose(analytic, numeric, atol=1e-4)
        assert np.count_nonzero(analytic) == 12  # one switch per window

    @pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow graphs only")
    def test_mask_is_compiled_for_large_static_shapes_only(self, monkeypatch):
        import tensorflow as tf

        from keras_rbdn.backend import tensorflow as tf_forms

        monkeypatch.setattr(
            tf_forms, "COMPILED_MASK_MIN_ELEMENTS", 2 * 8 * 8 * 3
        )
        layer = MaxPoolingWithArgmax2D()

        def compiled_calls(shape):
            function = tf.function(lambda x: layer(x))
            graph = function.get_concrete_function(
                tf.TensorSpec(shape, "float32")
            ).graph.as_graph_def()
            nodes = list(graph.node)
            for library_function in graph.library.function:
                nodes.extend(library_function.node_def)
            return [n.name for n in nodes if n.attr["_XlaMustCompile"].b]

        assert len(compiled_calls((2, 8, 8, 3))) == 1
        assert compiled_calls((1, 8, 8, 3)) == []  # below the threshold
        # Unknown sizes (as in exported SavedModels): the plain ops.
        assert compiled_calls((None, 8, 8, 3)) == []
        assert compiled_calls((2, None, None, 3)) == []
        # A threshold of infinity turns it off.
        monkeypatch.setattr(
            tf_forms, "COMPILED_MASK_MIN_ELEMENTS", float("inf")
        )
        assert compiled_calls((2, 8, 8, 3)) == []

    def test_symbolic_shapes(self):
        inputs = keras.Input((None, 7, 8))
        pooled, switches = MaxPoolingWithArgmax2D()(inputs)
        assert pooled.shape == (None, None, 4, 8)
        assert switches.shape == (None, None, 7, 8)

    def test_config_round_trip(self):
        layer = MaxPoolingWithArgmax2D(name="pool", dtype="float32")
        clone = MaxPoolingWithArgmax2D.from_config(layer.get_config())
        assert clone.name == "pool"
        assert keras.saving.get_registered_name(MaxPoolingWithArgmax2D) == (
            "keras_rbdn>MaxPoolingWithArgmax2D"
        )

    def test_rejects_wrong_rank(self):
        with pytest.raises(ValueError, match="ndim"):
            MaxPoolingWithArgmax2D()(np.zeros((4, 4, 1), "float32"))


class MaxUnpooling2DTest:
    @pytest.mark.parametrize("shape", SHAPES)
    def test_matches_reference(self, shape):
        rng = np.random.default_rng(5)
        x = rng.normal(size=shape).astype("float32")
        pooled, switches = MaxPoolingWithArgmax2D()(x)
        values = rng.normal(size=pooled.shape).astype("float32")
        out = MaxUnpooling2D()([values, switches])
        assert tuple(out.shape) == shape
        _, mask = reference_pool(x)
        np.testing.assert_allclose(
            ops.convert_to_numpy(out), reference_unpool(values, mask)
        )

    def test_gradient_reads_switch_positions(self):
        rng = np.random.default_rng(6)
        x = rng.normal(size=(2, 7, 5, 2)).astype("float32")
        pooled, switches = MaxPoolingWithArgmax2D()(x)
        upstream = rng.normal(size=x.shape).astype("float32")
        layer = MaxUnpooling2D()
        grad = gradient(
            lambda v: ops.multiply(layer([v, switches]), upstream),
            ops.convert_to_numpy(pooled),
        )
        _, mask = reference_pool(x)
        expected = np.zeros(pooled.shape, "float32")
        for y, z in np.ndindex(7, 5):
            expected[:, y // 2, z // 2, :] += (upstream * mask)[:, y, z, :]
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)

    def test_symbolic_shapes(self):
        values = keras.Input((None, None, 8))
        switches = keras.Input((None, None, 8))
        assert MaxUnpooling2D()([values, switches]).shape == (
            None,
            None,
            None,
            8,
        )


def assert_exact_gradients(switches, policy, seed, training=None):
    """Both layers' gradients equal the Caffe reference exactly.

    Values and weights are small multiples of 1/8, exact in float16 and
    bfloat16, with ties in most windows; every gradient entry is one
    selected weight (no sums), so even half precision must be exact.
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(2, 7, 5, 3)).astype("float32")  # ties
    weights = (rng.integers(-8, 9, size=(2, 4, 3, 3)) / 8).astype("float32")
    pool = MaxPoolingWithArgmax2D(switches, dtype=policy)
    unpool = MaxUnpooling2D(dtype=policy)
    _, mask = reference_pool(x)

    def pooled_times_weights(v):
        pooled = pool(v, training=training)[0]
        return ops.multiply(ops.cast(pooled, "float32"), weights)

    np.testing.assert_array_equal(
        gradient(pooled_times_weights, x), reference_unpool(weights, mask)
    )
    _, switches = pool(x, training=training)
    upstream = (rng.integers(-8, 9, size=x.shape) / 8).astype("float32")

    def unpooled_times_upstream(v):
        out = ops.cast(unpool([v, switches], training=training), "float32")
        return ops.multiply(out, upstream)

    expected = np.zeros(weights.shape, "float32")
    for y, z in np.ndindex(7, 5):
        expected[:, y // 2, z // 2, :] += (upstream * mask)[:, y, z, :]
    np.testing.assert_array_equal(
        gradient(unpooled_times_upstream, weights), expected
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_gradients_exact_in_half_precision(policy, mask_path):
    assert_exact_gradients("mask", policy, seed=9)


# Under PyTorch, conv_test's RBDN test trains these layers compiled.
@pytest.mark.skipif(TORCH, reason="conv_test covers torch.compile")
def test_pool_unpool_train_under_jit():
    size = (15, 9)  # odd sizes exercise the ceil-mode padding and crop
    inputs = keras.Input((None, None, 2))
    hidden = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    pooled, switches = MaxPoolingWithArgmax2D()(hidden)
    pooled = keras.layers.Conv2D(3, 3, padding="same")(pooled)
    outputs = MaxUnpooling2D()([pooled, switches])
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x = np.random.default_rng(7).normal(size=(4, *size, 2)).astype("float32")
    y = np.random.default_rng(8).normal(size=(4, *size, 3)).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.fixture(params=["input", "auto", "input, portable"])
def switches_form(request):
    """A `switches` argument of the pooling; "portable" traces it inside
    `backend.portable_forms()` (no device-specific kernels)."""
    form, _, portable = request.param.partition(", ")
    context = backend.portable_forms() if portable else nullcontext()
    with context:
        yield form


def op_types(function):
    """The op types of a `tf.function`'s graph for a 2 x 8x6 x 3 input."""
    import tensorflow as tf

    spec = tf.TensorSpec((2, 8, 6, 3), "float32")
    graph = function.get_concrete_function(spec).graph
    return {op.type for op in graph.get_operations()}


class SwitchesFormsTest:
    """Every form of the switches unpools (and differentiates) like Caffe."""

    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("ties", [False, True])
    def test_unpooling_matches_caffe_reference(
        self, shape, ties, switches_form
    ):
        rng = np.random.default_rng(10)
        x = rng.normal(size=shape).astype("float32")
        if ties:  # values from {0, 1, 2}: most windows hold ties
            x = rng.integers(0, 3, size=shape).astype("float32")
        pooled, switches = MaxPoolingWithArgmax2D(switches_form)(x)
        values = rng.normal(size=pooled.shape).astype("float32")
        out = MaxUnpooling2D()([values, switches])
        expected_pooled, mask = reference_pool(x)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(pooled), expected_pooled
        )
        np.testing.assert_array_equal(
            ops.convert_to_numpy(out), reference_unpool(values, mask)
        )

    @pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
    @pytest.mark.parametrize("training", [None, True])
    def test_gradients_go_to_the_switches(
        self, switches_form, policy, training
    ):
        assert_exact_gradients(
            switches_form, policy, seed=11, training=training
        )

    def test_auto_is_the_input_where_cpu_kernels_unpool(self):
        x = np.random.default_rng(12).normal(size=(1, 6, 4, 2))
        x = x.astype("float32")
        layer = MaxPoolingWithArgmax2D("auto")
        cpu_kernels = _cpu_kernels_unpool()
        # PyTorch's kernels serve training too; TensorFlow's only inference.
        for training, expected in [(None, cpu_kernels), (True, TORCH)]:
            _, switches = layer(x, training=training)
            if expected and cpu_kernels:
                np.testing.assert_array_equal(ops.convert_to_numpy(switches), x)
            else:
                dtype = keras.backend.standardize_dtype(switches.dtype)
                assert dtype == "bool"
        with backend.portable_forms():
            _, switches = layer(x)
            assert keras.backend.standardize_dtype(switches.dtype) == "bool"
        symbolic = layer(keras.Input((None, None, 2)))[1]
        assert symbolic.dtype == ("float32" if cpu_kernels else "bool")

    def test_a_float_mask_still_unpools(self):
        x = np.random.default_rng(13).normal(size=(2, 5, 7, 3))
        x = x.astype("float32")
        pooled, _ = MaxPoolingWithArgmax2D()(x)
        _, mask = reference_pool(x)  # float 0/1, one 1 per window
        out = MaxUnpooling2D()([pooled, mask])
        np.testing.assert_array_equal(
            ops.convert_to_numpy(out), reference_unpool(pooled, mask)
        )

    @pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow's XLA functions")
    def test_xla_functions_keep_the_tie_rule(self):
        # XLA lowers TensorFlow's max-pool gradient kernels with another
        # tie rule, so inside `jit_compile=True` "auto" must not use them.
        import tensorflow as tf

        rng = np.random.default_rng(14)
        x = rng.integers(0, 3, size=(2, 7, 5, 3)).astype("float32")
        values = rng.normal(size=(2, 4, 3, 3)).astype("float32")
        pool, unpool = MaxPoolingWithArgmax2D("auto"), MaxUnpooling2D()

        @tf.function(jit_compile=True)
        def pool_and_unpool(x, values):
            _, switches = pool(x)
            return unpool([values, switches])

        _, mask = reference_pool(x)
        np.testing.assert_array_equal(
            pool_and_unpool(x, values).numpy(), reference_unpool(values, mask)
        )

    @pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow's CPU kernels")
    @pytest.mark.parametrize("training", [None, True])
    def test_the_cpu_kernels_unpool_for_inference_only(self, training):
        # In bfloat16 training graphs of RBDN-3 they gave wrong gradients
        # in some calls (`docs/performance.md`, "Pooling and unpooling").
        import tensorflow as tf

        pool, unpool = MaxPoolingWithArgmax2D("input"), MaxUnpooling2D()

        @tf.function
        def pool_and_unpool(x):
            pooled, switches = pool(x, training=training)
            return unpool([pooled, switches], training=training)

        kernels = not training and not _tensorflow_sees_a_gpu()
        assert ("MaxPoolGrad" in op_types(pool_and_unpool)) == kernels

    @pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow's CPU kernels")
    @pytest.mark.parametrize("training", [None, False, True])
    def test_no_gradient_graph_holds_max_pool_grad_grad(self, training):
        # Graphs holding both max-pool gradient kernels gave wrong
        # gradients (`docs/performance.md`, "Pooling and unpooling").
        import tensorflow as tf

        pool, unpool = MaxPoolingWithArgmax2D("input"), MaxUnpooling2D()

        @tf.function
        def gradients(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                pooled, switches = pool(x, training=training)
                out = unpool([pooled * 2.0, switches], training=training)
                total = tf.reduce_sum(out * x)
            return tape.gradient(total, x)

        assert "MaxPoolGradGrad" not in op_types(gradients)

    @pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow's XLA flags")
    def test_xla_auto_clustering_on_the_cpu_keeps_the_tie_rule(self):
        # With these flags XLA compiles the max-pool gradient kernels of a
        # plain `tf.function` (even in a cluster this small), and breaks
        # ties another way on odd sizes.
        out = run_in_fresh_process("""
            import os
            os.environ["TF_XLA_FLAGS"] = (
                "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"
                " --tf_xla_min_cluster_size=1"
            )
            import numpy as np
            import tensorflow as tf
            from keras_rbdn.layers import MaxPoolingWithArgmax2D
            from keras_rbdn.layers import MaxUnpooling2D
            from tests.layers.pooling_test import reference_pool
            from tests.layers.pooling_test import reference_unpool

            rng = np.random.default_rng(15)
            x = rng.integers(0, 3, size=(2, 15, 13, 4)).astype("float32")
            values = rng.normal(size=(2, 8, 7, 4)).astype("float32")
            pool, unpool = MaxPoolingWithArgmax2D("auto"), MaxUnpooling2D()

            @tf.function
            def pool_and_unpool(x, values):
                _, switches = pool(x)
                return unpool([values, switches])

            expected = reference_unpool(values, reference_pool(x)[1])
            misplaced = pool_and_unpool(x, values).numpy() != expected
            print(int(misplaced.sum()))
        """)
        assert out.split()[-1] == "0"

    @pytest.mark.parametrize(
        "flags, clustered",
        [
            ("", False),
            ("--tf_xla_auto_jit=2", False),  # GPU ops only
            ("--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit", True),
            ("--tf_xla_cpu_global_jit=true", True),
            ("--tf_xla_cpu_global_jit --tf_xla_cpu_global_jit=false", False),
        ],
    )
    def test_reads_whether_xla_may_cluster_cpu_ops(
        self, flags, clustered, monkeypatch
    ):
        from keras_rbdn.backend import tensorflow as tf_forms

        monkeypatch.setenv("TF_XLA_FLAGS", flags)
        assert tf_forms._xla_clusters_cpu_ops() is clustered

    @pytest.mark.skipif(not TORCH, reason="PyTorch's kernels")
    @pytest.mark.parametrize("training", [None, True])
    def test_pytorch_kernels_unpool_on_a_cpu(self, training):
        import torch
        from torch.profiler import profile

        x = np.random.default_rng(16).normal(size=(2, 9, 7, 3))
        x = torch.tensor(x.astype("float32"), device="cpu")
        pool, unpool = MaxPoolingWithArgmax2D("input"), MaxUnpooling2D()
        with profile() as profiler:
            pooled, switches = pool(x, training=training)
            unpool([pooled, switches], training=training)
        assert "aten::max_unpool2d" in {
            event.key for event in profiler.key_averages()
        }

    def test_config_and_errors(self):
        layer = MaxPoolingWithArgmax2D("auto", name="pool")
        clone = MaxPoolingWithArgmax2D.from_config(layer.get_config())
        assert clone.switches == "auto"
        assert MaxPoolingWithArgmax2D().switches == "mask"
        with pytest.raises(ValueError, match="switches must be one of"):
            MaxPoolingWithArgmax2D("argmax")


def _cpu_kernels_unpool():
    """Whether "auto" switches are the input for inference: TensorFlow or
    PyTorch, with no accelerator that the backend would use."""
    if TENSORFLOW:
        return not _tensorflow_sees_a_gpu()
    if keras.backend.backend() == "torch":
        import torch

        return not (
            torch.cuda.is_available() or torch.backends.mps.is_available()
        )
    return False


def _tensorflow_sees_a_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
