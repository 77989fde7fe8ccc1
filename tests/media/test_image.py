"""Character image rules and decoding, on real PNG/JPEG files written by OpenCV."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from motion.errors import InputError
from motion.media import ImageLimits, read_image, validate_image
from tests.media.conftest import listing, pattern_frame, write_jpeg, write_png


def _rule(path: pathlib.Path, limits: ImageLimits | None = None) -> InputError:
    before = listing(path.parent)
    with pytest.raises(InputError) as info:
        validate_image(path, limits)
    # Validation never writes: nothing is left behind beside the input.
    assert listing(path.parent) == before
    return info.value


def test_validate_image_accepts_png_with_alpha_with_rgba_png(tmp_path: pathlib.Path) -> None:
    img = np.dstack([pattern_frame(400, 600, 0), np.full((600, 400), 200, np.uint8)])
    info = validate_image(write_png(tmp_path / "c.png", img))
    assert (info.width, info.height, info.format, info.has_alpha) == (400, 600, "png", True)
    rgba = read_image(tmp_path / "c.png")
    assert rgba.shape == (600, 400, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba, img)


def test_read_image_returns_rgb_with_jpeg(tmp_path: pathlib.Path) -> None:
    img = pattern_frame(320, 480, 0)
    info = validate_image(write_jpeg(tmp_path / "c.jpg", img))
    assert (info.width, info.height, info.format, info.has_alpha) == (320, 480, "jpeg", False)
    rgb = read_image(tmp_path / "c.jpg")
    assert rgb.shape == (480, 320, 3)
    assert np.abs(rgb.astype(int) - img.astype(int)).mean() < 4
    assert tuple(rgb[5, 5]) > (200, 0, 0) and rgb[5, 5, 1] < 60  # red marker top-left: RGB order kept


def test_read_image_applies_exif_rotation_with_orientation_6(tmp_path: pathlib.Path) -> None:
    img = pattern_frame(480, 320, 0)  # landscape, red marker top-left
    path = write_jpeg(tmp_path / "rot.jpg", img, exif_orientation=6)  # "rotate 90 CW to display"
    info = validate_image(path)
    assert (info.width, info.height) == (320, 480)
    rgb = read_image(path)
    assert rgb.shape == (480, 320, 3)
    # After a clockwise quarter turn the top-left marker sits at the top-right.
    assert rgb[5, 320 - 6, 0] > 200 and rgb[5, 5, 0] < 200


def test_validate_image_rejects_small_side_with_299px_png(tmp_path: pathlib.Path) -> None:
    err = _rule(write_png(tmp_path / "s.png", pattern_frame(299, 400, 0)))
    assert (err.rule, err.limit, err.actual) == ("image.min_side_px", 300, 299)


def test_validate_image_rejects_aspect_with_300x760_png(tmp_path: pathlib.Path) -> None:
    err = _rule(write_png(tmp_path / "a.png", pattern_frame(300, 760, 0)))
    assert err.rule == "image.aspect_ratio" and err.limit == 2.5 and err.actual == pytest.approx(760 / 300, abs=1e-3)


def test_validate_image_accepts_extreme_aspect_with_exactly_2_to_5(tmp_path: pathlib.Path) -> None:
    info = validate_image(write_png(tmp_path / "a.png", pattern_frame(300, 750, 0)))
    assert (info.width, info.height) == (300, 750)


def test_validate_image_rejects_size_with_noisy_png_over_10mb(tmp_path: pathlib.Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (1900, 1900, 3), dtype=np.uint8)
    path = write_png(tmp_path / "big.png", noise, level=0)
    size = path.stat().st_size
    assert size > 10 * 1024 * 1024
    err = _rule(path)
    assert (err.rule, err.limit, err.actual) == ("image.max_bytes", 10 * 1024 * 1024, size)


def test_validate_image_rejects_content_with_text_named_png(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 50)
    assert _rule(path).rule == "image.format"


def test_validate_image_rejects_extension_with_gif_name(tmp_path: pathlib.Path) -> None:
    path = write_png(tmp_path / "c.png", pattern_frame(400, 400, 0))
    gif = path.rename(tmp_path / "c.gif")
    err = _rule(gif)
    assert (err.rule, err.actual) == ("image.format", ".gif")


def test_validate_image_reports_mismatch_with_jpeg_named_png_in_strict_mode(tmp_path: pathlib.Path) -> None:
    path = write_jpeg(tmp_path / "c.png", pattern_frame(400, 400, 0))
    err = _rule(path, ImageLimits(strict_extension=True))
    assert (err.rule, err.limit, err.actual) == ("image.extension_mismatch", "png", "jpeg")
    # Lenient default: the content (an allowed format) decides.
    assert validate_image(path).format == "jpeg"


def test_validate_image_rejects_truncated_png_with_half_file(tmp_path: pathlib.Path) -> None:
    path = write_png(tmp_path / "t.png", pattern_frame(400, 400, 0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _rule(path).rule == "image.corrupt"


def test_validate_image_rejects_corrupt_png_with_flipped_bytes(tmp_path: pathlib.Path) -> None:
    path = write_png(tmp_path / "t.png", pattern_frame(400, 400, 0))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _rule(path).rule == "image.corrupt"


def test_validate_image_rejects_truncated_jpeg_with_missing_end(tmp_path: pathlib.Path) -> None:
    path = write_jpeg(tmp_path / "t.jpg", pattern_frame(400, 400, 0))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    assert _rule(path).rule == "image.corrupt"


def test_read_image_decodes_real_characters_with_shared_data(shared_data: pathlib.Path) -> None:
    for name in ("characters/musev__man.jpg", "characters/moore_aa__anyone-2.png", "drawings/char1_texture.png"):
        info = validate_image(shared_data / name)
        img = read_image(shared_data / name)
        assert img.shape[:2] == (info.height, info.width)
        assert img.shape[2] == (4 if info.has_alpha else 3)


@pytest.mark.parametrize("kind", ["gray", "gray16", "rgb16"])
def test_read_image_returns_rgb_uint8_with_gray_and_16bit_png(tmp_path: pathlib.Path, kind: str) -> None:
    import cv2

    base = pattern_frame(320, 320, 0)
    if kind == "gray":
        data = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY)
    elif kind == "gray16":
        data = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    else:
        data = cv2.cvtColor(base, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    path = tmp_path / f"{kind}.png"
    assert cv2.imwrite(str(path), data)
    info = validate_image(path)
    img = read_image(path)
    assert img.shape == (320, 320, 3) and img.dtype == np.uint8 and not info.has_alpha
    if kind == "rgb16":
        np.testing.assert_array_equal(img, base)
    else:
        np.testing.assert_array_equal(img[:, :, 0], img[:, :, 2])
