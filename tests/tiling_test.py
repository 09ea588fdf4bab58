"""Tile plans: one tile shape, cores that cover, margins kept, least work."""

import numpy as np
import pytest

from keras_rbdn import tiling


def check_axis(spans, length, margin, stride):
    """The invariants every plan keeps along one axis."""
    assert len({end - start for start, end, _, _ in spans}) == 1
    assert spans[-1][1] == length  # The last tile ends at the edge.
    covered = 0
    for start, end, core_start, core_end in spans:
        assert start % stride == 0 and 0 <= start < end <= length
        assert core_start == covered < core_end  # Cores tile [0, length).
        assert core_start == 0 or core_start - start >= margin
        assert core_end == length or end - core_end >= margin
        covered = core_end
    assert covered == length


@pytest.mark.backend_independent
def test_random_plans_keep_their_invariants():
    rng = np.random.default_rng(0)
    for _ in range(300):
        stride = int(rng.choice([1, 4, 16]))
        margin = stride * int(rng.integers(0, 4))
        height, width = (int(n) for n in rng.integers(1, 700, 2))
        side = 2 * margin + 2 * stride - 1 + int(rng.integers(0, 400))
        rows, columns = tiling.plan_tiles(
            height, width, margin, stride, side * side, max_side=side
        )
        check_axis(rows, height, margin, stride)
        check_axis(columns, width, margin, stride)
        assert rows[0][1] * columns[0][1] <= side * side


@pytest.mark.backend_independent
def test_fewest_computed_pixels_among_all_tile_counts():
    # Reference: every (rows, columns) count, the shortest valid tiles.
    height, width, margin, stride, budget = 3000, 4000, 112, 16, 1536 * 1024
    rows, columns = tiling.plan_tiles(height, width, margin, stride, budget)
    computed = len(rows) * rows[0][1] * len(columns) * columns[0][1]
    for count_rows in range(1, 12):
        for count_columns in range(1, 12):
            tile_rows = tiling._axis_length(height, count_rows, margin, stride)
            tile_cols = tiling._axis_length(
                width, count_columns, margin, stride
            )
            if None in (tile_rows, tile_cols):
                continue
            if tile_rows * tile_cols <= budget:
                other = count_rows * tile_rows * count_columns * tile_cols
                assert computed <= other
    # 3 x 4 tiles of 1160 x 1168: 1.35x the image's pixels.
    assert (len(rows), len(columns)) == (3, 4)


@pytest.mark.backend_independent
def test_an_image_within_the_budget_is_one_tile():
    rows, columns = tiling.plan_tiles(300, 500, 48, 16, 300 * 500)
    assert rows == [(0, 300, 0, 300)] and columns == [(0, 500, 0, 500)]


@pytest.mark.backend_independent
def test_too_small_a_tile_is_a_value_error():
    with pytest.raises(ValueError, match="max_side=100"):
        tiling.plan_tiles(1000, 1000, 48, 16, 10**6, max_side=100)


@pytest.mark.backend_independent
def test_budget_follows_memory_and_filters():
    gigabyte = 1 << 30
    small = tiling.tile_pixel_budget(64, memory=gigabyte)
    assert small == gigabyte // 4 // (64 * tiling.BYTES_PER_PIXEL_PER_FILTER)
    assert tiling.tile_pixel_budget(64, memory=64 * gigabyte) == (
        tiling.MAX_TILE_PIXELS
    )
    assert tiling.tile_pixel_budget(16, memory=gigabyte) > small
    # Twice the pixels of FULL_TILES_UP_TO: tiles of half the pixels.
    large = tiling.tile_pixel_budget(
        64, 2 * tiling.FULL_TILES_UP_TO, memory=64 * gigabyte
    )
    assert large == tiling.MAX_TILE_PIXELS // 2
