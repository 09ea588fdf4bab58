"""How an image model meets an image whose channels differ from its own.

One rule, used by NumPy inference (`inference.apply_model`) and by the
exported serving graph (`keras_rbdn.export`):

- The image has the model's channels: the model runs as it is.
- An RGB image meets a gray model that returns gray (a gray denoiser or
  relighter): with `color_space="opponent"` (the default) the image is
  rotated into the orthonormal opponent color space
  (`layers.color.rgb_to_opponent_planes`), each plane goes through the
  model as a gray image, and the result is rotated back; white Gaussian
  noise stays white with the same sigma under that rotation, and most of
  the image's structure falls into the first plane, where the model sees
  it with the noise reduced by sqrt(3). With `color_space="per_channel"`
  R, G and B are processed as three gray images.
- A gray image meets an RGB model (a colorizer): the gray channel is
  repeated, which is the RGB image of that gray (its luminance is the gray
  value itself).

Anything else is a `ValueError` that names the channel counts.
"""

from keras import ops

from keras_rbdn.checks import check_choice
from keras_rbdn.layers.color import opponent_planes_to_rgb
from keras_rbdn.layers.color import rgb_to_opponent_planes

COLOR_SPACES = ("opponent", "per_channel")


def accepted_channels(model_channels, output_channels):
    """Image channel counts a model with these channels can take."""
    if model_channels == 1 and output_channels == 1:
        return (1, 3)
    if model_channels == 3:
        return (1, 3)
    return (model_channels,)


def run_on_channels(
    run,
    images,
    model_channels,
    output_channels,
    color_space="opponent",
    xp=ops,
):
    """Runs `run`, a model of `model_channels`, on `images` of any channels.

    Args:
        run: callable. The model: `(..., height, width, model_channels)`
            to `(..., height, width, output_channels)`.
        images: array `(..., height, width, channels)`, float32 in [0, 1].
        model_channels: int. Channels the model reads.
        output_channels: int. Channels the model returns.
        color_space: str. How a gray model processes an RGB image:
            `"opponent"` or `"per_channel"` (see the module docstring).
            Defaults to `"opponent"`.
        xp: module. `numpy` or `keras.ops`. Defaults to `keras.ops`.

    Returns:
        The output images: RGB for an RGB image through a gray model,
        otherwise what `run` returns.

    Raises:
        ValueError: an unknown `color_space`, or images whose channel count
            the model cannot take.
    """
    check_choice("color_space", color_space, COLOR_SPACES)
    channels = images.shape[-1]
    if channels not in accepted_channels(model_channels, output_channels):
        allowed = " or ".join(
            str(count)
            for count in accepted_channels(model_channels, output_channels)
        )
        raise ValueError(
            f"The model reads {model_channels} channel(s) and returns "
            f"{output_channels}: images must have {allowed} channels. "
            f"Received: images with {channels} channels"
        )
    if channels == model_channels:
        return run(images)
    if model_channels == 3:
        return run(xp.repeat(images, 3, axis=-1))
    opponent = color_space == "opponent"
    planes = rgb_to_opponent_planes(images, xp=xp) if opponent else images
    outputs = xp.concatenate(
        [run(planes[..., index : index + 1]) for index in range(3)], axis=-1
    )
    return opponent_planes_to_rgb(outputs, xp=xp) if opponent else outputs
