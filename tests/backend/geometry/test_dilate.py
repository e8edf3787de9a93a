"""Dilation: a filled texel grows one ring per round, averaging its filled neighbours."""

from __future__ import annotations

import numpy as np

from backend.geometry import dilate


def test_one_texel_grows_into_a_square():
    values = np.zeros((20, 20, 3), dtype=np.uint8)
    filled = np.zeros((20, 20), dtype=bool)
    values[10, 10] = (200, 100, 50)
    filled[10, 10] = True
    grown_values, grown = dilate.dilate(values, filled, 3)
    assert grown.sum() == 7 * 7
    assert np.all(grown_values[grown] == (200, 100, 50))
    assert not grown[10, 14] and not filled[10, 11]  # input untouched


def test_border_between_two_colours_is_averaged():
    values = np.zeros((1, 5, 1), dtype=np.uint8)
    filled = np.zeros((1, 5), dtype=bool)
    values[0, 0], values[0, 4] = 0, 200
    filled[0, 0] = filled[0, 4] = True
    grown_values, _ = dilate.dilate(values, filled, 2)
    assert grown_values[0, 2, 0] == 100


def test_background_fills_what_the_rounds_do_not_reach_and_in_place_changes_the_input():
    values = np.zeros((12, 12, 2), dtype=np.uint8)
    filled = np.zeros((12, 12), dtype=bool)
    values[0, 0], filled[0, 0] = (90, 30), True
    copied, _ = dilate.dilate(values, filled, 2)
    grown_values, grown = dilate.dilate(
        values, filled, 2, background=np.array([7, 9], np.uint8), in_place=True
    )
    assert grown_values is values and grown is filled  # the caller's arrays, changed
    assert grown.sum() == 9 and np.all(values[grown] == (90, 30))
    np.testing.assert_array_equal(values[~grown], np.tile([7, 9], ((~grown).sum(), 1)))
    np.testing.assert_array_equal(values[grown], copied[grown])


def _charts(height: int, width: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random rectangles of random texels (some texels left out): a bake's charts, roughly."""
    rng = np.random.default_rng(seed)
    filled = np.zeros((height, width), dtype=bool)
    for _ in range(max(1, height * width // 3000)):
        row, col = rng.integers(0, height), rng.integers(0, width)
        filled[row : row + rng.integers(1, 30), col : col + rng.integers(1, 30)] = True
    filled &= rng.random((height, width)) < 0.97
    return rng.integers(0, 256, (height, width, channels)).astype(np.uint8), filled


def test_bands_of_rows_give_the_whole_image_answer():
    # Each band dilates a copy of its rows and `rounds` rows either side: whatever the band
    # count, the texels must be those of one pass over the whole image, even where a chart
    # straddles a band's edge or a band is shorter than its halo.
    values, filled = _charts(203, 97, 4, seed=5)
    background = np.array([1, 2, 3, 4], np.uint8)
    whole_values, whole_filled = values.copy(), filled.copy()
    dilate._dilate_rows(whole_values, whole_filled, 16, background)
    for bands in (2, 3, 7, 13):
        banded_values, banded_filled = values.copy(), filled.copy()
        dilate._dilate(banded_values, banded_filled, 16, background, bands)
        np.testing.assert_array_equal(banded_values, whole_values)
        np.testing.assert_array_equal(banded_filled, whole_filled)


def test_dilate_answer_does_not_depend_on_the_thread_count():
    import numba

    values, filled = _charts(512, 300, 6, seed=8)
    answers = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            background = np.arange(6, dtype=np.uint8)
            answers.append(dilate.dilate(values, filled, 16, background=background))
    finally:
        numba.set_num_threads(before)
    for grown_values, grown in answers[1:]:
        np.testing.assert_array_equal(grown_values, answers[0][0])
        np.testing.assert_array_equal(grown, answers[0][1])
