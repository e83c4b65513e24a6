"""How close a preview is to the best downscale of its source: a reference, SSIM and PSNR, in numpy.

The **reference** is the full-resolution decode (no DCT scaling, no integer reduction), made upright,
transparent art flattened onto the preview background in sRGB (as browsers and art tools composite),
then shrunk to the preview's exact size with Lanczos **in linear light** (sRGB decoded to linear,
Lanczos per channel in 32-bit float, encoded back), the textbook-correct downscale.

**SSIM** is Wang et al. 2004 on luma (BT.601 weights, as JPEG stores it): an 11-tap Gaussian window
with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, averaged over the image (borders excluded where the window
does not fit). 1.0 means identical; blur and aliasing both lower it. PSNR over RGB is reported beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageColor

from kaalwatch.imaging.decode import decode, upright


def _to_linear(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float32) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    out = np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def reference(path: Path, size: tuple[int, int], background: str = "#ffffff") -> np.ndarray:
    """The linear-light Lanczos downscale of the full-resolution decode of ``path`` to ``size`` (RGB)."""
    full = 1 << 30  # a target no file reaches: no DCT scaling, reduction factor 1
    dec = decode(path, full, max_pixels=1 << 40)
    im = upright(dec.image, dec.orientation)
    if im.mode in ("RGBA", "LA"):
        flat = Image.new("RGB", im.size, ImageColor.getrgb(background)[:3])
        flat.paste(im.convert("RGBA"), (0, 0), im.convert("RGBA"))
        im = flat
    im = im.convert("RGB")
    bands = []
    for band in im.split():  # one channel at a time: a float copy of an 8000² image is 256 MB
        linear = Image.fromarray(_to_linear(np.asarray(band)), "F")
        small = linear.resize(size, Image.Resampling.LANCZOS)
        bands.append(_to_srgb(np.asarray(small)))
    return np.stack(bands, axis=-1)


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _blur(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' convolution with ``kernel`` along both axes."""
    r = len(kernel)
    rows = sum(kernel[i] * a[:, i:a.shape[1] - r + 1 + i] for i in range(r))
    return sum(kernel[i] * rows[i:rows.shape[0] - r + 1 + i, :] for i in range(r))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two same-size RGB (or grey) uint8 images, on luma."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM of different sizes: {a.shape} and {b.shape}")
    x = _luma(a) if a.ndim == 3 else a.astype(np.float64)
    y = _luma(b) if b.ndim == 3 else b.astype(np.float64)
    g = np.exp(-0.5 * (np.arange(11) - 5) ** 2 / 1.5 ** 2)
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mx * mx
    syy = _blur(y * y, g) - my * my
    sxy = _blur(x * y, g) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(value.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two same-size uint8 images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
