import keras
import numpy as np
import pytest
from keras import ops

from keras_rbdn import RBDN
from tests.testing import run_in_fresh_process


def conv_params(kernel, inputs, filters, batch_norm=True):
    """Weights + biases of a conv, plus gamma/beta/mean/variance of its BN."""
    return kernel * kernel * inputs * filters + filters + (
        4 * filters if batch_norm else 0
    )


def expected_params(branches, K=9, c=64, T=3, D=9, channels=1, merge=True):
    """Parameter count of the paper's network, layer by layer."""
    total = conv_params(K, channels, c)  # conv1
    for level in range(1, branches + 1):
        total += conv_params(3, c, c)  # convBk_1
        merged = merge and level < branches
        total += conv_params(3, 2 * c if merged else c, c)  # convBk_2
        total += conv_params(3, c, c)  # deconvBk_1
    total += conv_params(T, 2 * c if merge and branches else c, c)  # conv2_1
    total += (D - 1) * conv_params(T, c, c)  # conv2_2 .. conv2_D
    total += conv_params(K, c, channels, batch_norm=False)  # deconv1
    return total


# The 3-branch network of the paper's prototxt: (name, kernel, filters).
PAPER_CONVOLUTIONS = (
    [("conv1", 9, 64)]
    + [
        (f"{kind}B{level}{suffix}", 3, 64)
        for level in (1, 2, 3)
        for kind, suffix in (("conv", "_1"), ("conv", "_2"), ("deconv", "_1"))
    ]
    + [(f"conv2_{index}", 3, 64) for index in range(1, 10)]
    + [("deconv1", 9, 1)]
)


class RBDNTest:
    def test_paper_network_has_790593_parameters(self):
        model = RBDN()
        assert model.count_params() == 790593
        assert expected_params(3) == 790593

    def test_paper_layer_list(self):
        model = RBDN()
        convolutions = [
            (layer.name, layer.kernel_size[0], layer.filters)
            for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D)
        ]
        assert sorted(convolutions) == sorted(PAPER_CONVOLUTIONS)
        names = {layer.name for layer in model.layers}
        for name in ["pool1", "poolB1", "poolB2", "poolB3", "unpool1"]:
            assert name in names
        for level in (1, 2, 3):
            assert f"unpoolB{level}" in names
        # B_3 is the deepest branch: nothing is concatenated into it.
        assert {"concat1", "concatB1", "concatB2"} <= names
        assert "concatB3" not in names
        batch_norms = [
            layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        assert len(batch_norms) == len(PAPER_CONVOLUTIONS) - 1

    def test_branch_wiring(self):
        model = RBDN(branches=2, filters=8)
        # convB1_2 reads the concat of poolB1 (c) and B_2's output (c).
        assert model.get_layer("convB1_2").kernel.shape == (3, 3, 16, 8)
        assert model.get_layer("convB2_2").kernel.shape == (3, 3, 8, 8)
        assert model.get_layer("conv2_1").kernel.shape == (3, 3, 16, 8)

    @pytest.mark.parametrize(
        "arguments",
        [
            dict(branches=0),
            dict(branches=1),
            dict(branches=4),
            dict(branches=2, kernel_size=5, filters=16, trunk_kernel_size=5,
                 trunk_depth=3),
            dict(branches=3, input_channels=3),
            dict(branches=2, merge="none"),
        ],
    )
    def test_parameter_count_matches_paper_formula(self, arguments):
        model = RBDN(**arguments)
        expected = expected_params(
            arguments["branches"],
            K=arguments.get("kernel_size", 9),
            c=arguments.get("filters", 64),
            T=arguments.get("trunk_kernel_size", 3),
            D=arguments.get("trunk_depth", 9),
            channels=arguments.get("input_channels", 1),
            merge=arguments.get("merge", "concat") == "concat",
        )
        assert model.count_params() == expected

    def test_bilinear_upsampling_drops_branch_deconvolutions(self):
        model = RBDN(upsampling="bilinear")
        assert model.count_params() == 790593 - 3 * conv_params(3, 64, 64)
        names = {layer.name for layer in model.layers}
        assert not any(name.startswith("deconvB") for name in names)

    @pytest.mark.parametrize("size", [(33, 21), (1, 1), (7, 5), (481, 321)])
    def test_any_input_size(self, size):
        model = RBDN(branches=3, filters=8, trunk_depth=2)
        x = np.random.default_rng(0).uniform(size=(1, *size, 1))
        out = model.predict(x.astype("float32"), verbose=0)
        assert out.shape == (1, *size, 1)
        assert np.all(np.isfinite(out))

    @pytest.mark.parametrize(
        "arguments", [dict(upsampling="bilinear"), dict(merge="none")]
    )
    def test_ablations_any_size(self, arguments):
        model = RBDN(branches=2, filters=4, trunk_depth=1, **arguments)
        x = np.random.default_rng(0).uniform(size=(2, 13, 10, 1))
        assert model.predict(x, verbose=0).shape == (2, 13, 10, 1)

    def test_global_residual_adds_input(self):
        model = RBDN(branches=1, filters=4, trunk_depth=1,
                     input_channels=3, global_residual=True)
        deconv = model.get_layer("deconv1")
        deconv.set_weights([np.zeros_like(w) for w in deconv.get_weights()])
        x = np.random.default_rng(0).uniform(size=(2, 9, 11, 3))
        np.testing.assert_allclose(
            model.predict(x.astype("float32"), verbose=0), x, atol=1e-6
        )

    def test_trunk_dilation(self):
        model = RBDN(branches=1, filters=4, trunk_depth=2,
                     trunk_dilation_rate=2)
        assert model.get_layer("conv2_2").dilation_rate == (2, 2)
        assert model.get_layer("convB1_1").dilation_rate == (1, 1)

    def test_config_round_trip(self):
        model = RBDN(branches=2, filters=8, trunk_depth=3, input_channels=3,
                     output_channels=2, upsampling="bilinear", merge="none",
                     name="custom")
        config = model.get_config()
        clone = RBDN.from_config(config)
        assert clone.get_config() == config
        assert clone.count_params() == model.count_params()

    def test_trains_a_step(self):
        model = RBDN(branches=2, filters=4, trunk_depth=1)
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(0).uniform(size=(4, 16, 12, 1))
        history = model.fit(x, x, epochs=1, batch_size=2, verbose=0)
        assert np.isfinite(history.history["loss"][0])

    @pytest.mark.parametrize(
        "arguments, message",
        [
            (dict(branches=-1), "branches=-1"),
            (dict(branches=1.5), "branches=1.5"),
            (dict(kernel_size=4), "kernel_size=4"),
            (dict(trunk_kernel_size=2), "trunk_kernel_size=2"),
            (dict(filters=0), "filters=0"),
            (dict(trunk_depth=0), "trunk_depth=0"),
            (dict(input_channels=0), "input_channels=0"),
            (dict(upsampling="nearest"), "upsampling='nearest'"),
            (dict(merge="add"), "merge='add'"),
            (dict(input_channels=1, output_channels=3, global_residual=True),
             "output_channels=3"),
        ],
    )
    def test_rejects_bad_arguments(self, arguments, message):
        with pytest.raises(ValueError, match=message.replace(".", r"\.")):
            RBDN(**arguments)


@pytest.mark.slow
def test_keras_file_loads_in_fresh_process(tmp_path):
    model = RBDN(branches=2, filters=8, trunk_depth=2)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).uniform(size=(2, 17, 13, 1))
    x = x.astype("float32")
    model.fit(x, x, epochs=1, verbose=0)  # moves the BN statistics
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    expected = ops.convert_to_numpy(model(x, training=False))
    output = run_in_fresh_process(
        f"""
        import numpy as np, keras
        import keras_rbdn  # registers the custom classes
        model = keras.saving.load_model({str(path)!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        np.save({str(tmp_path / 'y.npy')!r},
                keras.ops.convert_to_numpy(model(x, training=False)))
        print(type(model).__name__, model.count_params())
        """
    )
    assert output.split()[-2:] == ["RBDN", str(model.count_params())]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's CPU kernels"
)
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_pytorch_kernels_compute_what_masks_compute(policy, monkeypatch):
    """Under PyTorch on a CPU the pooling and unpooling run on PyTorch's own
    max-pool kernels; with them switched off, on the switch masks (checked
    against Caffe's rule in `tests/layers/pooling_test.py`). Outputs and
    gradients are the same bit for bit, ties after the ReLUs included."""
    import torch

    from keras_rbdn import backend

    rng = np.random.default_rng(5)
    x = torch.tensor(rng.uniform(size=(2, 37, 29, 1)).astype("float32"))
    y = torch.tensor(rng.uniform(size=(2, 37, 29, 1)).astype("float32"))
    model = RBDN(branches=3, filters=8, trunk_depth=2, dtype=policy)
    initial = model.get_weights()

    def outputs_and_gradients():
        model.set_weights(initial)  # training updates the moving statistics
        with torch.no_grad():
            outputs = model(x, training=False)
        loss = torch.mean((model(x, training=True).float() - y) ** 2)
        weights = [v.value for v in model.trainable_variables]
        gradients = torch.autograd.grad(loss, weights)
        return [ops.convert_to_numpy(t) for t in (outputs, *gradients)]

    with backend.without("native_pooling"):
        with_masks = outputs_and_gradients()
    with_kernels = outputs_and_gradients()
    for kernels, masks in zip(with_kernels, with_masks, strict=True):
        np.testing.assert_array_equal(kernels, masks)
