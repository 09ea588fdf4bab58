"""The README and docs/*.md: their code blocks run, their links resolve.

Every fenced code block has a language. `python` and `bash` blocks run in
the order of their file, in a scratch folder that holds small generated
inputs (`make_inputs`: `noisy.png`, `photos/`, `my_run.keras`, ...); the
python blocks of one file share one namespace, as a reader's session
would. A block that cannot run in a test (it needs `../shared/data`, a
GPU, Docker, a server, or hours) is preceded by a visible marker, on the
line before its fence:

    <!-- not run: needs ../shared/data -->

and is skipped. `text`, `json` and `textproto` blocks are data: those
of `docs/serving.md` are checked against a real export and the shipped
`savedmodels/models.config` by `tests/export_test.py`, which also runs
its client block against a stand-in server.
"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_rbdn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
FILES = [README, *DOCS]
RESULTS = os.path.join(ROOT, "benchmarks", "results")
README_LIMIT = 12_000
LANGUAGES = {"python", "bash", "text", "json", "textproto"}
RUNNABLE = {"python", "bash"}
MARKER = re.compile(r"^<!-- not run( here)?: (?P<reason>\S.*?) -->$")
FENCE = "```"


def relative(path):
    return os.path.relpath(path, ROOT)


def code_blocks(path):
    """`(language, first line number, code, reason not run or None)`."""
    with open(path) as file:
        lines = file.read().split("\n")
    blocks = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith(FENCE):
            index += 1
            continue
        language = line[len(FENCE) :].strip()
        start = index
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = MARKER.match(lines[previous]) if previous >= 0 else None
        index += 1
        body = []
        while index < len(lines) and not lines[index].startswith(FENCE):
            body.append(lines[index])
            index += 1
        assert index < len(lines), f"{relative(path)}:{start + 1}: unclosed"
        index += 1
        reason = marker.group("reason") if marker else None
        blocks.append((language, start + 1, "\n".join(body) + "\n", reason))
    return blocks


def test_readme_is_short():
    with open(README) as file:
        assert len(file.read()) <= README_LIMIT


def test_the_docs_exist():
    names = {os.path.basename(path) for path in DOCS}
    assert {
        "training.md",
        "serving.md",
        "performance.md",
        "architecture_study.md",
        "results.md",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_every_block_has_a_known_language(path):
    for language, line, _, _ in code_blocks(path):
        assert language in LANGUAGES, f"{relative(path)}:{line}: {language!r}"


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_every_marker_precedes_a_runnable_block(path):
    with open(path) as file:
        text = file.read()
    markers = [
        line for line in text.split("\n") if line.startswith("<!-- not run")
    ]
    for line in markers:
        assert MARKER.match(line), f"{relative(path)}: malformed {line!r}"
    marked = [b for b in code_blocks(path) if b[3] is not None]
    assert len(marked) == len(markers), relative(path)
    for language, line, _, _ in marked:
        assert language in RUNNABLE, f"{relative(path)}:{line}"


def test_the_markers_are_parsed():
    # A mutation check of the parser: a marker skips its block only.
    blocks = code_blocks(os.path.join(ROOT, "docs", "serving.md"))
    client = [b for b in blocks if "urllib" in b[2]]
    assert len(client) == 1 and client[0][3] is not None
    export = [b for b in blocks if "keras_rbdn.export(" in b[2]]
    assert export and all(b[3] is None for b in export)


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_relative_links_resolve(path):
    with open(path) as file:
        text = file.read()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = os.path.normpath(
            os.path.join(os.path.dirname(path), file_part)
        )
        assert os.path.exists(resolved), f"{relative(path)}: {target}"
        if anchor and resolved.endswith(".md"):
            assert anchor in anchors(resolved), f"{relative(path)}: {target}"


def anchors(path):
    """GitHub's anchors of a Markdown file's headings."""
    with open(path) as file:
        headings = re.findall(r"^#+ (.+)$", file.read(), re.MULTILINE)
    return {
        re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        for heading in headings
    }


REPOSITORY_PATH = re.compile(
    r"`((?:benchmarks|recipes|keras_rbdn|tests|docs)/[\w./-]*)`"
)
RESULT_FILE = re.compile(
    r"`((?:gpu_h100/)?(?:speed|conv|folding|layer_profile|mixed_precision"
    r"|torch|variants|run\d)_[\w.]*\.md)`"
)


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_cited_files_exist(path):
    """Repository paths and benchmark result files named in the text."""
    with open(path) as file:
        text = file.read()
    for cited in REPOSITORY_PATH.findall(text):
        assert os.path.exists(os.path.join(ROOT, cited)), (
            f"{relative(path)}: {cited}"
        )
    for cited in RESULT_FILE.findall(text):
        found = glob.glob(os.path.join(RESULTS, "**", cited), recursive=True)
        assert found, f"{relative(path)}: {cited}"


def test_no_lab_notebook_left():
    assert not os.path.exists(
        os.path.join(ROOT, "benchmarks", "SPEED_NOTES.md")
    )
    results = [
        path
        for path in glob.glob(os.path.join(RESULTS, "**", "*"), recursive=True)
        if path.endswith((".md", ".log"))
    ]
    for path in FILES + results:
        with open(path) as file:
            text = file.read()
        for word in ("SPEED_NOTES", "session", "throw-away", "s9run"):
            assert word not in text, f"{relative(path)}: {word}"


def test_readme_rest_example_is_the_documented_request():
    with open(README) as file:
        readme = file.read()
    (body,) = re.findall(r"curl -d '(.*?)'", readme)
    blocks = code_blocks(os.path.join(ROOT, "docs", "serving.md"))
    request = next(b[2] for b in blocks if b[0] == "json")
    assert json.loads(body) == json.loads(request)


def test_readme_describes_the_makefile_targets():
    with open(os.path.join(ROOT, "Makefile")) as file:
        makefile = file.read()
    assert "$(VENV)/bin/python recipes/demo.py" in makefile
    assert "for backend in $(BACKENDS)" in makefile
    (setup,) = [b for b in code_blocks(README) if "make demo" in b[2]]
    assert "make test" in setup[2]


def make_inputs(folder):
    """The small files the documented commands read."""
    rng = np.random.default_rng(0)

    def image(height, width, channels):
        smooth = np.linspace(0, 200, width)[None, :, None]
        noise = rng.normal(0, 20, (height, width, channels))
        pixels = np.clip(smooth + 30 + noise, 0, 255).astype("uint8")
        return Image.fromarray(pixels[..., 0] if channels == 1 else pixels)

    image(40, 48, 1).save(folder / "noisy.png")
    image(40, 48, 3).save(folder / "photo.png")
    image(48, 42, 1).save(folder / "face.png")
    image(40, 48, 3).save(folder / "old.jpg")
    (folder / "scans").mkdir()
    for name in ("a", "b"):
        image(33, 21, 1).save(folder / "scans" / f"{name}.png")
    (folder / "photos").mkdir()
    for index in range(4):
        image(40, 40, 3).save(folder / "photos" / f"{index}.png")
    network = keras_rbdn.build(
        branches=1, filters=4, trunk_depth=1, kernel_size=3, task="denoise"
    )
    network.save(folder / "my_run.keras")


def run_bash(code, folder, where):
    environment = dict(os.environ)
    environment["PATH"] = (
        os.path.dirname(sys.executable) + os.pathsep + environment["PATH"]
    )
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", code],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"{where}: {shlex.quote(code)}\n{result.stdout}\n{result.stderr}"
    )


RUN_FILES = [
    path
    for path in FILES
    if any(b[0] in RUNNABLE and b[3] is None for b in code_blocks(path))
]


# What a reader runs, once: the layers and models these blocks call are
# tested on every backend elsewhere.
@pytest.mark.slow
@pytest.mark.backend_independent
@pytest.mark.parametrize("path", RUN_FILES, ids=relative)
def test_code_blocks_run(path, tmp_path, monkeypatch):
    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran = 0
    try:
        for language, line, code, reason in code_blocks(path):
            if language not in RUNNABLE or reason is not None:
                continue
            where = f"{relative(path)}:{line}"
            if language == "python":
                exec(compile(code, where, "exec"), namespace)
            else:
                run_bash(code, tmp_path, where)
            ran += 1
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert ran


def test_readme_keeps_the_color_photos_section_after_the_cli():
    with open(README) as file:
        headings = re.findall(r"^## (.+)$", file.read(), re.MULTILINE)
    index = headings.index("Command line")
    assert headings[index + 1] == "Color photos"
