"""First-frame images: checks with clear errors, and the resize rules of the three reference pipelines.

Modes (wan22.md §4, paper.md §2.3):
- `official`: Wan2.2's own code. I2V-A14B keeps the image's aspect ratio at the area height·width:
  lat = round(sqrt(area·h/w) // stride // patch · patch), pixel size = lat·stride, then a PyTorch-style
  bicubic resize (`F.interpolate(mode='bicubic')`, a = −0.75, no antialias, no crop) of the [−1, 1]
  image. TI2V-5B picks the size with `best_output_size` (multiples of stride·patch = 32, area ≤ height·width),
  resizes with PIL Lanczos so the image covers it, then centre-crops.
- `diffsynth`: DiffSynth-Studio (the paper's pipeline): PIL `resize((width, height))` with PIL's default
  (bicubic) filter, stretched to exactly the requested size; x·(2/255) − 1.
- `diffusers`: diffusers' `VideoProcessor`: PIL Lanczos resize to exactly (height, width); 2·(x/255) − 1.
"""

from __future__ import annotations

import math
import os
from typing import Literal

import numpy as np
from jaxtyping import Float, UInt8

Resize = Literal["official", "diffsynth", "diffusers"]
RESIZE_MODES = ("official", "diffsynth", "diffusers")
CUBIC_A = -0.75  # PyTorch's bicubic coefficient


class ImageError(ValueError):
    """A first-frame image of the wrong mode, shape or dtype."""


_MODE_FIX = {
    "RGBA": "it has an alpha channel; drop it: Image.open(path).convert('RGB') (or img[..., :3] for arrays)",
    "LA": "it is grayscale with alpha; convert it: Image.open(path).convert('RGB')",
    "L": "it is grayscale; convert it: Image.open(path).convert('RGB') (or np.repeat(img[..., None], 3, -1))",
    "P": "it is a palette image; convert it: Image.open(path).convert('RGB')",
    "1": "it is a 1-bit image; convert it: Image.open(path).convert('RGB')",
    "CMYK": "it is CMYK; convert it: Image.open(path).convert('RGB')",
}


def check_image(image, what: str = "image") -> UInt8[np.ndarray, "H W 3"]:
    """A uint8 RGB array [H, W, 3] from an RGB PIL image or array; anything else raises `ImageError`
    saying what to do."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        if image.mode != "RGB":
            fix = _MODE_FIX.get(image.mode, "convert it: Image.open(path).convert('RGB')")
            raise ImageError(f"{what} is a {image.mode} image, the pipeline needs RGB: {fix}")
        return np.asarray(image, np.uint8)
    a = np.asarray(image)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 1):
        raise ImageError(f"{what} is grayscale {a.shape}; the pipeline needs RGB [H, W, 3]: {_MODE_FIX['L']}")
    if a.ndim == 3 and a.shape[-1] == 4:
        raise ImageError(f"{what} has 4 channels {a.shape} (RGBA); the pipeline needs RGB [H, W, 3]: "
                         f"{_MODE_FIX['RGBA']}")  # fmt: skip
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        raise ImageError(f"{what} looks channel-first {a.shape}; pass [H, W, 3] (np.transpose(img, (1, 2, 0)))")
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ImageError(f"{what} has shape {a.shape}; the pipeline needs one RGB image [H, W, 3]")
    if a.dtype != np.uint8:
        raise ImageError(
            f"{what} has dtype {a.dtype}; pass uint8 pixels in [0, 255] (e.g. np.round(img * 255).astype(np.uint8) "
            "for floats in [0, 1])"
        )
    if min(a.shape[:2]) < 1:
        raise ImageError(f"{what} is empty {a.shape}")
    return a


def read_image(path: str | os.PathLike) -> UInt8[np.ndarray, "H W 3"]:
    """An RGB image file as uint8 [H, W, 3]; other modes raise `ImageError` with the fix."""
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    from PIL import UnidentifiedImageError

    try:
        img = Image.open(path)
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"image {str(path)!r} is not an image file PIL can read ({err}); give a PNG or JPEG") from None
    with img:
        img.load()
        return check_image(img, what=f"image {str(path)!r}")


# ---- sizes ----------------------------------------------------------------------------------------
def official_i2v_size(image_hw: tuple[int, int], height: int, width: int, stride: int, patch: int) -> tuple[int, int]:
    """I2V-A14B's output size: the image's aspect ratio at area height·width, multiples of stride·patch."""
    ih, iw = image_hw
    area, aspect = height * width, ih / iw
    lat_h = round(math.sqrt(area * aspect) // stride // patch * patch)
    lat_w = round(math.sqrt(area / aspect) // stride // patch * patch)
    if lat_h < patch or lat_w < patch:
        raise ImageError(f"image {ih}x{iw} is too elongated for the area {height}x{width}")
    return lat_h * stride, lat_w * stride


def best_output_size(w: int, h: int, dw: int, dh: int, expected_area: int) -> tuple[int, int]:
    """TI2V-5B's (width, height): multiples of (dw, dh) with area ≤ expected_area, closest in aspect."""
    ratio = w / h
    ow = (expected_area * ratio) ** 0.5
    oh = expected_area / ow
    ow1 = int(ow // dw * dw)  # width first
    oh1 = int(expected_area / ow1 // dh * dh) if ow1 else 0
    oh2 = int(oh // dh * dh)  # height first
    ow2 = int(expected_area / oh2 // dw * dw) if oh2 else 0
    if min(ow1, oh1) < 1 and min(ow2, oh2) < 1:
        raise ImageError(f"no {dw}x{dh}-aligned size of area <= {expected_area} fits an image of {w}x{h}")

    def misfit(cw: int, ch: int) -> float:
        return math.inf if min(cw, ch) < 1 else max(ratio / (cw / ch), (cw / ch) / ratio)

    return (ow1, oh1) if misfit(ow1, oh1) < misfit(ow2, oh2) else (ow2, oh2)


# ---- resampling ------------------------------------------------------------------------------------
def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution weights (a = −0.75, PyTorch's) of the 4 taps around a fractional offset t,
    in float32 arithmetic like PyTorch's CPU kernel."""
    a, one = np.float32(CUBIC_A), np.float32(1)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + one

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + one), near(t), near(one - t), far(one - t + one)], axis=-1)


def _bicubic_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = x.shape[axis]
    scale = np.float32(n) / np.float32(size)  # align_corners=False; no clamp of the source index (cubic)
    # scale·(i + ½) − ½ rounded once to float32, as PyTorch's fused multiply-add computes it
    src = (np.float64(scale) * (np.arange(size) + 0.5) - 0.5).astype(np.float32)
    base = np.floor(src)
    weights = _cubic_weights(src - base)  # [size, 4]
    index = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3), 0, n - 1)
    taps = np.take(x, index, axis=axis)  # [..., size, 4, ...]
    shape = [1] * taps.ndim
    shape[axis], shape[axis + 1] = size, 4
    return np.sum(taps * weights.reshape(shape), axis=axis + 1)


def torch_bicubic_resize(image: Float[np.ndarray, "H W C"], height: int, width: int) -> Float[np.ndarray, "h w C"]:
    """`F.interpolate(mode='bicubic', align_corners=False)` of a float image (edges clamped, no antialias)."""
    x = np.asarray(image, np.float32)
    if x.shape[:2] == (height, width):
        return x
    return _bicubic_axis(_bicubic_axis(x, height, 0), width, 1).astype(np.float32)


def _pil_resize(image: np.ndarray, width: int, height: int, resample) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), resample=resample), np.uint8)


# ---- the three preprocessors ----------------------------------------------------------------------
def preprocess_image(
    image,
    height: int,
    width: int,
    *,
    model_type: str,
    stride: int,
    patch: int,
    mode: Resize = "official",
) -> Float[np.ndarray, "h w 3"]:
    """The first frame in [−1, 1], resized for a (height, width) request by `mode`'s rules.

    `stride` is the VAE's spatial stride, `patch` the DiT's spatial patch. With `official` the output size
    follows the image's aspect ratio (I2V-A14B) or `best_output_size` (TI2V-5B), so it can differ from
    (height, width); the other modes return exactly (height, width).
    """
    from PIL import Image

    pixels = check_image(image)
    if mode == "official":
        if model_type == "ti2v":
            ow, oh = best_output_size(pixels.shape[1], pixels.shape[0], stride * patch, stride * patch, height * width)
            ih, iw = pixels.shape[:2]
            scale = max(ow / iw, oh / ih)
            resized = _pil_resize(pixels, round(iw * scale), round(ih * scale), Image.LANCZOS)
            x1, y1 = (resized.shape[1] - ow) // 2, (resized.shape[0] - oh) // 2
            crop = resized[y1 : y1 + oh, x1 : x1 + ow]
            return (crop.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
        h, w = official_i2v_size(pixels.shape[:2], height, width, stride, patch)
        unit = (pixels.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
        return torch_bicubic_resize(unit, h, w)
    if mode == "diffsynth":
        resized = _pil_resize(pixels, width, height, Image.BICUBIC) if pixels.shape[:2] != (height, width) else pixels
        return resized.astype(np.float32) * np.float32(2 / 255) - np.float32(1)
    if mode == "diffusers":
        resized = _pil_resize(pixels, width, height, Image.LANCZOS) if pixels.shape[:2] != (height, width) else pixels
        return np.float32(2) * (resized.astype(np.float32) / np.float32(255)) - np.float32(1)
    raise ValueError(f"unknown image resize mode {mode!r}; choose one of {RESIZE_MODES}")
