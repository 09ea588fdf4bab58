import pytest

import keras_rbdn


class BuildTest:
    def test_default_is_paper_denoiser(self):
        model = keras_rbdn.build(branches=3, task="denoise")
        assert isinstance(model, keras_rbdn.RBDN)
        assert model.count_params() == 790593
        assert model.input_shape == (None, None, None, 1)
        assert model.output_shape == (None, None, None, 1)

    @pytest.mark.parametrize("task", ["denoise", "relight"])
    def test_rgb_same_shape_tasks(self, task):
        model = keras_rbdn.build(branches=1, task=task, channels=3, c=4, D=1)
        assert model.input_shape[-1] == model.output_shape[-1] == 3

    def test_paper_aliases(self):
        model = keras_rbdn.build(branches=2, K=5, c=16, T=5, D=4)
        config = model.get_config()
        assert (config["kernel_size"], config["filters"]) == (5, 16)
        assert (config["trunk_kernel_size"], config["trunk_depth"]) == (5, 4)
        assert config["branches"] == 2

    def test_alias_and_name_together_is_an_error(self):
        with pytest.raises(ValueError, match="filters=32"):
            keras_rbdn.build(c=16, filters=32)

    def test_unknown_task_names_supported_tasks(self):
        with pytest.raises(ValueError, match="task='deblur'") as error:
            keras_rbdn.build(task="deblur")
        for task in keras_rbdn.TASKS:
            assert task in str(error.value)

    def test_channel_mismatch(self):
        with pytest.raises(ValueError, match="output_channels=3"):
            keras_rbdn.build(task="denoise", input_channels=1,
                             output_channels=3)

    @pytest.mark.parametrize(
        "arguments, message",
        [
            (dict(branches=-2), "branches=-2"),
            (dict(K=8), "kernel_size=8"),
            (dict(upsampling="cubic"), "upsampling='cubic'"),
        ],
    )
    def test_bad_arguments(self, arguments, message):
        with pytest.raises(ValueError, match=message):
            keras_rbdn.build(**arguments)
