"""Evaluation tables: denoising, relighting and colorization quality.

Denoising follows the usual protocol: clean test images in [0, 1] (gray,
or RGB for color denoising), additive white Gaussian noise of a given
sigma (0-255 scale) drawn from a fixed seed per (sigma, image) so that
every run and every method sees the same noisy images; PSNR and SSIM
(`keras_rbdn.metrics`, the `tf.image` definitions) of the output clipped
to [0, 1], averaged over the images. Two noise protocols:

- `"float"`: the noisy image is not clipped (the papers' protocol);
- `"uint8"`: the noisy image is clipped to [0, 255] and rounded, as in
  any 8-bit file a user has and as the uint8 serving signature receives.
"""

import os
import time

import numpy as np

from keras_rbdn import inference
from keras_rbdn.checks import check_choice
from keras_rbdn.layers.noise import quantize_8bit

DENOISE_SETS = ("bsd68", "set12")
DENOISE_SIGMAS = (15, 25, 50)
# The noise protocols of evaluation: every noisy image as it is, or every
# one clipped and rounded to 8 bits.
NOISE_PROTOCOLS = ("float", "uint8")

# Quoted, not measured here: BSD68 PSNR (dB) at sigma 15 / 25 / 50 from the
# project's design notes (docs/design.md); `None` where none is quoted.
REFERENCE_DENOISING = {
    "BM3D (bm3d 4.0.3; quoted)": {"bsd68": (None, 28.62, 25.69)},
    "DnCNN-B, released weights (quoted)": {"bsd68": (31.62, 29.17, 26.22)},
    "DRUNet, published (quoted)": {"bsd68": (31.91, 29.48, 26.59)},
    "RBDN paper, own 300-image set (quoted)": {"bsd68": (None, 28.77, 25.80)},
}
# CBSD68 PSNR (dB) at sigma 15 / 25 / 50, published in the DnCNN paper
# (Zhang et al., TIP 2017, Table III; docs/design.md).
REFERENCE_COLOR_DENOISING = {
    "CBM3D (published)": {"cbsd68": (33.52, 30.71, 27.38)},
    "CDnCNN-B (published)": {"cbsd68": (33.89, 31.23, 27.92)},
}


def noisy_image(clean, sigma, seed, index, protocol="float"):
    """`clean` plus white Gaussian noise of `sigma` (0-255 scale).

    The draw depends only on `(seed, sigma, index)`, so it is the same for
    every run, backend and method. With `protocol="uint8"` the noisy image
    is then clipped to [0, 1] and rounded to 8 bits.
    """
    check_choice("protocol", protocol, NOISE_PROTOCOLS)
    rng = np.random.default_rng((seed, int(round(sigma * 1000)), index))
    noise = rng.standard_normal(clean.shape).astype("float32")
    noisy = clean + noise * np.float32(sigma / 255.0)
    if protocol == "uint8":
        noisy = quantize_8bit(noisy)
    return noisy.astype("float32")


def _psnr_ssim(clean, output):
    from keras import ops

    from keras_rbdn import metrics

    clean = clean[None].astype("float32")
    output = np.clip(output, 0.0, 1.0)[None].astype("float32")
    psnr = float(ops.convert_to_numpy(metrics.psnr(clean, output))[0])
    ssim = float(ops.convert_to_numpy(metrics.ssim(clean, output))[0])
    return psnr, ssim


def evaluate_denoiser(
    denoise,
    folder,
    sigmas=DENOISE_SIGMAS,
    seed=0,
    limit=None,
    mode="gray",
    protocol="float",
):
    """Mean PSNR and SSIM of a denoiser on a folder of clean images.

    Args:
        denoise: callable `(noisy, sigma) -> output`, both float32
            `(height, width, channels)`; `None` measures the noisy input
            itself.
        folder: str. Folder of clean test images.
        sigmas: tuple of numbers. Noise levels, 0-255 scale. Defaults to
            `(15, 25, 50)`.
        seed: int. Noise seed. Defaults to `0`.
        limit: int or `None`. Evaluate only the first `limit` images.
            Defaults to `None` (all).
        mode: str. `"gray"` or `"rgb"`: how the images are read. Defaults
            to `"gray"`.
        protocol: str. `"float"` or `"uint8"` (see the module docstring).
            Defaults to `"float"`.

    Returns:
        A dict `{sigma: {"psnr": float, "ssim": float, "seconds": float}}`
        (`seconds`: mean time per image).
    """
    check_choice("protocol", protocol, NOISE_PROTOCOLS)
    images = inference.read_folder(folder, mode=mode)[:limit]
    results = {}
    for sigma in sigmas:
        scores, seconds = [], 0.0
        for index, clean in enumerate(images):
            noisy = noisy_image(clean, sigma, seed, index, protocol)
            start = time.perf_counter()
            output = noisy if denoise is None else denoise(noisy, sigma)
            seconds += time.perf_counter() - start
            scores.append(_psnr_ssim(clean, output))
        psnr, ssim = np.mean(scores, axis=0)
        results[sigma] = {
            "psnr": float(psnr),
            "ssim": float(ssim),
            "seconds": seconds / len(images),
        }
    return results


def model_denoiser(model, tile_size=1024, color_space="opponent", ensemble=1):
    """A `(noisy, sigma) -> output` callable for a blind image model.

    `color_space` and `ensemble` are `inference.apply_model`'s.
    """

    def denoise(noisy, sigma):
        return inference.apply_model(
            model,
            noisy,
            tile_size=tile_size,
            color_space=color_space,
            ensemble=ensemble,
        )

    return denoise


def bm3d_denoiser():
    """The `bm3d` package's denoiser (told the true sigma), or `None`.

    Gray images go through `bm3d.bm3d`, RGB images through
    `bm3d.bm3d_rgb` (CBM3D: BM3D in an opponent color space).
    """
    try:
        import bm3d
    except ImportError:
        return None

    def denoise(noisy, sigma):
        if noisy.shape[-1] == 3:
            output = bm3d.bm3d_rgb(noisy, sigma / 255.0)
            return np.asarray(output, dtype="float32")
        output = bm3d.bm3d(noisy[..., 0], sigma_psd=sigma / 255.0)
        return np.asarray(output, dtype="float32")[..., None]

    return denoise


def _cell(values, index):
    value = values[index] if values is not None else None
    return "-" if value is None else f"{value:.2f}"


def denoising_table(
    rows,
    sets=DENOISE_SETS,
    sigmas=DENOISE_SIGMAS,
    references=REFERENCE_DENOISING,
):
    """Markdown table of PSNR / SSIM per set and sigma.

    Args:
        rows: dict `{method: {set: {sigma: {"psnr", "ssim"}}}}` of measured
            results; the quoted `references` (PSNR only) are appended.
        sets: tuple of str. Column groups. Defaults to `("bsd68", "set12")`.
        sigmas: tuple of numbers. Defaults to `(15, 25, 50)`.
        references: dict `{method: {set: (psnr at sigma 15, 25, 50)}}`,
            `None` where none is quoted. Defaults to
            `REFERENCE_DENOISING` (gray); `REFERENCE_COLOR_DENOISING` for
            CBSD68.

    Returns:
        The table as a string.
    """
    header = ["method"] + [
        f"{name.upper()} s={sigma:g}" for name in sets for sigma in sigmas
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method, by_set in rows.items():
        cells = [method]
        for name in sets:
            for sigma in sigmas:
                result = by_set.get(name, {}).get(sigma)
                cells.append(
                    "-"
                    if result is None
                    else f"{result['psnr']:.2f} / {result['ssim']:.4f}"
                )
        lines.append("| " + " | ".join(cells) + " |")
    for method, by_set in references.items():
        cells = [method]
        for name in sets:
            for index in range(len(sigmas)):
                quoted = dict(zip(DENOISE_SIGMAS, range(3), strict=True))
                position = quoted.get(sigmas[index])
                values = by_set.get(name)
                cells.append(
                    "-" if position is None else _cell(values, position)
                )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


AB_ERROR_THRESHOLDS = np.arange(151)  # Zhang et al. (2016): 0 to 150.


def _lab(rgb):
    from keras_rbdn.layers.color import rgb_to_lab

    return rgb_to_lab(np.asarray(rgb, dtype="float32"), xp=np)


def _mean_chroma(lab):
    return float(np.mean(np.hypot(lab[..., 1], lab[..., 2])))


def chroma(rgb):
    """Mean CIELAB chroma sqrt(a*^2 + b*^2) of RGB images in [0, 1]."""
    return _mean_chroma(_lab(rgb))


def ab_error_auc(output, target, thresholds=AB_ERROR_THRESHOLDS):
    """Area under the curve of per-pixel ab errors (Zhang et al., 2016).

    For each threshold t, the fraction of pixels whose CIELAB ab error
    sqrt((a - a*)^2 + (b - b*)^2) is at most t; the AuC is the mean of
    these fractions over the thresholds, in [0, 1] (1: every pixel exact).

    Args:
        output: RGB image(s) in [0, 1].
        target: RGB image(s) of the same shape.
        thresholds: 1D array of ab distances. Defaults to 0, 1, ..., 150.

    Returns:
        A float.
    """
    return _ab_error_auc(_lab(output), _lab(target), thresholds)


def _ab_error_auc(output_lab, target_lab, thresholds=AB_ERROR_THRESHOLDS):
    difference = output_lab[..., 1:] - target_lab[..., 1:]
    error = np.hypot(difference[..., 0], difference[..., 1])
    error = np.sort(error.ravel())
    within = np.searchsorted(error, np.asarray(thresholds), side="right")
    return float(np.mean(within) / error.size)


def evaluate_colorizer(model, folder, limit=None, tile_size=1024, ensemble=1):
    """PSNR, SSIM, ab-error AuC and mean chroma of a colorizer.

    The model sees each image's luminance only (the gray version); its RGB
    output is compared with the original. The gray baseline returns the
    gray image itself (chroma 0).

    Args:
        model: An image model RGB -> RGB (`keras_rbdn.load("colorize_lab")`)
            or `None` for the gray baseline.
        folder: str. Folder of color test images.
        limit: int or `None`. Only the first `limit` images. Defaults to
            `None`.
        tile_size: int. See `inference.predict_image`. Defaults to `1024`.
        ensemble: int. The self-ensemble size (`keras_rbdn.self_ensemble`).
            Defaults to `1`.

    Returns:
        A dict of means over the images: `psnr`, `ssim`, `auc`
        (`ab_error_auc`), `chroma` (of the outputs) and `target_chroma`
        (of the originals).
    """
    images = inference.read_folder(folder, mode="rgb")[:limit]
    scores, aucs, chromas, targets = [], [], [], []
    for image in images:
        gray = inference.to_channels(inference.to_channels(image, 1), 3)
        if model is None:
            output = gray
        else:
            output = inference.apply_model(
                model, gray, tile_size=tile_size, ensemble=ensemble
            )
        output = np.clip(output, 0, 1)
        scores.append(_psnr_ssim(image, output))
        output_lab, image_lab = _lab(output), _lab(image)
        aucs.append(_ab_error_auc(output_lab, image_lab))
        chromas.append(_mean_chroma(output_lab))
        targets.append(_mean_chroma(image_lab))
    psnr, ssim = np.mean(scores, axis=0)
    return {
        "psnr": float(psnr),
        "ssim": float(ssim),
        "auc": float(np.mean(aucs)),
        "chroma": float(np.mean(chromas)),
        "target_chroma": float(np.mean(targets)),
    }


def relight_faces(model, inputs, ensemble=1):
    """The faces `model` relights, one array per input face.

    Args:
        model: An image model, or `None` for the identity baseline (the
            input face as it is).
        inputs: array `(pairs, height, width, 1)` in [0, 1].
        ensemble: int. The self-ensemble size (`keras_rbdn.self_ensemble`;
            faces are upright, so only 1 and the mirror, 2, suit them).
            Defaults to `1`.

    Returns:
        A list of `(height, width, 1)` arrays.
    """
    if model is None:
        return list(inputs)
    return [
        inference.apply_model(model, face, ensemble=ensemble)
        for face in inputs
    ]


def score_relit_faces(outputs, targets):
    """Mean PSNR and SSIM of relit faces (`relight_faces`) against the
    canonical faces `targets`, an array of the inputs' shape.

    Returns:
        A dict with the means `psnr` and `ssim`, and `pair_psnr`: the PSNR
        of each pair, a float array.
    """
    scores = np.asarray(
        [
            _psnr_ssim(target, output)
            for output, target in zip(outputs, targets, strict=True)
        ],
        dtype="float64",
    )
    psnr, ssim = scores.mean(axis=0)
    return {
        "psnr": float(psnr),
        "ssim": float(ssim),
        "pair_psnr": scores[:, 0],
    }


def evaluate_relighter(model, inputs, targets, ensemble=1):
    """Mean PSNR and SSIM of relit faces against the canonical faces:
    `score_relit_faces` of `relight_faces(model, inputs, ensemble)`.

    Args:
        model: An image model, or `None` for the identity baseline.
        inputs: array `(pairs, height, width, 1)` in [0, 1].
        targets: array of the same shape.
        ensemble: int. See `relight_faces`. Defaults to `1`.

    Returns:
        A dict with the means `psnr` and `ssim`, and `pair_psnr`: the PSNR
        of each pair, a float array.
    """
    return score_relit_faces(
        relight_faces(model, inputs, ensemble=ensemble), targets
    )


def write_text(path, text, overwrite=True):
    """Writes `text` to `path` atomically (temporary file, then rename)."""
    if os.path.exists(path) and not overwrite:
        raise inference.ImageError(f"{path}: already exists (pass --overwrite)")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.partial"
    )
    with open(partial, "w") as file:
        file.write(text)
    os.replace(partial, path)
