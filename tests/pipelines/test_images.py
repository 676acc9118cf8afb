"""First-frame checks and the three resize rules (official Wan2.2, DiffSynth, diffusers)."""

import numpy as np
import pytest
from PIL import Image

from cos_jax.pipelines.images import (
    ImageError,
    best_output_size,
    check_image,
    official_i2v_size,
    preprocess_image,
    read_image,
    torch_bicubic_resize,
)

RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (45, 70, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8, 4), np.uint8), r"4 channels .*RGBA.*convert\('RGB'\)"),
        (np.zeros((8, 8), np.uint8), r"grayscale .*convert\('RGB'\)"),
        (np.zeros((8, 8, 1), np.uint8), "grayscale"),
        (np.zeros((3, 8, 8), np.uint8), r"channel-first .*transpose"),
        (np.zeros((8, 8, 3), np.float32), r"dtype float32; pass uint8"),
        (Image.new("RGBA", (8, 8)), r"RGBA image.*alpha channel.*convert\('RGB'\)"),
        (Image.new("L", (8, 8)), r"L image.*grayscale"),
        (Image.new("P", (8, 8)), "palette"),
    ],
)
def test_bad_images_say_what_to_do(image, message):
    with pytest.raises(ImageError, match=message):
        check_image(image)


def test_read_image_rejects_rgba_files(tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 6)).save(path)
    with pytest.raises(ImageError, match=r"rgba\.png.*RGBA"):
        read_image(path)
    Image.new("RGB", (8, 6), (10, 20, 30)).save(path)
    assert read_image(path).shape == (6, 8, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize(("out_h", "out_w"), [(90, 100), (32, 48), (45, 70)])
def test_bicubic_matches_torch(out_h, out_w):
    torch = pytest.importorskip("torch")
    x = RNG.uniform(-1, 1, (45, 70, 3)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(2, 0, 1))[None], size=(out_h, out_w),
                                          mode="bicubic")[0].numpy().transpose(1, 2, 0)  # fmt: skip
    np.testing.assert_allclose(torch_bicubic_resize(x, out_h, out_w), ref, rtol=0, atol=3e-6)


def test_official_sizes():
    # I2V-A14B: a 16:9 photo at the 480p area keeps its aspect ratio (wan22.md §4.1 formula).
    assert official_i2v_size((720, 1280), 480, 832, stride=8, patch=2) == (464, 832)
    # The official float arithmetic, replicated: sqrt(480·832·480/832) = 479.99999999999994, so even a 480x832
    # image at the 480x832 area comes out 464 high.
    assert official_i2v_size((480, 832), 480, 832, stride=8, patch=2) == (464, 832)
    assert official_i2v_size((720, 1280), 720, 1280, stride=8, patch=2) == (720, 1280)
    # TI2V-5B: best_output_size (width, height) at multiples of 32.
    assert best_output_size(1280, 704, 32, 32, 704 * 1280) == (1280, 704)
    assert best_output_size(704, 1280, 32, 32, 704 * 1280) == (704, 1280)
    assert best_output_size(1280, 720, 32, 32, 704 * 1280) == (1248, 704)  # 16:9 photo: closest aspect wins


def test_official_i2v_is_a_bicubic_resize_of_the_unit_image():
    torch = pytest.importorskip("torch")
    out = preprocess_image(PHOTO, 48, 64, model_type="i2v", stride=8, patch=2, mode="official")
    h, w = official_i2v_size(PHOTO.shape[:2], 48, 64, 8, 2)
    unit = torch.from_numpy(PHOTO).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)
    ref = torch.nn.functional.interpolate(unit[None], size=(h, w), mode="bicubic")[0].permute(1, 2, 0).numpy()
    assert out.shape == (h, w, 3)
    np.testing.assert_allclose(out, ref, rtol=0, atol=3e-6)


def test_official_ti2v_covers_then_center_crops():
    out = preprocess_image(PHOTO, 64, 96, model_type="ti2v", stride=16, patch=2, mode="official")
    ow, oh = best_output_size(70, 45, 32, 32, 64 * 96)
    assert out.shape == (oh, ow, 3) and out.min() >= -1 and out.max() <= 1
    scale = max(ow / 70, oh / 45)
    big = np.asarray(Image.fromarray(PHOTO).resize((round(70 * scale), round(45 * scale)), Image.LANCZOS))
    x1, y1 = (big.shape[1] - ow) // 2, (big.shape[0] - oh) // 2
    np.testing.assert_allclose(out, big[y1 : y1 + oh, x1 : x1 + ow] / 255 * 2 - 1, atol=1e-6)


def test_diffsynth_stretches_with_pil_bicubic():
    out = preprocess_image(PHOTO, 32, 48, model_type="i2v", stride=8, patch=2, mode="diffsynth")
    ref = np.asarray(Image.fromarray(PHOTO).resize((48, 32)), np.float32) * (2 / 255) - 1
    np.testing.assert_array_equal(out, ref)


def test_diffusers_mode_matches_diffusers_video_processor():
    pytest.importorskip("diffusers")
    from diffusers.video_processor import VideoProcessor

    ref = VideoProcessor(vae_scale_factor=8).preprocess(Image.fromarray(PHOTO), height=32, width=48)
    out = preprocess_image(PHOTO, 32, 48, model_type="i2v", stride=8, patch=2, mode="diffusers")
    np.testing.assert_allclose(out, ref[0].numpy().transpose(1, 2, 0), rtol=0, atol=1e-6)


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown image resize mode 'bilinear'"):
        preprocess_image(PHOTO, 32, 48, model_type="i2v", stride=8, patch=2, mode="bilinear")
