"""Video and image files: mp4 (H.264, 16 fps), GIF and PNG, written atomically (temp file, then rename)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cos_jax.arrays_io import atomic_write

FPS = 16
CRF = 10  # near-lossless: small palette scenes survive the round trip
PIXEL_FORMAT = "yuv444p"  # full-resolution colour: 4:2:0 chroma blurs 1-px colour features at 32×32


def _check(frames: np.ndarray) -> np.ndarray:
    v = np.asarray(frames)
    if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {v.dtype} {v.shape}")
    return v


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS) -> Path:
    """H.264 mp4 (4:4:4 chroma, CRF 10) at 16 fps, readable by OpenCV/ffmpeg. Sides must be even."""
    import imageio.v2 as iio

    v = _check(frames)
    if v.shape[1] % 2 or v.shape[2] % 2:
        raise ValueError(f"mp4 needs even frame sides, got {v.shape[1]}x{v.shape[2]}")

    def write(tmp: str) -> None:
        with iio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", pixelformat=PIXEL_FORMAT, macro_block_size=2,
            output_params=["-crf", str(CRF), "-preset", "medium"], ffmpeg_log_level="error",
        ) as w:  # fmt: skip
            for f in v:
                w.append_data(f)

    return atomic_write(path, write)


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS) -> Path:
    from PIL import Image

    v = _check(frames)
    images = [Image.fromarray(f) for f in v]
    return atomic_write(
        path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                         duration=round(1000 / fps), loop=0)
    )  # fmt: skip


def write_png(path: str | os.PathLike, frame: np.ndarray) -> Path:
    from PIL import Image

    f = np.asarray(frame)
    if f.ndim != 3 or f.shape[-1] != 3 or f.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) frame, got {f.dtype} {f.shape}")
    return atomic_write(path, lambda tmp: Image.fromarray(f).save(tmp, format="PNG"))


def read_png(path: str | os.PathLike) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def probe_video(path: str | os.PathLike) -> tuple[int, int, int]:
    """(frames, height, width) of a video file from its container, without decoding the pictures.

    Cheap enough to check hundreds of files (one ffmpeg stream copy each); raises ValueError naming the
    file when it is missing, truncated or not a video.
    """
    import re
    import subprocess

    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no video at {path}")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
           "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    size = re.search(r"Stream #.*?Video:.*?(\d{2,5})x(\d{2,5})", r.stderr)
    frames = re.findall(r"frame=\s*(\d+)", r.stderr)
    if r.returncode != 0 or size is None or not frames or int(frames[-1]) < 1:
        tail = r.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ValueError(f"cannot read video {path} (truncated or not a video): {tail[0]}")
    return int(frames[-1]), int(size.group(2)), int(size.group(1))


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of an mp4 or GIF as uint8 (T, H, W, 3); raises ValueError naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video at {path}")
    try:
        if path.suffix.lower() == ".gif":
            from PIL import Image, ImageSequence

            with Image.open(path) as im:
                frames, durations = [], []
                for f in ImageSequence.Iterator(im):
                    frames.append(np.asarray(f.convert("RGB")))
                    durations.append(f.info.get("duration", 0) or 0)
            # Pillow merges identical consecutive frames into one longer frame: expand them again
            base = min((d for d in durations if d > 0), default=0)
            if base:
                frames = [f for f, d in zip(frames, durations, strict=True) for _ in range(max(1, round(d / base)))]
        else:
            import imageio.v2 as iio

            with iio.get_reader(path, format="FFMPEG") as r:
                frames = [np.asarray(f)[..., :3] for f in r]
    except Exception as e:  # decoder errors come in many types
        raise ValueError(f"cannot decode video {path}: {e}") from e
    if not frames:
        raise ValueError(f"video {path} has no frames")
    return np.stack(frames).astype(np.uint8)
