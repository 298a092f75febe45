"""Cut images into square tiles on a fixed grid, mirror-padded, and stitch them back.

Grid: tiles of ``tile_size`` x ``tile_size`` start at rows/columns ``0, T, 2T, ...`` (stride =
tile size, no overlap) while the start lies inside the image, so a side of length ``L`` gives
``ceil(L / T)`` tiles. The last row / column of tiles reaches past the image; that part is filled
by mirroring the image at its bottom / right edge, and each tile records how much of it is real
image: ``valid_height`` / ``valid_width`` (its top-left ``valid_height x valid_width`` block). An
image smaller than one tile becomes one tile, mirrored to full size.

Mirror modes (numpy names): ``reflect`` mirrors about the edge pixel without repeating it
(``... c b | a b c d | c b a ...``, OpenCV ``BORDER_REFLECT_101``, the default) and
``symmetric`` repeats it (``... b a | a b c d | d c b ...``, ``BORDER_REFLECT``). When the
padding is longer than the image (a side shorter than half a tile) the mirroring repeats, as
``np.pad`` does: the padded signal is the image reflected back and forth, period ``2(L - 1)``
(reflect) or ``2L`` (symmetric). A side of one pixel is repeated.

Positions are ``(y, x)`` = (row, column) of a tile's top-left pixel in the image; with the
image shape they are all :func:`stitch` needs to put predictions back and crop the padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import numpy as np

PadMode = Literal["reflect", "symmetric"]


class TilePosition(NamedTuple):
    """A tile's top-left pixel ``(y, x)`` in the image and its real-image extent."""

    y: int
    x: int
    valid_height: int
    valid_width: int


def tile_starts(length: int, tile_size: int) -> list[int]:
    """Start offsets ``0, T, 2T, ...`` covering ``length`` pixels (``ceil(length / T)`` tiles)."""
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    return list(range(0, length, tile_size))


def tile_positions(shape: Sequence[int], tile_size: int) -> list[TilePosition]:
    """Grid positions for an image of ``shape[:2]`` = (rows, cols), row-major order."""
    height, width = int(shape[0]), int(shape[1])
    return [TilePosition(y, x, min(tile_size, height - y), min(tile_size, width - x))
            for y in tile_starts(height, tile_size) for x in tile_starts(width, tile_size)]


def mirror_pad(image: np.ndarray, height: int, width: int, mode: PadMode = "reflect") -> np.ndarray:
    """Pad ``image`` at the bottom and right to ``height`` x ``width`` by mirroring.

    Extra axes (channels) are not padded. Padding longer than the image repeats the mirroring
    (module doc). Raises ``ValueError`` if the target is smaller than the image.
    """
    if mode not in ("reflect", "symmetric"):
        raise ValueError(f"pad mode must be 'reflect' or 'symmetric', got {mode!r}")
    h, w = image.shape[:2]
    if height < h or width < w:
        raise ValueError(f"target {height}x{width} is smaller than the image {h}x{w}")
    if (height, width) == (h, w):
        return image
    pad = [(0, height - h), (0, width - w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode=mode)


def cut_tiles(image: np.ndarray, tile_size: int, mode: PadMode = "reflect"
              ) -> tuple[np.ndarray, list[TilePosition]]:
    """Cut ``image`` into tiles on the grid; returns ``(tiles, positions)``.

    ``tiles`` has shape ``(n, tile_size, tile_size, *image.shape[2:])`` and the image's dtype;
    ``positions[i]`` is tile ``i``'s :class:`TilePosition` (row-major order).
    """
    positions = tile_positions(image.shape, tile_size)
    ny = len(tile_starts(image.shape[0], tile_size))
    nx = len(tile_starts(image.shape[1], tile_size))
    padded = mirror_pad(image, ny * tile_size, nx * tile_size, mode)
    # (ny, T, nx, T, ...) -> (ny, nx, T, T, ...) -> (n, T, T, ...)
    grid = padded.reshape(ny, tile_size, nx, tile_size, *image.shape[2:])
    tiles = np.ascontiguousarray(np.swapaxes(grid, 1, 2)).reshape(
        ny * nx, tile_size, tile_size, *image.shape[2:])
    return tiles, positions


def stitch(tiles: np.ndarray | Sequence[np.ndarray],
           positions: Iterable[Sequence[int]], shape: Sequence[int]) -> np.ndarray:
    """Put tiles back into an image of ``shape`` = (rows, cols), dropping the padding.

    ``positions`` gives each tile's ``(y, x)`` (extra fields, as in :class:`TilePosition`, are
    ignored); the valid part of a tile is its top-left ``min(T, rows - y) x min(T, cols - x)``
    block. Each pixel must be covered exactly once. The result has the tiles' dtype and trailing
    axes. Raises ``ValueError`` for a tile outside the image, overlapping tiles or uncovered
    pixels.
    """
    tiles = list(tiles)
    positions = [tuple(int(v) for v in p[:2]) for p in positions]
    if len(tiles) != len(positions):
        raise ValueError(f"{len(tiles)} tiles but {len(positions)} positions")
    if not tiles:
        raise ValueError("no tiles to stitch")
    height, width = int(shape[0]), int(shape[1])
    first = np.asarray(tiles[0])
    out = np.zeros((height, width, *first.shape[2:]), dtype=first.dtype)
    cover = np.zeros((height, width), dtype=np.int32)
    for tile, (y, x) in zip(tiles, positions):
        tile = np.asarray(tile)
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f"tile at (y={y}, x={x}) lies outside the {height}x{width} image")
        vh = min(tile.shape[0], height - y)
        vw = min(tile.shape[1], width - x)
        out[y:y + vh, x:x + vw] = tile[:vh, :vw]
        cover[y:y + vh, x:x + vw] += 1
    if cover.min() < 1:
        raise ValueError(f"{int(np.count_nonzero(cover == 0))} pixels are covered by no tile")
    if cover.max() > 1:
        raise ValueError(f"{int(np.count_nonzero(cover > 1))} pixels are covered by several tiles")
    return out
