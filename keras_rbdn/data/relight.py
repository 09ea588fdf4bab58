"""Face relighting pairs from the Extended Yale Face Database B (cropped).

The cropped database has one folder per subject (`yaleB01`, ...), holding
`yaleBxx_P00A<azimuth>E<elevation>.png`: the frontal face under up to 64
point-light directions. A relighting pair maps any lighting of subject `s`
to the same face under the canonical lighting, `yaleBs_P00A+000E+00.png`
(light along the camera axis).

Validation must use faces the network never saw, so the split is by
subject: no validation subject appears in the training set.

The database crops each subject's canonical image apart from its other
lightings, which line up with each other to a pixel: the canonical face
sits up to 10 pixels away from the same face in the inputs (measured on
the 33 subjects here). A network trained on such pairs cannot tell the
offset of a new face and learns to blur. `align_targets=True` moves each
canonical image onto its subject's inputs (`canonical_offset`).
"""

import os
import re

import numpy as np
from PIL import Image

CANONICAL_LIGHTING = "P00A+000E+00"
# An input lit within this many degrees of frontal, in azimuth and in
# elevation, is near-frontal: already close to its target.
NEAR_FRONTAL_DEGREES = 15
_IMAGE_PATTERN = re.compile(
    r"^(?P<subject>yaleB\d+)_(?P<lighting>P00A[+-]\d{3}E[+-]\d{2})\.png$"
)
_SUBJECT_PATTERN = re.compile(r"^yaleB\d+$")


def list_relight_subjects(directory):
    """Returns the sorted subject folder names (`yaleBxx`) in `directory`.

    Args:
        directory: str. The database root, holding one folder per subject.

    Returns:
        A sorted list of subject names.
    """
    if not os.path.isdir(directory):
        raise ValueError(
            "`directory` must be the relighting database folder. "
            f"Received: directory={directory!r} (not a directory)"
        )
    return sorted(
        name
        for name in os.listdir(directory)
        if _SUBJECT_PATTERN.match(name)
        and os.path.isdir(os.path.join(directory, name))
    )


def list_relight_pairs(
    directory, subjects=None, include_canonical=False, within_degrees=None
):
    """Lists the (input, target) image paths of the relighting pairs.

    Args:
        directory: str. The database root, holding one folder per subject.
        subjects: list of str or `None`. The subjects to list; `None` means
            every subject in `directory`. Defaults to `None`.
        include_canonical: bool. Whether to also pair the canonical image
            with itself (the identity pair). Defaults to `False`.
        within_degrees: number or `None`. If set, keep only the inputs lit
            within this many degrees of frontal, in azimuth and in
            elevation (`lighting_angles`). Defaults to `None` (all).

    Returns:
        A list of `(subject, input_path, target_path)` tuples, sorted by
        subject and then by input file name.
    """
    if subjects is None:
        subjects = list_relight_subjects(directory)
    pairs = []
    for subject in subjects:
        folder = os.path.join(directory, subject)
        target = os.path.join(folder, f"{subject}_{CANONICAL_LIGHTING}.png")
        if not os.path.isfile(target):
            raise ValueError(
                f"Subject {subject!r} has no canonical-lighting image. "
                f"Received: directory={directory!r}, missing {target!r}"
            )
        for name in sorted(os.listdir(folder)):
            match = _IMAGE_PATTERN.match(name)
            if match is None or match["subject"] != subject:
                continue
            if (
                match["lighting"] == CANONICAL_LIGHTING
                and not include_canonical
            ):
                continue
            if within_degrees is not None and (
                max(map(abs, lighting_angles(name))) > within_degrees
            ):
                continue
            pairs.append((subject, os.path.join(folder, name), target))
    return pairs


def lighting_angles(path):
    """The light direction of a Yale B image, from its file name.

    Args:
        path: str. A `yaleBxx_P00A<azimuth>E<elevation>.png` file.

    Returns:
        `(azimuth, elevation)` in degrees, ints; `(0, 0)` is the canonical
        lighting.
    """
    match = _IMAGE_PATTERN.match(os.path.basename(path))
    if match is None:
        raise ValueError(
            "Not a Yale B image name (yaleBxx_P00A<azimuth>E<elevation>."
            f"png). Received: path={path!r}"
        )
    lighting = match["lighting"]
    return int(lighting[4:8]), int(lighting[9:])


def split_relight_subjects(subjects, validation_subjects=0.2, seed=0):
    """Splits subjects into disjoint training and validation subjects.

    Args:
        subjects: list of str. All subject names.
        validation_subjects: float, int or list of str. A fraction in
            (0, 1) of the subjects, a number of subjects, or the explicit
            validation subjects. Defaults to `0.2`.
        seed: int. Seed of the shuffle that picks the validation subjects
            (when they are not given explicitly). Defaults to `0`.

    Returns:
        `(train_subjects, validation_subjects)`, two sorted, disjoint lists.
    """
    subjects = sorted(subjects)
    if isinstance(validation_subjects, (list, tuple, set)):
        unknown = sorted(set(validation_subjects) - set(subjects))
        if unknown:
            raise ValueError(
                "Every validation subject must be one of `subjects`. "
                f"Received unknown: {unknown}"
            )
        chosen = sorted(validation_subjects)
    else:
        count = validation_subjects
        if isinstance(count, float):
            if not 0 < count < 1:
                raise ValueError(
                    "A fractional `validation_subjects` must be in (0, 1). "
                    f"Received: validation_subjects={count}"
                )
            count = max(1, int(round(count * len(subjects))))
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError(
                "`validation_subjects` must be a fraction, a count or a list "
                f"of subjects. Received: validation_subjects={count!r}"
            )
        if not 0 < count < len(subjects):
            raise ValueError(
                "Both splits need at least one subject. Received: "
                f"validation_subjects={count} for {len(subjects)} subjects"
            )
        order = np.random.default_rng(seed).permutation(len(subjects))
        chosen = sorted(subjects[i] for i in order[:count])
    train = [subject for subject in subjects if subject not in chosen]
    return train, chosen


def _read_gray(path, image_size):
    image = Image.open(path).convert("L")
    if image_size is not None:
        height, width = image_size
        if image.size != (width, height):
            # Box filter: each output pixel averages the input pixels it
            # covers, the right choice for downscaling.
            image = image.resize((width, height), Image.Resampling.BOX)
    return np.asarray(image, dtype="float32")[..., None] / 255.0


def _normalized(image):
    return (image - image.mean()) / image.std()


def canonical_offset(directory, subject, max_shift=12):
    """Where a subject's canonical image lies against its other lightings.

    The offset is the integer shift that best correlates the canonical
    image with the mean of the subject's near-frontal inputs (lit within
    `NEAR_FRONTAL_DEGREES` of frontal, shaded most like it), searched
    within `max_shift` pixels each way (at most a quarter of the smaller
    side) over the image less that border.

    Args:
        directory: str. The database root, holding one folder per subject.
        subject: str. The subject folder name.
        max_shift: int. The largest shift searched, in pixels. Defaults
            to `12`.

    Returns:
        `(dy, dx)`: the canonical image's pixel `(y + dy, x + dx)` shows
        what the inputs show at `(y, x)`.
    """
    pairs = list_relight_pairs(
        directory, [subject], within_degrees=NEAR_FRONTAL_DEGREES
    )
    if not pairs:
        raise ValueError(
            f"Subject {subject!r} has no input lit within "
            f"{NEAR_FRONTAL_DEGREES} degrees of frontal to align its "
            f"canonical image with. Received: directory={directory!r}"
        )
    reference = np.mean([_read_gray(path, None) for _, path, _ in pairs], 0)
    canonical = _read_gray(pairs[0][2], None)[..., 0]
    height, width = canonical.shape
    m = min(max_shift, min(height, width) // 4)
    reference = _normalized(reference[m : height - m, m : width - m, 0])
    best, offset = -np.inf, (0, 0)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            window = canonical[
                m + dy : height - m + dy, m + dx : width - m + dx
            ]
            score = np.mean(_normalized(window) * reference)
            if score > best:
                best, offset = score, (dy, dx)
    return offset


def shift_image(image, offset):
    """`image` (`(height, width, channels)`) moved by `-offset`: its pixel
    `(y + dy, x + dx)` lands on `(y, x)`; the edge pixels fill what is
    uncovered."""
    dy, dx = offset
    height, width = image.shape[:2]
    m = max(abs(dy), abs(dx))
    padded = np.pad(image, ((m, m), (m, m), (0, 0)), mode="edge")
    return padded[m + dy : m + dy + height, m + dx : m + dx + width]


def load_relight_arrays(
    directory,
    subjects=None,
    image_size=None,
    include_canonical=False,
    lightings_per_subject=None,
    seed=0,
    within_degrees=None,
    align_targets=False,
):
    """Loads relighting pairs as NumPy arrays in [0, 1].

    Args:
        directory: str. The database root, holding one folder per subject.
        subjects: list of str or `None`. Subjects to load; `None` means all.
            Defaults to `None`.
        image_size: tuple `(height, width)` or `None`. Size to downscale
            every image to (box filter); `None` keeps the stored 192 x 168.
            Defaults to `None`.
        include_canonical: bool. Whether to include the identity pair of
            each subject. Defaults to `False`.
        lightings_per_subject: int or `None`. If set, keep at most this many
            input lightings per subject, drawn with `seed`. Defaults to
            `None` (all).
        seed: int. Seed of the lighting subsample. Defaults to `0`.
        within_degrees: number or `None`. If set, keep only the inputs lit
            within this many degrees of frontal (see `list_relight_pairs`).
            Defaults to `None` (all).
        align_targets: bool. Whether to move each canonical image onto its
            subject's inputs (`canonical_offset`, at the stored size),
            identity pairs included. Defaults to `False`.

    Returns:
        `(inputs, targets)`, float32 arrays of shape
        `(pairs, height, width, 1)`.
    """
    pairs = list_relight_pairs(
        directory, subjects, include_canonical, within_degrees
    )
    if lightings_per_subject is not None:
        rng = np.random.default_rng(seed)
        kept = []
        for subject in sorted({pair[0] for pair in pairs}):
            own = [pair for pair in pairs if pair[0] == subject]
            order = sorted(rng.permutation(len(own))[:lightings_per_subject])
            kept.extend(own[i] for i in order)
        pairs = kept
    if not pairs:
        raise ValueError(
            "No relighting pairs found. Received: "
            f"directory={directory!r}, subjects={subjects!r}"
        )
    targets = {}
    inputs, outputs = [], []
    for subject, input_path, target_path in pairs:
        if target_path not in targets:
            targets[target_path] = _read_target(
                directory, subject, image_size, align_targets
            )
        if input_path == target_path:
            inputs.append(targets[target_path])
        else:
            inputs.append(_read_gray(input_path, image_size))
        outputs.append(targets[target_path])
    return np.stack(inputs), np.stack(outputs)


def _read_target(directory, subject, image_size, align):
    path = os.path.join(
        directory, subject, f"{subject}_{CANONICAL_LIGHTING}.png"
    )
    if not align:
        return _read_gray(path, image_size)
    target = shift_image(
        _read_gray(path, None), canonical_offset(directory, subject)
    )
    if image_size is None:
        return target
    image = Image.fromarray(target[..., 0]).resize(
        image_size[::-1], Image.Resampling.BOX
    )
    return np.asarray(image, dtype="float32")[..., None]


def load_relight_split(
    directory,
    validation_subjects=0.2,
    image_size=None,
    train_subjects=None,
    lightings_per_subject=None,
    seed=0,
):
    """Loads training and validation pairs, split by subject.

    Args:
        directory: str. The database root, holding one folder per subject.
        validation_subjects: float, int or list of str. See
            `split_relight_subjects`. Defaults to `0.2`.
        image_size: tuple `(height, width)` or `None`. See
            `load_relight_arrays`. Defaults to `None`.
        train_subjects: int or `None`. If set, train on only the first this
            many of the training subjects (a smaller study). Defaults to
            `None` (all).
        lightings_per_subject: int or `None`. See `load_relight_arrays`.
            Defaults to `None`.
        seed: int. Seed of the subject split and the lighting subsample.
            Defaults to `0`.

    Returns:
        `((train_inputs, train_targets), (val_inputs, val_targets))`.
    """
    train, validation = split_relight_subjects(
        list_relight_subjects(directory), validation_subjects, seed
    )
    if train_subjects is not None:
        train = train[:train_subjects]
    load = dict(
        image_size=image_size,
        lightings_per_subject=lightings_per_subject,
        seed=seed,
    )
    return (
        load_relight_arrays(directory, train, **load),
        load_relight_arrays(directory, validation, **load),
    )


def relight_augmentation(flip=True, shift=0.0, scale=0.0, gain=0.0, seed=None):
    """A `tf.data` map function that augments batches of relighting pairs.

    A new face differs from the training faces in its position, size and
    albedo. Each pair of a batch gets its own random horizontal flip, shift
    and scale, the same for the input and its target (the two are stacked
    as the channels of one image for Keras's preprocessing layers, which
    fill the borders by reflection); the brightness gain multiplies the
    input alone (clipped to [0, 1]), since the target is the same face
    however the input was exposed.

    Args:
        flip: bool. Whether to flip half the pairs horizontally. Defaults
            to `True`.
        shift: float in [0, 1). Largest shift, a fraction of the height and
            width. Defaults to `0.0`.
        scale: float in [0, 1). Largest change of scale (zoom in or out),
            a fraction of the size. Defaults to `0.0`.
        gain: float in [0, 1). The input's brightness is multiplied by a
            gain drawn from `[1 - gain, 1 + gain]`. Defaults to `0.0`.
        seed: int or `None`. Seed of the random draws. Defaults to `None`.

    Returns:
        A function `(inputs, targets) -> (inputs, targets)` of batches
        `(batch, height, width, channels)`, for `tf.data.Dataset.map`.
    """
    import keras
    import tensorflow as tf

    for name, value in (("shift", shift), ("scale", scale), ("gain", gain)):
        if not 0 <= value < 1:
            raise ValueError(
                f"`{name}` must be in [0, 1). Received: {name}={value!r}"
            )
    # float32 whatever the global dtype policy: these are the images.
    layers = []
    if flip:
        layers.append(
            keras.layers.RandomFlip("horizontal", seed=seed, dtype="float32")
        )
    if shift:
        layers.append(
            keras.layers.RandomTranslation(
                shift, shift, fill_mode="reflect", seed=seed, dtype="float32"
            )
        )
    if scale:
        layers.append(
            keras.layers.RandomZoom(
                scale, fill_mode="reflect", seed=seed, dtype="float32"
            )
        )
    generator = tf.random.Generator.from_seed(0 if seed is None else seed)

    def augment(inputs, targets):
        channels = inputs.shape[-1]
        pairs = tf.concat([inputs, targets], axis=-1)
        for layer in layers:
            pairs = layer(pairs)
        inputs, targets = pairs[..., :channels], pairs[..., channels:]
        if gain:
            gains = generator.uniform(
                [tf.shape(inputs)[0], 1, 1, 1], 1 - gain, 1 + gain
            )
            inputs = tf.clip_by_value(inputs * gains, 0.0, 1.0)
        return inputs, targets

    return augment


def relight_dataset(
    inputs, targets, batch_size=16, shuffle=False, seed=0, augment=None
):
    """Wraps relighting arrays in a batched `tf.data.Dataset`.

    Args:
        inputs: array `(pairs, height, width, 1)`. Faces under any lighting.
        targets: array of the same shape. Canonically lit faces.
        batch_size: int. Batch size. Defaults to `16`.
        shuffle: bool. Whether to reshuffle the pairs every epoch. Defaults
            to `False`.
        seed: int. Shuffle seed. Defaults to `0`.
        augment: callable or `None`. Mapped over the batches, such as
            `relight_augmentation()`. Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of `(input, target)` batches.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle:
        dataset = dataset.shuffle(
            len(inputs), seed=seed, reshuffle_each_iteration=True
        )
    dataset = dataset.batch(batch_size)
    if augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
