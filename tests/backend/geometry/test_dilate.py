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
