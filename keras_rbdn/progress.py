"""Progress bars with an ETA for long inference, on stderr (tqdm), and
the summary line of a finished image."""

import os
import sys


def progress_bar(total, description=None, leave=False):
    """A tqdm bar on stderr that counts pixels of network passes, shown in
    megapixels.

    Args:
        total: int. Pixels the work will count.
        description: str or `None`. Text before the bar. Defaults to
            `None`.
        leave: bool. Whether the finished bar stays on screen. Defaults
            to `False`: it is cleared.

    Returns:
        A `tqdm.tqdm` bar: `update(pixels)`, then `close()`.
    """
    from tqdm import tqdm

    # A terminal that reports no size (0 x 0, as pseudo-terminals opened
    # without one do) has no row for tqdm to draw the bar on: it would
    # show nothing. Such a terminal gets 80 x 24.
    columns, rows = _terminal_size(sys.stderr)
    return tqdm(
        total=total,
        desc=description,
        unit="MP",
        unit_scale=1e-6,
        file=sys.stderr,
        leave=leave,
        dynamic_ncols=columns > 0,
        ncols=None if columns > 0 else 80,
        nrows=None if rows > 0 else 24,
        bar_format="{l_bar}{bar}| {n:.3g}/{total:.3g} MP "
        "[{elapsed}<{remaining}, {rate_noinv_fmt}]",
    )


def _terminal_size(stream):
    """`(columns, rows)` of the terminal `stream` writes to; 0 where it
    says none."""
    try:
        return tuple(os.get_terminal_size(stream.fileno()))
    except (AttributeError, OSError, ValueError):
        return 0, 0


def summary(description, shape, seconds):
    """One line on a finished image: its size, seconds and MP/s.

    Args:
        description: str or `None`. The image's name.
        shape: tuple. The image's `(height, width, channels)`.
        seconds: float. Time taken.

    Returns:
        A str such as `"photo.png: 4000x3000 RGB, 245.1 s, 0.049 MP/s"`.
    """
    height, width, channels = shape
    kind = {1: "gray", 3: "RGB"}.get(channels, f"{channels}-channel")
    rate = height * width / 1e6 / max(seconds, 1e-9)
    name = f"{description}: " if description else ""
    return f"{name}{width}x{height} {kind}, {seconds:.1f} s, {rate:.3g} MP/s"
