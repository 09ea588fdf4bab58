"""tf.data input pipeline: image files -> (network input, target) batches.

TensorFlow is imported when a pipeline is built, not with the package, so
`keras_rbdn.data` also imports where only the NumPy loader is used.
"""

import numpy as np

from keras_rbdn.checks import check_choice
from keras_rbdn.data.files import GRAY_WEIGHTS
from keras_rbdn.data.files import check_files
from keras_rbdn.data.files import list_image_files
from keras_rbdn.layers.noise import PIXEL_SCALE
from keras_rbdn.layers.noise import check_noise_protocol
from keras_rbdn.layers.noise import check_sigma_range
from keras_rbdn.models.tasks import get_task

FLIP_MODES = ("none", "horizontal", "both")


def image_channels(spec, channels):
    """Channels the task's images are read with (`channels` overrides)."""
    if channels is None:
        return spec.image_channels
    if not spec.same_channels:
        raise ValueError(
            f"Task {spec.name!r} reads {spec.image_channels}-channel images; "
            f"`channels` cannot change that. Received: channels={channels!r}"
        )
    if channels not in (1, 3):
        raise ValueError(
            f"`channels` must be 1 (gray) or 3 (RGB). Received: "
            f"channels={channels!r}"
        )
    return channels


def check_pipeline_arguments(
    spec, files, targets, batch_size, crop_size, flips, crops_per_image
):
    """Checks the arguments both pipelines share; returns the examples."""
    for name, value in (
        ("batch_size", batch_size),
        ("crops_per_image", crops_per_image),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{name}` must be a positive integer. Received: "
                f"{name}={value!r}"
            )
    if crop_size is not None and (
        isinstance(crop_size, bool)
        or not isinstance(crop_size, int)
        or crop_size < 1
    ):
        raise ValueError(
            "`crop_size` must be a positive integer or `None`. "
            f"Received: crop_size={crop_size!r}"
        )
    check_choice("flips", flips, FLIP_MODES)
    files = list_image_files(files)
    if spec.paired:
        if targets is None:
            raise ValueError(
                f"Task {spec.name!r} trains on pairs of images: pass "
                "`targets`, one target file per input file. Received: "
                "targets=None"
            )
        targets = list_image_files(targets)
        if len(targets) != len(files):
            raise ValueError(
                "`files` and `targets` must have the same length. "
                f"Received: {len(files)} files and {len(targets)} targets"
            )
        return list(zip(files, targets, strict=True))
    if targets is not None:
        raise ValueError(
            f"Task {spec.name!r} makes its pairs from one image; `targets` "
            f"is only for paired tasks. Received: {len(targets)} targets"
        )
    return files


def _decode(path, channels, crop_size):
    """File -> uint8 `(height, width, channels)`, mirror-padded to the crop."""
    import tensorflow as tf

    rgb = tf.io.decode_image(
        tf.io.read_file(path),
        channels=3,
        dtype=tf.uint8,
        expand_animations=False,
    )
    if channels == 1:
        gray = tf.tensordot(
            tf.cast(rgb, tf.float32),
            tf.constant(GRAY_WEIGHTS, tf.float32),
            axes=[[-1], [0]],
        )
        rgb = tf.cast(tf.round(gray), tf.uint8)[..., None]
    if not crop_size:
        return rgb
    return _mirror_pad(rgb, crop_size)


def _mirror_pad(image, size):
    """Extends `image` by mirroring to at least `size` x `size` (any size)."""
    import tensorflow as tf

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    out_height, out_width = tf.maximum(size, height), tf.maximum(size, width)
    rows = tf.concat([image, image[::-1]], axis=0)
    rows = tf.tile(rows, [(out_height + 2 * height - 1) // (2 * height), 1, 1])
    columns = tf.concat([rows, rows[:, ::-1]], axis=1)
    columns = tf.tile(
        columns, [1, (out_width + 2 * width - 1) // (2 * width), 1]
    )
    return columns[:out_height, :out_width]


def _standard_normal(shape, seed):
    """Stateless standard normal draws by the Box-Muller transform.

    Same distribution as `tf.random.stateless_normal`, at half the CPU cost
    and in multi-threaded elementwise ops: the noise is the most expensive
    step of the denoising pipeline.
    """
    import math

    import tensorflow as tf

    count = tf.reduce_prod(shape)
    half = (count + 1) // 2
    uniform = tf.random.stateless_uniform(
        tf.stack([2, half]),
        seed,
        minval=float(np.finfo("float32").tiny),
        maxval=1.0,
    )
    radius = tf.sqrt(-2.0 * tf.math.log(uniform[0]))
    angle = (2.0 * math.pi) * uniform[1]
    normal = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], 0)
    return tf.reshape(normal[:count], shape)


def _random_crop(images, crop_size, flips, seed):
    """Crops (and flips) the images of one example at the same place."""
    import tensorflow as tf

    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2)
    )
    if crop_size:
        shape = tf.shape(images[0])
        offsets = tf.random.stateless_uniform(
            [2],
            crop_seed,
            minval=0,
            maxval=tf.int32.max,
            dtype=tf.int32,
        ) % (shape[:2] - crop_size + 1)
        images = [
            image[
                offsets[0] : offsets[0] + crop_size,
                offsets[1] : offsets[1] + crop_size,
            ]
            for image in images
        ]
    if flips != "none":
        coins = tf.random.stateless_uniform([2], flip_seed) < 0.5
        images = [
            tf.cond(coins[0], lambda x=x: x[:, ::-1], lambda x=x: x)
            for x in images
        ]
        if flips == "both":
            images = [
                tf.cond(coins[1], lambda x=x: x[::-1], lambda x=x: x)
                for x in images
            ]
    return images


def image_dataset(
    files,
    task="denoise",
    batch_size=16,
    crop_size=128,
    channels=None,
    targets=None,
    shuffle=True,
    flips="horizontal",
    crops_per_image=1,
    cache=True,
    repeat=False,
    seed=0,
    rerandomize_each_iteration=True,
    noise_sigma_range=None,
    noise_protocol="float",
    small_images="pad",
    unreadable="raise",
    drop_remainder=False,
    shuffle_buffer=256,
):
    """A tf.data pipeline of a task's (network input, target) batches.

    Steps: decode PNG/JPEG/BMP/GIF files (gray or RGB, see `channels`) ->
    optional in-memory cache of the decoded uint8 images -> shuffle ->
    `crops_per_image` random crops of `crop_size` x `crop_size` with random
    flips -> batch -> the task transform (`TaskSpec.make_pair`: noise for
    `denoise`, Y -> CbCr for `colorize_ycbcr`, L -> ab for
    `colorize_lab`) -> prefetch. Maps run with `num_parallel_calls=
    AUTOTUNE` and keep their order; all randomness is stateless and derived
    from `seed`, so the batches are the same on every run with the same
    seed. With `rerandomize_each_iteration=True` every pass over the
    dataset (every epoch) draws new crops, flips and noise, still
    deterministically; with `False` every pass repeats the first one (for
    validation sets).

    Policies:

    - Images smaller than the crop: `small_images="pad"` extends them by
      mirroring (repeatedly, so any size works) to the crop size;
      `"skip"` drops them with a warning.
    - Unreadable files: every file is decoded once, with Pillow, when the
      dataset is made; `unreadable="raise"` raises a `ValueError` that
      names the file, `"skip"` drops it with a warning.

    Args:
        files: str or list. A folder, an image file or a list of files (see
            `list_image_files`).
        task: str. A `keras_rbdn.TASKS` name. Defaults to `"denoise"`.
        batch_size: int. Defaults to `16`.
        crop_size: int or `None`. Side of the square random crops (the
            paper trains on 128 x 128); `None` keeps whole images (then
            batch only images of one size, or `batch_size=1`). Defaults to
            `128`.
        channels: int or `None`. 1 (gray) or 3 (RGB) for `denoise` and
            `relight`; `None` is the task's default (gray; RGB for the
            colorization tasks). Defaults to `None`.
        targets: list or `None`. For paired tasks (`relight`): the target
            file of each input file, in the same order. Crops and flips are
            the same for an input and its target. Defaults to `None`.
        shuffle: bool. Shuffle the images every pass. Defaults to `True`.
        flips: str. `"none"`, `"horizontal"` (random left-right flips) or
            `"both"` (also up-down). Defaults to `"horizontal"`.
        crops_per_image: int. Random crops taken from each image per pass;
            the crops are shuffled with a buffer of `shuffle_buffer`.
            Defaults to `1`.
        cache: bool. Keep the decoded images in memory (as uint8) after the
            first pass. Defaults to `True`.
        repeat: bool. Repeat forever (then give `steps_per_epoch` to
            `fit`). Defaults to `False`.
        seed: int. Seed of the shuffling, crops, flips and noise. Defaults
            to `0`.
        rerandomize_each_iteration: bool. New random draws on every pass.
            Defaults to `True`.
        noise_sigma_range: tuple or `None`. For `denoise`: the noise level
            range on the 0-255 scale; `None` is the task's `(8, 50)`;
            `(25, 25)` gives a fixed level. Defaults to `None`.
        noise_protocol: str. For `denoise`: `"float"` (noise not
            clipped), `"uint8"` (noisy image clipped to [0, 1] and rounded
            to 8 bits) or `"mixed"` (each image `"uint8"` with probability
            1/2); see `keras_rbdn.layers.noise`. Defaults to `"float"`.
        small_images: str. `"pad"` or `"skip"`. Defaults to `"pad"`.
        unreadable: str. `"raise"` or `"skip"`. Defaults to `"raise"`.
        drop_remainder: bool. Drop the last incomplete batch. Defaults to
            `False`.
        shuffle_buffer: int. Crops in the crop shuffle buffer (used when
            `crops_per_image > 1`). Defaults to `256`.

    Returns:
        A `tf.data.Dataset` of `(network_input, target)` float32 batches,
        for example `((16, 128, 128, 1), (16, 128, 128, 1))` for `denoise`
        and `((16, 128, 128, 1), (16, 128, 128, 2))` for `colorize_lab`
        (the ab target in Lab units; the loss soft-encodes it).

    Example:

    >>> dataset = image_dataset("../shared/data/denoise/train400")
    >>> model.fit(dataset, epochs=10)
    """
    import tensorflow as tf

    spec = get_task(task)
    channels = image_channels(spec, channels)
    examples = check_pipeline_arguments(
        spec, files, targets, batch_size, crop_size, flips, crops_per_image
    )
    examples = check_files(examples, crop_size, small_images, unreadable)
    if noise_sigma_range is None:
        noise_sigma_range = spec.noise_sigma_range
    elif spec.noise_sigma_range is None:
        raise ValueError(
            f"Task {spec.name!r} adds no noise. Received: "
            f"noise_sigma_range={noise_sigma_range!r}"
        )
    if noise_sigma_range is not None:
        noise_sigma_range = check_sigma_range(noise_sigma_range)
    uint8_fraction = check_noise_protocol(noise_protocol)
    autotune = tf.data.AUTOTUNE
    paired = spec.paired

    def decode(*paths):
        return tuple(_decode(path, channels, crop_size) for path in paths)

    columns = (
        tuple(list(column) for column in zip(*examples, strict=True))
        if paired
        else (list(examples),)
    )
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    dataset = dataset.map(decode, num_parallel_calls=autotune)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(
            len(examples),
            seed=seed,
            reshuffle_each_iteration=rerandomize_each_iteration,
        )
    if repeat:
        dataset = dataset.repeat()
    if crops_per_image > 1:
        dataset = dataset.flat_map(
            lambda *images: tf.data.Dataset.from_tensors(images).repeat(
                crops_per_image
            )
        )

    def crop(images, random):
        seed_pair = tf.stack([tf.constant(seed, tf.int64), random])
        return tuple(_random_crop(images, crop_size, flips, seed_pair))

    dataset = tf.data.Dataset.zip(
        dataset,
        tf.data.Dataset.random(
            seed=2 * seed + 1,
            rerandomize_each_iteration=rerandomize_each_iteration,
        ),
    )
    dataset = dataset.map(crop, num_parallel_calls=autotune)
    if crops_per_image > 1 and shuffle:
        dataset = dataset.shuffle(
            shuffle_buffer,
            seed=seed + 1,
            reshuffle_each_iteration=rerandomize_each_iteration,
        )
    dataset = dataset.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=autotune,
    )

    def transform(images, random):
        images = [tf.cast(image, tf.float32) / 255.0 for image in images]
        noise = rounded = None
        if noise_sigma_range is not None:
            seed_pair = tf.stack([tf.constant(seed, tf.int64), random])
            sigma_seed, noise_seed = tf.unstack(
                tf.random.experimental.stateless_split(seed_pair, 2)
            )
            low, high = noise_sigma_range
            source = images[0]
            sigma = tf.random.stateless_uniform(
                [tf.shape(source)[0], 1, 1, 1],
                sigma_seed,
                minval=low / PIXEL_SCALE,
                maxval=high / PIXEL_SCALE,
            )
            noise = sigma * _standard_normal(tf.shape(source), noise_seed)
            if uint8_fraction > 0.0:
                coins = tf.random.stateless_uniform(
                    tf.shape(sigma),
                    tf.random.experimental.stateless_fold_in(noise_seed, 1),
                )
                rounded = tf.less(coins, uint8_fraction)
        source, clean = (images[0], images[1]) if paired else (None, images[0])
        return make_pair(clean, source, noise, rounded)

    # XLA fuses the elementwise color conversions: twice the throughput of
    # the Lab pipeline on CPUs.
    @tf.function(jit_compile=True)
    def make_pair(clean, source, noise, rounded):
        return spec.make_pair(
            clean,
            source=source,
            noise=noise,
            rounded=rounded,
            xp=tf.experimental.numpy,
        )

    dataset = tf.data.Dataset.zip(
        dataset,
        tf.data.Dataset.random(
            seed=2 * seed + 2,
            rerandomize_each_iteration=rerandomize_each_iteration,
        ),
    )
    dataset = dataset.map(transform, num_parallel_calls=autotune)
    return dataset.prefetch(autotune)
