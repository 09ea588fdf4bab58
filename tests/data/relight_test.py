import os

import numpy as np
import pytest
from PIL import Image

from keras_rbdn.data import CANONICAL_LIGHTING
from keras_rbdn.data import canonical_offset
from keras_rbdn.data import lighting_angles
from keras_rbdn.data import list_relight_pairs
from keras_rbdn.data import list_relight_subjects
from keras_rbdn.data import load_relight_arrays
from keras_rbdn.data import load_relight_split
from keras_rbdn.data import relight_augmentation
from keras_rbdn.data import relight_dataset
from keras_rbdn.data import split_relight_subjects

REAL_DATA = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "relight"
)
LIGHTINGS = ["P00A+035E+15", "P00A-010E-20", "P00A+120E+00"]
SUBJECTS = ["yaleB01", "yaleB02", "yaleB05", "yaleB11"]

# The face database's files, splits and tf.data batches: no Keras backend.
pytestmark = pytest.mark.backend_independent


def write_fake_yale(
    root, subjects=SUBJECTS, lightings=LIGHTINGS, size=(12, 10)
):
    """A tiny database with the real naming; returns {file name: pixels}."""
    rng = np.random.default_rng(0)
    pixels = {}
    for subject in subjects:
        folder = os.path.join(root, subject)
        os.makedirs(folder)
        for lighting in [CANONICAL_LIGHTING, *lightings]:
            name = f"{subject}_{lighting}.png"
            image = rng.integers(0, 256, size, dtype=np.uint8)
            Image.fromarray(image).save(os.path.join(folder, name))
            pixels[name] = image
        # Files the loader must ignore.
        open(os.path.join(folder, f"{subject}_P00A+000E+00.pgm.bad"), "w")
        open(os.path.join(folder, f"{subject}_P00.info"), "w")
    os.makedirs(os.path.join(root, "not_a_subject"))
    open(os.path.join(root, "README.md"), "w")
    return pixels


@pytest.fixture
def fake_yale(tmp_path):
    return str(tmp_path), write_fake_yale(str(tmp_path))


class RelightPairsTest:
    def test_pairs_map_every_lighting_to_the_canonical_image(self, fake_yale):
        root, _ = fake_yale
        assert list_relight_subjects(root) == SUBJECTS
        pairs = list_relight_pairs(root)
        assert len(pairs) == len(SUBJECTS) * len(LIGHTINGS)
        for subject, source, target in pairs:
            assert os.path.basename(target) == (f"{subject}_P00A+000E+00.png")
            assert os.path.basename(source).startswith(f"{subject}_P00A")
            assert source != target
        with_identity = list_relight_pairs(root, include_canonical=True)
        assert len(with_identity) == len(SUBJECTS) * (len(LIGHTINGS) + 1)

    def test_arrays_hold_the_stored_pixels(self, fake_yale):
        root, pixels = fake_yale
        inputs, targets = load_relight_arrays(root, subjects=["yaleB02"])
        assert inputs.shape == (3, 12, 10, 1) and inputs.dtype == "float32"
        names = sorted(f"yaleB02_{lighting}.png" for lighting in LIGHTINGS)
        for index, name in enumerate(names):
            np.testing.assert_array_equal(
                inputs[index, ..., 0], pixels[name] / np.float32(255)
            )
            np.testing.assert_array_equal(
                targets[index, ..., 0],
                pixels["yaleB02_P00A+000E+00.png"] / np.float32(255),
            )

    def test_downscaling_averages_pixel_blocks(self, fake_yale):
        root, pixels = fake_yale
        inputs, _ = load_relight_arrays(
            root, subjects=["yaleB01"], image_size=(6, 5)
        )
        name = sorted(f"yaleB01_{lighting}.png" for lighting in LIGHTINGS)[0]
        blocks = pixels[name].astype("float64").reshape(6, 2, 5, 2)
        expected = blocks.mean(axis=(1, 3)) / 255
        np.testing.assert_allclose(inputs[0, ..., 0], expected, atol=1 / 255)

    def test_lightings_per_subject(self, fake_yale):
        root, _ = fake_yale
        inputs, _ = load_relight_arrays(root, lightings_per_subject=2)
        assert len(inputs) == 2 * len(SUBJECTS)

    def test_within_degrees_keeps_the_near_frontal_lightings(self, fake_yale):
        root, _ = fake_yale
        pairs = list_relight_pairs(root, within_degrees=20)
        assert [os.path.basename(path) for _, path, _ in pairs] == [
            f"{subject}_P00A-010E-20.png" for subject in SUBJECTS
        ]
        inputs, _ = load_relight_arrays(
            root, ["yaleB01"], include_canonical=True, within_degrees=15
        )
        assert len(inputs) == 1  # the identity pair alone

    def test_missing_canonical_image(self, fake_yale):
        root, _ = fake_yale
        os.remove(os.path.join(root, "yaleB05", "yaleB05_P00A+000E+00.png"))
        with pytest.raises(ValueError, match="no canonical-lighting image"):
            list_relight_pairs(root)

    def test_missing_directory(self, tmp_path):
        with pytest.raises(ValueError, match="not a directory"):
            list_relight_subjects(str(tmp_path / "missing"))


class AlignTargetsTest:
    OFFSET = (2, -3)

    @pytest.fixture
    def shifted_yale(self, tmp_path):
        """One subject whose inputs show `base` (two near-frontal lightings
        at other brightnesses, one side lighting of noise) and whose
        canonical image shows it moved: its pixel `(y + 2, x - 3)` is the
        inputs' `(y, x)`."""
        rng = np.random.default_rng(0)
        base = rng.integers(40, 200, (40, 36)).astype("float64")
        folder = tmp_path / "yaleB01"
        folder.mkdir()
        images = {
            CANONICAL_LIGHTING: np.roll(base, self.OFFSET, axis=(0, 1)),
            "P00A+010E+00": base * 0.8,
            "P00A-005E+10": base * 1.2,
            "P00A+120E+00": rng.integers(0, 256, (40, 36)),
        }
        for lighting, pixels in images.items():
            pixels = np.clip(pixels, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"yaleB01_{lighting}.png")
        return str(tmp_path), base

    def test_offset_of_the_canonical_image(self, shifted_yale):
        directory, _ = shifted_yale
        assert canonical_offset(directory, "yaleB01", max_shift=6) == (
            self.OFFSET
        )

    def test_aligned_targets_show_the_inputs_face(self, shifted_yale):
        directory, base = shifted_yale
        _, stored = load_relight_arrays(directory)
        inputs, aligned = load_relight_arrays(
            directory, include_canonical=True, align_targets=True
        )
        # Away from the edge rows and columns the shift uncovers.
        inner = (slice(0, -2), slice(3, None))
        for target in aligned:
            np.testing.assert_allclose(
                target[..., 0][inner] * 255, base[inner], atol=0.01
            )
        assert not np.allclose(stored[0][..., 0][inner] * 255, base[inner])
        # The identity pair maps the aligned canonical image to itself.
        np.testing.assert_array_equal(inputs[0], aligned[0])
        # The uncovered edge repeats the nearest pixel.
        np.testing.assert_array_equal(
            aligned[0][-2:], aligned[0][-3:-2].repeat(2, 0)
        )

    def test_no_near_frontal_input(self, fake_yale):
        directory, _ = fake_yale
        with pytest.raises(ValueError, match="no input lit within 15"):
            canonical_offset(directory, "yaleB01")


class RelightSplitTest:
    def test_split_is_by_subject_and_deterministic(self):
        subjects = [f"yaleB{i:02d}" for i in range(1, 11)]
        train, validation = split_relight_subjects(subjects, 0.3, seed=3)
        assert len(validation) == 3 and len(train) == 7
        assert not set(train) & set(validation)
        assert sorted(train + validation) == subjects
        assert split_relight_subjects(subjects, 0.3, seed=3) == (
            train,
            validation,
        )
        assert split_relight_subjects(subjects, 3, seed=3) == (
            train,
            validation,
        )

    def test_explicit_validation_subjects(self):
        train, validation = split_relight_subjects(["a", "b", "c"], ["c", "a"])
        assert (train, validation) == (["b"], ["a", "c"])

    @pytest.mark.parametrize(
        "validation, message",
        [
            (0, "at least one subject"),
            (4, "at least one subject"),
            (1.5, r"in \(0, 1\)"),
            (["z"], "unknown"),
            ("a", "fraction"),
        ],
    )
    def test_rejects_bad_splits(self, validation, message):
        with pytest.raises(ValueError, match=message):
            split_relight_subjects(["a", "b", "c", "d"], validation)

    def test_no_validation_face_in_training(self, fake_yale):
        root, pixels = fake_yale
        (x, y), (x_val, y_val) = load_relight_split(root, validation_subjects=1)
        assert len(x) == 3 * len(LIGHTINGS) and len(x_val) == len(LIGHTINGS)
        train_targets = {a.tobytes() for a in y}
        assert len(train_targets) == 3
        assert not {a.tobytes() for a in y_val} & train_targets

    def test_dataset_batches(self, fake_yale):
        root, _ = fake_yale
        inputs, targets = load_relight_arrays(root)
        dataset = relight_dataset(inputs, targets, batch_size=5, shuffle=True)
        batches = [(np.asarray(a), np.asarray(b)) for a, b in dataset]
        assert [len(a) for a, _ in batches] == [5, 5, 2]
        seen = np.concatenate([a for a, _ in batches])
        assert sorted(seen.sum(axis=(1, 2, 3))) == pytest.approx(
            sorted(inputs.sum(axis=(1, 2, 3)))
        )


class RelightAugmentationTest:
    def augment(self, inputs, targets, **kwargs):
        dataset = relight_dataset(
            inputs, targets, batch_size=len(inputs),
            augment=relight_augmentation(seed=1, **kwargs),
        )  # fmt: skip
        return [np.asarray(batch) for batch in next(iter(dataset))]

    def test_flip_flips_input_and_target_together(self):
        rng = np.random.default_rng(0)
        inputs, targets = rng.random((2, 16, 6, 5, 1), dtype="float32")
        augmented_inputs, augmented_targets = self.augment(inputs, targets)
        flipped = []
        pairs = zip(
            inputs, targets, augmented_inputs, augmented_targets, strict=True
        )
        for x, y, augmented_x, augmented_y in pairs:
            flipped.append(not np.array_equal(augmented_x, x))
            if flipped[-1]:
                # NumPy's flip of both images, left to right.
                x, y = np.flip(x, axis=1), np.flip(y, axis=1)
            np.testing.assert_array_equal(augmented_x, x)
            np.testing.assert_array_equal(augmented_y, y)
        assert 0 < sum(flipped) < len(flipped)

    def test_shift_and_scale_move_input_and_target_together(self):
        rng = np.random.default_rng(0)
        images = rng.random((8, 20, 16, 1), dtype="float32")
        augmented_inputs, augmented_targets = self.augment(
            images, images, flip=False, shift=0.2, scale=0.2
        )
        np.testing.assert_allclose(augmented_inputs, augmented_targets)
        for image, augmented in zip(images, augmented_inputs, strict=True):
            assert np.abs(augmented - image).mean() > 0.05

    def test_gain_changes_the_input_only(self):
        rng = np.random.default_rng(0)
        inputs, targets = rng.random((2, 8, 6, 5, 1), dtype="float32")
        inputs[0] = 1.0
        augmented_inputs, augmented_targets = self.augment(
            inputs, targets, flip=False, gain=0.2
        )
        np.testing.assert_array_equal(augmented_targets, targets)
        assert augmented_inputs.max() <= 1.0
        gains = augmented_inputs[1:, 0, 0, 0] / inputs[1:, 0, 0, 0]
        assert np.all((0.8 <= gains) & (gains <= 1.2))
        assert np.ptp(gains) > 0.01  # one gain per image
        np.testing.assert_allclose(
            augmented_inputs[1:],
            np.clip(inputs[1:] * gains[:, None, None, None], 0, 1),
            rtol=1e-6,
        )

    def test_rejects_bad_ranges(self):
        with pytest.raises(ValueError, match="`gain` must be in"):
            relight_augmentation(gain=1.5)


@pytest.mark.skipif(
    not os.path.isdir(REAL_DATA), reason="needs ../shared/data/relight"
)
class RealRelightDataTest:
    def test_database_layout(self):
        subjects = list_relight_subjects(REAL_DATA)
        assert len(subjects) == 33 and "yaleB14" not in subjects
        pairs = list_relight_pairs(REAL_DATA)
        # 2,094 images, one canonical image per subject.
        assert len(pairs) == 2094 - 33
        train, validation = split_relight_subjects(subjects, 6)
        assert len(validation) == 6 and not set(train) & set(validation)
        inputs, targets = load_relight_arrays(
            REAL_DATA, subjects=["yaleB01"], lightings_per_subject=2
        )
        assert inputs.shape == (2, 192, 168, 1)
        assert 0 <= inputs.min() and inputs.max() <= 1

    def test_aligned_canonical_image_is_closer_to_near_frontal_inputs(self):
        # yaleB13's canonical image is cropped 10 pixels off its inputs.
        assert canonical_offset(REAL_DATA, "yaleB13") == (2, -10)
        inputs, stored = load_relight_arrays(
            REAL_DATA, subjects=["yaleB13"], within_degrees=15
        )
        _, aligned = load_relight_arrays(
            REAL_DATA, ["yaleB13"], within_degrees=15, align_targets=True
        )

        def psnr(a, b):
            return -10 * np.log10(np.mean((a - b) ** 2))

        assert psnr(inputs, aligned) > psnr(inputs, stored) + 3


def test_lighting_angles_from_file_names():
    path = "faces/yaleB02/yaleB02_P00A-035E+20.png"
    assert lighting_angles(path) == (-35, 20)
    assert lighting_angles("yaleB11_P00A+000E+00.png") == (0, 0)
    with pytest.raises(ValueError, match="Not a Yale B image name"):
        lighting_angles("yaleB02_ambient.png")
