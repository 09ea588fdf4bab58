import keras
import numpy as np
import pytest
from keras import ops

import keras_rbdn
from keras_rbdn import backend
from keras_rbdn.backend import conv_forms
from keras_rbdn.layers import NarrowConv2D
from tests.testing import gradient


def force_form(monkeypatch, form):
    """Makes this backend and device use `form` (`conv_forms.BLOCKS` or
    `conv_forms.ROWS`) for every narrow convolution built."""
    registered = backend._registered(keras.backend.backend())
    always = form._replace(applies=lambda kernel_shape: True)
    monkeypatch.setitem(registered, "narrow_conv2d", (always,))


def force_blocks_form(monkeypatch):
    """Makes this backend and device use the blocks form (normally JAX on
    a GPU only, for kernels from 7 x 7 up)."""
    force_form(monkeypatch, conv_forms.BLOCKS)


def force_rows_form(monkeypatch):
    """Makes this backend and device use the rows form (normally
    TensorFlow, and JAX on a GPU, for few filters)."""
    force_form(monkeypatch, conv_forms.ROWS)


@pytest.fixture(params=["as chosen", "blocks", "rows"])
def form(request, monkeypatch):
    """Runs a test with the form this backend chooses, then with the blocks
    form forced, then with the rows form forced (used for few filters)."""
    if request.param == "blocks":
        force_blocks_form(monkeypatch)
    if request.param == "rows":
        force_rows_form(monkeypatch)
    return request.param


def reference_conv(x, kernel, bias):
    """'same' stride-1 cross-correlation, as Keras' Conv2D, in NumPy."""
    size = kernel.shape[0]
    pad = size // 2
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],), "float64")
    for i in range(size):
        for j in range(size):
            window = padded[:, i : i + height, j : j + width, :]
            out += np.einsum("bhwc,cf->bhwf", window, kernel[i, j])
    return out + bias


def random_layer(filters, kernel_size, channels, **kwargs):
    layer = NarrowConv2D(filters, kernel_size, padding="same", **kwargs)
    layer.build((None, None, None, channels))
    rng = np.random.default_rng(0)
    layer.set_weights(
        [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
    )
    return layer


class NarrowConv2DTest:
    @pytest.mark.parametrize(
        "filters, kernel_size, shape",
        [(1, 9, (2, 13, 11, 8)), (3, 5, (1, 7, 9, 4)), (2, 3, (1, 1, 1, 5))],
    )
    def test_matches_reference(self, filters, kernel_size, shape, form):
        layer = random_layer(filters, kernel_size, shape[-1])
        if form != "as chosen":
            assert layer._form == form
        x = np.random.default_rng(1).normal(size=shape).astype("float32")
        kernel, bias = (ops.convert_to_numpy(w) for w in layer.weights)
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer(x)),
            reference_conv(x, kernel, bias),
            rtol=1e-4,
            atol=1e-4,
        )

    def test_wide_layer_is_plain_conv(self):
        layer = random_layer(8, 3, 2)
        x = np.random.default_rng(2).normal(size=(1, 6, 5, 2))
        kernel, bias = (ops.convert_to_numpy(w) for w in layer.weights)
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer(x.astype("float32"))),
            reference_conv(x, kernel, bias),
            rtol=1e-4,
            atol=1e-4,
        )

    # In float16, PyTorch's CPU convolution rejected the one-filter kernel
    # in its backward pass on CPUs without native float16.
    @pytest.mark.parametrize(
        "policy", ["float32", "mixed_float16", "mixed_bfloat16"]
    )
    def test_gradients_match_conv2d(self, form, policy):
        layer = random_layer(1, 9, 6, dtype=policy)
        plain = keras.layers.Conv2D(1, 9, padding="same")
        plain.build((None, None, None, 6))
        plain.set_weights(layer.get_weights())
        rng = np.random.default_rng(3)
        x = rng.normal(size=(2, 10, 12, 6)).astype("float32")
        upstream = rng.normal(size=(2, 10, 12, 1)).astype("float32")
        actual = gradient(
            lambda v: ops.multiply(ops.cast(layer(v), "float32"), upstream), x
        )
        expected = gradient(lambda v: ops.multiply(plain(v), upstream), x)
        if policy == "float32":
            np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
        else:
            error = np.abs(actual - expected).max()
            assert error < 0.02 * np.abs(expected).max()

    def test_trains_under_jit(self, form):
        inputs = keras.Input((None, None, 4))
        outputs = NarrowConv2D(1, 5, padding="same")(inputs)
        model = keras.Model(inputs, outputs)
        # XLA on TensorFlow and JAX; torch.compile would only add minutes.
        jit = keras.backend.backend() != "torch"
        model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
        rng = np.random.default_rng(4)
        x = rng.normal(size=(4, 9, 8, 4)).astype("float32")
        y = rng.normal(size=(4, 9, 8, 1)).astype("float32")
        before = model.evaluate(x, y, verbose=0)
        model.fit(x, y, epochs=3, batch_size=4, verbose=0)
        assert model.evaluate(x, y, verbose=0) < before

    def test_mixed_bfloat16(self, form):
        layer = random_layer(1, 9, 8, dtype="mixed_bfloat16")
        x = np.random.default_rng(5).normal(size=(1, 12, 10, 8))
        out = layer(x.astype("float32"))
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
        kernel, bias = (ops.convert_to_numpy(w) for w in layer.weights)
        expected = reference_conv(x, kernel, bias)
        error = np.abs(
            ops.convert_to_numpy(ops.cast(out, "float32")) - expected
        )
        assert error.max() < 0.05 * np.abs(expected).max()

    def test_config_round_trip(self):
        layer = NarrowConv2D(1, 9, padding="same", name="deconv1")
        clone = NarrowConv2D.from_config(layer.get_config())
        assert (clone.filters, clone.kernel_size, clone.name) == (
            1,
            (9, 9),
            "deconv1",
        )
        assert keras.saving.get_registered_name(NarrowConv2D) == (
            "keras_rbdn>NarrowConv2D"
        )

    @pytest.mark.parametrize(
        "filters, kernel_size, channels, on_gpu",
        [
            (1, 9, 64, "blocks"),  # RBDN's deconv1
            (64, 9, 1, "blocks"),  # RBDN's conv1
            (4, 7, 3, "blocks"),
            (1, 5, 64, "rows"),  # kernel too small for blocks
            (1, 3, 64, "rows"),  # DnCNN's last layer
            (64, 3, 1, None),  # DnCNN's first layer
            (64, 9, 8, None),  # both sides wide
        ],
    )
    def test_form_chosen(
        self, monkeypatch, filters, kernel_size, channels, on_gpu
    ):
        backend_name = keras.backend.backend()
        if backend_name == "jax":  # Only JAX's forms depend on the device.
            from keras_rbdn.backend import jax as jax_forms

            monkeypatch.setattr(jax_forms, "on_gpu", lambda: True)
        layer = random_layer(filters, kernel_size, channels)
        if backend_name == "jax":
            expected = on_gpu
        elif backend_name == "tensorflow" and filters <= 4:
            expected = "rows"
        else:
            expected = None
        assert layer._form == expected

    @pytest.mark.skipif(
        keras.backend.backend() != "jax", reason="platforms are JAX's"
    )
    def test_jax_uses_the_plain_form_on_cpus(self, monkeypatch):
        from keras_rbdn.backend import jax as jax_forms

        monkeypatch.setattr(jax_forms, "on_gpu", lambda: False)
        assert random_layer(64, 9, 1)._form is None
        assert random_layer(1, 3, 64)._form is None

    def test_rbdn_in_blocks_form_matches_plain(self, monkeypatch):
        """RBDN's conv1 and deconv1 in the blocks form: same outputs."""
        rng = np.random.default_rng(6)
        x = rng.uniform(size=(2, 24, 16, 1)).astype("float32")

        def network_and_forms():
            network = keras_rbdn.build(
                branches=2, filters=8, kernel_size=9, trunk_depth=2
            )
            forms = [
                network.get_layer(name)._form for name in ("conv1", "deconv1")
            ]
            return network, forms

        plain, plain_forms = network_and_forms()
        plain.set_weights(
            [
                rng.uniform(0.5, 1.5, w.shape).astype("float32")
                if "variance" in w.path
                else rng.normal(0, 0.3, w.shape).astype("float32")
                for w in plain.weights
            ]
        )
        force_blocks_form(monkeypatch)
        blocks, blocks_forms = network_and_forms()
        blocks.set_weights(plain.get_weights())
        assert blocks_forms == ["blocks", "blocks"]
        assert plain_forms != blocks_forms
        expected = ops.convert_to_numpy(plain(x, training=False))
        np.testing.assert_allclose(
            ops.convert_to_numpy(blocks(x, training=False)),
            expected,
            rtol=1e-4,
            atol=1e-4 * np.abs(expected).max(),
        )


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's kernel layout"
)
def test_one_filter_kernel_is_copied_once_under_torch():
    """`Conv2D`'s PyTorch path copies the kernel into PyTorch's layout;
    the one-filter layer adds no copy of its own before it."""
    import torch

    layer = NarrowConv2D(1, 9, padding="same", use_bias=False)
    layer.build((1, 16, 16, 8))
    with torch.profiler.profile(record_shapes=True) as profile:
        layer(torch.rand(1, 16, 16, 8))
    kernel_copies = [
        event.name
        for event in profile.events()
        if event.name == "aten::copy_"
        and sorted(event.input_shapes[0]) == sorted(layer.kernel.shape)
    ]
    assert kernel_copies == ["aten::copy_"]
