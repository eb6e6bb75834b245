"""read_page_image: pages as the detector sees them, whatever the file holds."""

import numpy as np
import pytest
from PIL import Image

from ditod.pages.image_io import read_page_image


def test_exif_rotation_is_applied(tmp_path):
    page = np.full((40, 100, 3), 255, np.uint8)
    page[:, :10] = 0  # ink on the left edge of the stored pixels
    image = Image.fromarray(page)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    upright = read_page_image(tmp_path / "photo.jpg")
    assert upright.shape == (100, 40, 3)
    assert upright[:10].mean() < 60 and upright[20:].mean() > 200  # the ink is now on top


def test_sixteen_bit_png_keeps_its_contrast(tmp_path):
    gray = np.zeros((8, 8), np.uint16)
    gray[:, 4:] = 65535
    Image.fromarray(gray).save(tmp_path / "deep.png")
    array = read_page_image(tmp_path / "deep.png")
    assert array.dtype == np.uint8 and array[:, :4].max() == 0 and array[:, 4:].min() == 255


@pytest.mark.parametrize("mode", ["CMYK", "L", "P"])
def test_other_modes_become_rgb(tmp_path, mode):
    rgb = Image.new("RGB", (20, 10), (200, 30, 30))
    path = tmp_path / f"page_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    rgb.convert(mode).save(path)
    array = read_page_image(path)
    assert array.shape == (10, 20, 3)
    expected = np.asarray(rgb.convert(mode).convert("RGB"))[0, 0]
    assert np.abs(array[0, 0].astype(int) - expected).max() <= 3


def test_transparency_lands_on_white_paper_and_bgr(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5] = (0, 0, 255, 255)  # opaque blue on top, fully transparent below
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    array = read_page_image(tmp_path / "alpha.png", format="BGR")
    assert array[0, 0].tolist() == [255, 0, 0] and array[9, 9].tolist() == [255, 255, 255]


def test_missing_and_truncated_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.png: image file not found"):
        read_page_image(tmp_path / "nope.png")
    Image.new("RGB", (64, 64), "gray").save(tmp_path / "cut.jpg")
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.jpg: cannot read image"):
        read_page_image(tmp_path / "cut.jpg")
