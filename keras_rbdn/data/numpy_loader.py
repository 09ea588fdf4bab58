"""A NumPy input pipeline (`keras.utils.PyDataset`) that needs no TensorFlow."""

import keras
import numpy as np

from keras_rbdn.data.files import check_files
from keras_rbdn.data.files import mirror_pad
from keras_rbdn.data.files import read_image
from keras_rbdn.data.pipeline import check_pipeline_arguments
from keras_rbdn.data.pipeline import image_channels
from keras_rbdn.layers.noise import PIXEL_SCALE
from keras_rbdn.layers.noise import check_noise_protocol
from keras_rbdn.layers.noise import check_sigma_range
from keras_rbdn.models.tasks import get_task


class ImagePairLoader(keras.utils.PyDataset):
    """(network input, target) batches of a task, made with NumPy only.

    The same pairs as `image_dataset` (same files, policies, gray
    conversion, mirror padding, crops, flips and task transform; the random
    draws come from NumPy instead of TensorFlow, so the individual crops
    differ), for machines or backends without TensorFlow, such as a JAX GPU
    box. Images are read with Pillow. Batch `index` of epoch `e` depends
    only on `(seed, e, index)`, so batches are reproducible and can be made
    by parallel workers (`workers`, `use_multiprocessing`).

    Args:
        files: str or list. A folder, an image file or a list of files.
        task: str. A `keras_rbdn.TASKS` name. Defaults to `"denoise"`.
        batch_size: int. Defaults to `16`.
        crop_size: int or `None`. Side of the random crops; `None` keeps
            whole images (batch only images of one size). Defaults to `128`.
        channels: int or `None`. 1 or 3 for `denoise` and `relight`; `None`
            is the task's default. Defaults to `None`.
        targets: list or `None`. Target files of a paired task
            (`relight`). Defaults to `None`.
        shuffle: bool. Shuffle every epoch. Defaults to `True`.
        flips: str. `"none"`, `"horizontal"` or `"both"`. Defaults to
            `"horizontal"`.
        crops_per_image: int. Crops per image and epoch. Defaults to `1`.
        cache: bool. Keep decoded images in memory (uint8). Defaults to
            `True`.
        seed: int. Defaults to `0`.
        rerandomize_each_iteration: bool. New crops, flips and noise every
            epoch; `False` repeats the first epoch (validation). Defaults
            to `True`.
        noise_sigma_range: tuple or `None`. Noise level range for
            `denoise`, 0-255 scale; `None` is the task's. Defaults to
            `None`.
        noise_protocol: str. `"float"`, `"uint8"` or `"mixed"`: whether
            noisy images are clipped to [0, 1] and rounded to 8 bits (see
            `keras_rbdn.layers.noise`). Defaults to `"float"`.
        add_noise: bool. `False` makes `denoise` pairs without noise
            (clean input, clean target), for a model that adds the noise
            itself on the accelerator (`RandomGaussianNoise`, as the
            denoising recipe does). Defaults to `True`.
        small_images: str. `"pad"` (mirror) or `"skip"`. Defaults to
            `"pad"`.
        unreadable: str. `"raise"` or `"skip"`. Defaults to `"raise"`.
        drop_remainder: bool. Drop the last incomplete batch. Defaults to
            `False`.
        **kwargs: `keras.utils.PyDataset` arguments: `workers`,
            `use_multiprocessing`, `max_queue_size`.

    Example:

    >>> loader = ImagePairLoader("../shared/data/denoise/train400")
    >>> noisy, clean = loader[0]
    >>> model.fit(loader, epochs=10)
    """

    def __init__(
        self,
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
        seed=0,
        rerandomize_each_iteration=True,
        noise_sigma_range=None,
        noise_protocol="float",
        add_noise=True,
        small_images="pad",
        unreadable="raise",
        drop_remainder=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.spec = get_task(task)
        self.channels = image_channels(self.spec, channels)
        examples = check_pipeline_arguments(
            self.spec,
            files,
            targets,
            batch_size,
            crop_size,
            flips,
            crops_per_image,
        )
        examples = check_files(examples, crop_size, small_images, unreadable)
        self.examples = [
            entry if isinstance(entry, tuple) else (entry,)
            for entry in examples
        ]
        if noise_sigma_range is None:
            noise_sigma_range = self.spec.noise_sigma_range
        elif self.spec.noise_sigma_range is None:
            raise ValueError(
                f"Task {self.spec.name!r} adds no noise. Received: "
                f"noise_sigma_range={noise_sigma_range!r}"
            )
        self.noise_sigma_range = (
            None
            if noise_sigma_range is None or not add_noise
            else check_sigma_range(noise_sigma_range)
        )
        self.uint8_fraction = check_noise_protocol(noise_protocol)
        self.batch_size = batch_size
        self.crop_size = crop_size
        self.shuffle = shuffle
        self.flips = flips
        self.crops_per_image = crops_per_image
        self.cache = cache
        self.seed = seed
        self.rerandomize_each_iteration = rerandomize_each_iteration
        self.drop_remainder = drop_remainder
        self.epoch = 0
        self._images = {}

    def __len__(self):
        crops = len(self.examples) * self.crops_per_image
        if self.drop_remainder:
            return crops // self.batch_size
        return -(-crops // self.batch_size)

    def on_epoch_end(self):
        if self.rerandomize_each_iteration:
            self.epoch += 1

    def _read(self, index):
        if index in self._images:
            return self._images[index]
        images = [
            read_image(path, self.channels) for path in self.examples[index]
        ]
        if self.crop_size:
            images = [mirror_pad(image, self.crop_size) for image in images]
        if self.cache:
            self._images[index] = images
        return images

    def _order(self):
        crops = np.repeat(np.arange(len(self.examples)), self.crops_per_image)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, 0])
            crops = rng.permutation(crops)
        return crops

    def _crop(self, images, rng):
        if self.crop_size:
            height, width = images[0].shape[:2]
            top = rng.integers(0, height - self.crop_size + 1)
            left = rng.integers(0, width - self.crop_size + 1)
            images = [
                image[top : top + self.crop_size, left : left + self.crop_size]
                for image in images
            ]
        coins = rng.random(2) < 0.5
        if self.flips != "none" and coins[0]:
            images = [image[:, ::-1] for image in images]
        if self.flips == "both" and coins[1]:
            images = [image[::-1] for image in images]
        return images

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(
                f"Batch index out of range [0, {len(self)}). "
                f"Received: index={index}"
            )
        rng = np.random.default_rng([self.seed, self.epoch, 1, index])
        order = self._order()
        chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
        crops = [self._crop(self._read(i), rng) for i in chosen]
        columns = zip(*crops, strict=True)
        images = [
            np.stack(column).astype("float32") / 255.0 for column in columns
        ]
        noise = rounded = None
        if self.noise_sigma_range is not None:
            low, high = self.noise_sigma_range
            sigma = rng.uniform(low, high, (len(chosen), 1, 1, 1))
            noise = (
                sigma / PIXEL_SCALE * rng.standard_normal(images[0].shape)
            ).astype("float32")
            if self.uint8_fraction > 0.0:
                rounded = rng.uniform(size=sigma.shape) < self.uint8_fraction
        if self.spec.paired:
            source, clean = images
        else:
            source, clean = None, images[0]
        network_input, target = self.spec.make_pair(
            clean, source=source, noise=noise, rounded=rounded, xp=np
        )
        return (
            np.asarray(network_input, "float32"),
            np.asarray(target, "float32"),
        )
