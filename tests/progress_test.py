import os
import struct
import subprocess
import sys

import pytest

pty = pytest.importorskip("pty")
fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")

DRAW = (
    "from keras_rbdn.progress import progress_bar\n"
    "bar = progress_bar(4_000_000, 'photo.png')\n"
    "bar.update(1_000_000)\n"
    "bar.refresh()\n"
    "bar.close()\n"
)


def drawn_on_terminal(rows, columns):
    """What `progress_bar` writes to a pseudo-terminal of that size."""
    main, terminal = pty.openpty()
    size = struct.pack("HHHH", rows, columns, 0, 0)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, size)
    try:
        subprocess.run(
            [sys.executable, "-c", DRAW],
            stderr=terminal,
            env=dict(os.environ, KERAS_BACKEND="numpy"),
            check=True,
            timeout=120,
        )
        os.close(terminal)
        terminal = None
        written = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # Linux: the terminal side is closed.
                break
            if not chunk:
                break
            written += chunk
        return written.decode(errors="replace")
    finally:
        os.close(main)
        if terminal is not None:
            os.close(terminal)


@pytest.mark.backend_independent
@pytest.mark.parametrize("rows, columns", [(24, 100), (0, 0)])
def test_the_bar_shows_on_any_terminal(rows, columns):
    """Also on a terminal that reports no size, as pseudo-terminals opened
    without one do: tqdm alone draws nothing there."""
    written = drawn_on_terminal(rows, columns)
    assert "photo.png:  25%|" in written, written
    assert "1/4 MP [" in written, written
