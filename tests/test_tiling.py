"""Tile grid, mirror padding and stitching (porescope.preprocessing.tiling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from porescope.preprocessing.tiling import (
    TilePosition,
    cut_tiles,
    mirror_pad,
    stitch,
    tile_positions,
    tile_starts,
)


def _reflect_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Independent mirror index: position i of an infinitely mirrored signal of length n."""
    if n == 1:
        return np.zeros_like(i)
    if mode == "reflect":  # d c b | a b c d | c b a : period 2(n-1), edge not repeated
        period = 2 * (n - 1)
        j = np.mod(i, period)
        return np.where(j < n, j, period - j)
    period = 2 * n  # symmetric: b a | a b c d | d c b : period 2n, edge repeated
    j = np.mod(i, period)
    return np.where(j < n, j, period - 1 - j)


@pytest.mark.parametrize("length, tile, expected", [
    (512, 256, [0, 256]), (600, 256, [0, 256, 512]), (256, 256, [0]), (100, 256, [0]),
    (257, 256, [0, 256]), (1, 16, [0]),
])
def test_tile_starts(length, tile, expected):
    assert tile_starts(length, tile) == expected
    assert len(tile_starts(length, tile)) == math.ceil(length / tile)


def test_positions_and_valid_extent():
    pos = tile_positions((600, 1000), 256)
    assert len(pos) == 3 * 4
    assert pos[0] == TilePosition(0, 0, 256, 256)
    # row-major order, last row/column partially valid: 600 - 512 = 88 rows, 1000 - 768 = 232 cols
    assert pos[3] == TilePosition(0, 768, 256, 232)
    assert pos[-1] == TilePosition(512, 768, 88, 232)
    assert sum(p.valid_height * p.valid_width for p in pos) == 600 * 1000


@pytest.mark.parametrize("shape", [(512, 512), (600, 1000), (100, 70), (5, 3), (1, 7), (1, 1),
                                   (33, 97), (64, 64, 3)])
@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_roundtrip_is_exact(shape, mode):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    tile = 32 if max(shape[:2]) > 40 else 16
    tiles, pos = cut_tiles(image, tile, mode)
    assert tiles.shape == (len(pos), tile, tile, *shape[2:])
    assert tiles.dtype == image.dtype
    back = stitch(tiles, pos, shape[:2])
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
@pytest.mark.parametrize("shape", [(5, 3), (20, 9), (2, 2), (1, 4)])
def test_padding_matches_independent_mirror(shape, mode):
    """Images smaller than half a tile need repeated mirroring; compare with an index formula."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 1000, size=shape).astype(np.int32)
    tile = 32
    tiles, pos = cut_tiles(image, tile, mode)
    assert len(pos) == 1 and pos[0].valid_height == shape[0] and pos[0].valid_width == shape[1]
    rows = _reflect_index(np.arange(tile), shape[0], mode)
    cols = _reflect_index(np.arange(tile), shape[1], mode)
    np.testing.assert_array_equal(tiles[0], image[np.ix_(rows, cols)])


def test_last_row_is_mirror_of_image_edge():
    image = np.arange(40 * 50, dtype=np.int32).reshape(40, 50)
    tiles, pos = cut_tiles(image, 32, "reflect")
    last = [i for i, p in enumerate(pos) if p.y == 32 and p.x == 0][0]
    t = tiles[last]
    np.testing.assert_array_equal(t[:8], image[32:40, :32])  # valid part
    np.testing.assert_array_equal(t[8], image[38, :32])       # first padded row mirrors row 38
    np.testing.assert_array_equal(t[9], image[37, :32])


def test_interior_tiles_are_plain_slices():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(96, 128), dtype=np.uint8)
    tiles, pos = cut_tiles(image, 32)
    for t, p in zip(tiles, pos):
        np.testing.assert_array_equal(t, image[p.y:p.y + 32, p.x:p.x + 32])


def test_mirror_pad_rejects_shrinking_and_bad_mode():
    a = np.zeros((10, 10))
    with pytest.raises(ValueError, match="smaller"):
        mirror_pad(a, 5, 10)
    with pytest.raises(ValueError, match="pad mode"):
        mirror_pad(a, 20, 20, mode="wrap")  # type: ignore[arg-type]


def test_stitch_rejects_bad_layouts():
    tiles = np.zeros((2, 16, 16), np.uint8)
    with pytest.raises(ValueError, match="covered by no tile"):
        stitch(tiles, [(0, 0), (0, 16)], (32, 32))
    with pytest.raises(ValueError, match="several tiles"):
        stitch(tiles, [(0, 0), (0, 8)], (16, 24))
    with pytest.raises(ValueError, match="outside"):
        stitch(tiles, [(0, 0), (40, 0)], (16, 16))
    with pytest.raises(ValueError, match="positions"):
        stitch(tiles, [(0, 0)], (16, 16))


def test_stitch_accepts_positions_from_a_table():
    import pandas as pd

    rng = np.random.default_rng(5)
    image = rng.random((50, 45)).astype(np.float32)
    tiles, pos = cut_tiles(image, 16)
    table = pd.DataFrame(pos)
    back = stitch(tiles, table[["y", "x"]].itertuples(index=False), image.shape)
    np.testing.assert_array_equal(back, image)
