"""Tile plans: how a large image is cut into overlapping tiles of one shape.

A fully convolutional network can run on an image piece by piece: each
tile reaches `margin` pixels beyond the part of the output it provides
(its core), and with a margin at least the network's receptive radius the
pieces put together equal the whole-image output. The plans here give
every tile of an image the same shape, so the network is traced once per
image shape, not once per tile: the last tile of a row or column is moved
inward to end at the image's edge instead of being cut short. Tile
origins are multiples of the network's pooling stride, so pooling windows
fall where they fall on the whole image; a tile's length is then
congruent to the image's length modulo the stride.

Among the plans whose tiles fit a pixel budget, `plan_tiles` picks the
one that computes the fewest pixels: larger tiles waste less on margins,
and a cut is placed only where one is needed.
"""

# Pixels of network work that one extra tile call is worth (the cost of a
# call apart from its pixels): it breaks ties towards fewer, larger tiles.
CALL_COST_PIXELS = 16384

# Activation memory of an RBDN at inference, in bytes per pixel and per
# filter: 13.1 measured (peak RSS) for the 64-filter `denoise` network
# with TensorFlow on a CPU, tiles of 0.26 to 4.2 MP.
BYTES_PER_PIXEL_PER_FILTER = 14

# The largest tile, in pixels, whatever the memory: it keeps a 64-filter
# network's tile near 1.3 GB (docs/performance.md, "Photos").
MAX_TILE_PIXELS = 1536 * 1024

# Images up to this many pixels get tiles of up to `MAX_TILE_PIXELS`;
# larger ones, whose own arrays (input, ensemble sum, output, opponent
# planes) take memory too, get tiles smaller in proportion: a 24 MP RGB
# photo then runs within 4 GB.
FULL_TILES_UP_TO = 12_000_000


def available_memory():
    """Bytes of memory available to a new allocation, or `None`.

    Linux's `MemAvailable`; elsewhere `None`.
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def tile_pixel_budget(filters, image_pixels=0, memory=None):
    """The most pixels a tile may have for a network of `filters` filters.

    A quarter of the available memory (`memory`, default
    `available_memory()`) for the tile's activations, at most
    `MAX_TILE_PIXELS`, and less in proportion for images of more than
    `FULL_TILES_UP_TO` pixels.

    Args:
        filters: int. Feature maps of the network's hidden layers.
        image_pixels: int. Pixels of the image. Defaults to `0`.
        memory: int or `None`. Bytes available. Defaults to `None`: the
            machine's available memory.

    Returns:
        An int, at least 65,536.
    """
    budget = MAX_TILE_PIXELS
    if image_pixels > FULL_TILES_UP_TO:
        budget = MAX_TILE_PIXELS * FULL_TILES_UP_TO // image_pixels
    memory = available_memory() if memory is None else memory
    if memory is not None:
        per_pixel = BYTES_PER_PIXEL_PER_FILTER * max(int(filters), 1)
        budget = min(budget, memory // 4 // per_pixel)
    return max(budget, 1 << 16)


def _axis_length(length, count, margin, stride):
    """The shortest tile length that covers `length` with `count` tiles.

    Tiles start at multiples of `stride` and have one length, congruent
    to `length` modulo `stride` so that the last one ends at `length`;
    consecutive origins are at most `tile - 2 * margin` apart so that the
    cores meet. Returns `None` where `count` tiles need no cut.
    """
    if count == 1:
        return length
    tile = -(-(length + 2 * margin * (count - 1)) // count)
    tile += (length - tile) % stride
    step = (tile - 2 * margin) // stride * stride
    while tile < length and (count - 1) * step < length - tile:
        tile += stride
        step = (tile - 2 * margin) // stride * stride
    return tile if tile < length else None


def _axis_options(length, margin, stride, max_side):
    """`(count, tile)` pairs along one axis, fewest tiles first: each
    count's shortest tile, for tiles of at most `max_side`."""
    options = []
    for count in range(1, length // stride + 2):
        tile = _axis_length(length, count, margin, stride)
        if tile is not None and tile <= max_side:
            options.append((count, tile))
        if tile is not None and tile - 2 * margin <= stride:
            break  # More tiles would be no shorter.
    return options


def axis_spans(length, tile, count, margin, stride):
    """Tiles along one axis: `(start, end, core_start, core_end)` tuples.

    Args:
        length: int. Image length along the axis.
        tile: int. Tile length (`_axis_length`).
        count: int. Number of tiles.
        margin: int. Context pixels each core keeps from a cut.
        stride: int. Tile origins are multiples of it.

    Returns:
        A list of `count` tuples; the cores cover `[0, length)` without
        overlap.
    """
    if count == 1:
        return [(0, length, 0, length)]
    steps = (length - tile) // stride
    starts = [0]
    for index in range(count - 1):
        share = steps // (count - 1) + (index < steps % (count - 1))
        starts.append(starts[-1] + share * stride)
    spans = []
    core_start = 0
    for index, start in enumerate(starts):
        if index + 1 < count:
            # Halfway between this core's farthest end and the next core's
            # nearest start: both are at least `margin` from a cut.
            core_end = (start + tile - margin + starts[index + 1] + margin) // 2
        else:
            core_end = length
        spans.append((start, start + tile, core_start, core_end))
        core_start = core_end
    return spans


def plan_tiles(height, width, margin, stride, max_pixels, max_side=None):
    """The tiles of a `height` x `width` image that compute the least.

    Args:
        height: int. Image height.
        width: int. Image width.
        margin: int. Context pixels kept around each core (a multiple of
            `stride`).
        stride: int. Tile origins are multiples of it.
        max_pixels: int. Most pixels of one tile.
        max_side: int or `None`. Longest tile side. Defaults to `None`:
            no limit.

    Returns:
        `(rows, columns)`: the spans of `axis_spans` along each axis; every
        tile is `rows[i]` x `columns[j]`, all of one shape.

    Raises:
        ValueError: no tile of at most `max_pixels` pixels and `max_side`
            sides leaves a core between its margins (tiles of
            `2 * margin + 2 * stride - 1` pixels or more always do).
    """
    max_side = max_side or max(height, width)
    columns_options = _axis_options(width, margin, stride, max_side)
    best = None
    for rows, tile_height in _axis_options(height, margin, stride, max_side):
        for columns, tile_width in columns_options:
            if tile_height * tile_width <= max_pixels:
                pixels = tile_height * tile_width + CALL_COST_PIXELS
                cost = rows * columns * pixels
                if best is None or cost < best[0]:
                    best = (cost, rows, tile_height, columns, tile_width)
                break  # More columns compute more.
    if best is None:
        raise ValueError(
            f"No tile of at most {max_pixels} pixels and sides of at most "
            f"{max_side} leaves a core between margins of {margin} pixels "
            f"(stride {stride}); sides of {2 * margin + 2 * stride - 1} "
            "always leave one. "
            f"Received: max_pixels={max_pixels}, max_side={max_side}"
        )
    _, rows, tile_height, columns, tile_width = best
    return (
        axis_spans(height, tile_height, rows, margin, stride),
        axis_spans(width, tile_width, columns, margin, stride),
    )
