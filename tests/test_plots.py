"""Figures drawn from known numbers: every pixel of a spectrogram panel is the colour its level maps to."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from restorelab import plots

def colour(level_db: float) -> np.ndarray:
    """The colour the grid paints for a level on a 90 dB scale topped at 0 dB: one of the colour
    map's 256 entries, the level's 255ths of the scale rounded down (clipped at the ends)."""
    code = int(np.clip((level_db + 90.0) * 255 / 90.0, 0, 255))
    return (np.asarray(colormaps["magma"](code)[:3]) * 255).round()


def spectrum(level: np.ndarray) -> tuple:
    bins, frames = level.shape
    return np.linspace(0.0, 9.5, frames), np.linspace(0.0, 22050.0, bins), level.astype(np.float32)


@pytest.fixture(scope="module")
def grid():
    """Four clips: ``loud_low`` at the top of the scale in its lower half of bins, at its bottom
    above; ``early`` 45 dB down in its first half of frames, at the bottom after; two silent."""
    loud_low = np.full((128, 420), -90.0)
    loud_low[:64] = 0.0
    early = np.full((128, 420), -90.0)
    early[:, :210] = -45.0
    quiet = np.full((128, 420), -120.0)
    spectra = {"loud_low": spectrum(loud_low), "early": spectrum(early), "quiet": spectrum(quiet),
               "quieter": spectrum(quiet - 10)}
    return plots.spectrogram_grid(spectra), plots.GridLayout(len(spectra))


def panel(image, layout, index) -> np.ndarray:
    x, y = layout.panel(index)
    return np.asarray(image)[y:y + layout.panel_height, x:x + layout.panel_width].astype(float)


def test_spectrogram_grid_paints_each_level_in_its_colour_low_bins_at_the_bottom(grid):
    image, layout = grid
    assert image.size == layout.size == (84 + 3 * 420 + 2 * 16 + 120, 72 + 2 * 240 + 40 + 56)
    assert image.mode == "RGB"
    loud_low = panel(image, layout, 0)
    np.testing.assert_array_equal(loud_low[-120:], np.broadcast_to(colour(0.0), (120, 420, 3)))  # lower half
    np.testing.assert_array_equal(loud_low[:120], np.broadcast_to(colour(-90.0), (120, 420, 3)))
    early = panel(image, layout, 1)
    np.testing.assert_array_equal(early[:, :210], np.broadcast_to(colour(-45.0), (240, 210, 3)))
    np.testing.assert_array_equal(early[:, 210:], np.broadcast_to(colour(-90.0), (240, 210, 3)))
    # One scale for all: the silent clips sit below its bottom, as dark as the loud clip's quiet half.
    for index in (2, 3):
        np.testing.assert_array_equal(panel(image, layout, index), np.broadcast_to(colour(-120.0), (240, 420, 3)))


def test_spectrogram_grid_frames_panels_and_leaves_the_gaps_white(grid):
    image, layout = grid
    pixels = np.asarray(image)
    x, y = layout.panel(1)
    assert (pixels[y - 1, x - 1:x + layout.panel_width + 1] == 0).all()  # the frame above
    assert (pixels[y:y + layout.panel_height, x + layout.panel_width] == 0).all()  # and on the right
    gap = pixels[y + 20:y + layout.panel_height - 20, x - layout.gap_x + 2:x - 2]
    assert (gap == 255).all()
    below, _ = layout.panel(3)  # the fourth clip starts the second row, in the first column
    assert below == layout.panel(0)[0]


def test_save_writes_the_grid_losslessly_through_a_rename(grid, tmp_path):
    image, _ = grid
    path = plots.save(image, tmp_path / "grid.png")
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
    with Image.open(path) as written:
        np.testing.assert_array_equal(np.asarray(written.convert("RGB")), np.asarray(image))
