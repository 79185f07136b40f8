"""The notebooks in notebooks/ are stored executed, with their outputs, and those outputs are what running them
gives today: each notebook is re-executed against the sample captures and compared with the stored copy in its
facts (notebooks/execute.py: text, tables and streams equal; memory addresses and `%time` lines normalised; plots
compared by presence and pixel size, not bytes). `make notebooks` rewrites them after a change.

The kernel is this interpreter: notebooks/execute.py writes a kernel spec named "python3" that starts
`sys.executable -m ipykernel_launcher` to a temporary directory put first on JUPYTER_PATH, so a user's or the
system's own "python3" spec (which may point at another Python without pcapmtu) is never used. Runtime files and
IPython's profile also live in temporary directories: nothing under the user's home is read or written.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["postmortem.ipynb", "explore_capture.ipynb"]

_spec = importlib.util.spec_from_file_location("pcapmtu_notebook_execute", NOTEBOOKS / "execute.py")
nbexec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbexec)


@pytest.fixture(scope="module")
def executed():
    """Run a notebook once per module (cwd notebooks/, as Jupyter would) and hand out the executed copy."""
    cache: dict[str, object] = {}

    def run(name: str):
        if name not in cache:
            with nbexec.isolated_kernel():
                try:
                    cache[name] = nbexec.execute(NOTEBOOKS / name)
                except nbclient.exceptions.CellExecutionError as exc:
                    pytest.fail(f"{name}: a cell failed\n{exc}", pytrace=False)
        return cache[name]

    return run


def stored(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _texts(nb) -> list[str]:
    """Everything the code cells printed or displayed as text."""
    return [str(item[-1]) for cell in nbexec.facts(nb) for item in cell if not item[0].startswith("image/")]


def _images(nb) -> int:
    return sum(item[0] == "image/png" for cell in nbexec.facts(nb) for item in cell)


def _png(width: int, height: int, payload: bytes = b"") -> str:
    """A PNG header of the given size (all png_size reads), as Jupyter stores images: base64 text."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk + payload).decode()


@pytest.mark.parametrize("name", NAMES)
def test_stored_executed_top_to_bottom_without_machine_specifics(name):
    raw = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    assert raw["nbformat"] == 4
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    assert raw["metadata"]["language_info"] == {"name": "python"}, "the Python version is not stored"
    nb = nbformat.from_dict(raw)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "not executed once, in order"
    assert sum(bool(c.outputs) for c in code) >= len(code) - 2, "stored without (most of) its outputs"
    for cell in nb.cells:
        assert "execution" not in cell.get("metadata", {}), f"{cell.get('id')} has execution timing metadata"
        assert not cell.get("attachments"), f"{cell.get('id')} has attachments"
        assert not [o for o in cell.get("outputs", []) if o.output_type == "error"], (
            f"{cell.get('id')} failed"
        )
    assert nbexec.machine_specific(nb) == []
    text = "\n".join(_texts(nb))
    assert "sample_pcaps/" in text or name != "postmortem.ipynb", "the relative paths are not printed"


@pytest.mark.parametrize("name", NAMES)
def test_stored_outputs_are_what_running_it_gives(executed, name):
    """Re-executed, every output agrees with the stored one in its facts: nobody edited them by hand and the
    notebook still tells the truth about the current code (after a change: `make notebooks`)."""
    problems = nbexec.differences(stored(name), executed(name))
    assert problems == [], (
        f"{name}: stored outputs differ from a fresh run (run `make notebooks`):\n" + "\n".join(problems)
    )
    assert nbexec.machine_specific(executed(name)) == []


def _outputs(nb, cell_id: str) -> list:
    return next(c for c in nb.cells if c.get("id") == cell_id).outputs


def test_the_comparison_notices_hand_edits():
    """Edits of a copy of the stored postmortem that must count as differences, and variations that must not."""
    nb = stored("postmortem.ipynb")
    assert nbexec.differences(nb, copy.deepcopy(nb)) == []

    def changed(edit) -> list[str]:
        other = copy.deepcopy(nb)
        edit(other)
        return nbexec.differences(nb, other)

    def stream(other):  # the verdict line, printed
        out = _outputs(other, "verdict")[0]
        out.text = out.text.replace("confidence:      97%", "confidence:      99%")

    def html_cell(other):  # one number in a DataFrame's HTML table only (text/plain left alone)
        data = _outputs(other, "container-flows")[0].data
        assert "<td>1460</td>" in data["text/html"]
        data["text/html"] = data["text/html"].replace("<td>1460</td>", "<td>1410</td>", 1)

    def plain(other):
        data = _outputs(other, "analyze")[0].data
        data["text/plain"] = data["text/plain"].replace("mtu_blackhole", "healthy")

    def image_removed(other):
        cell = next(c for c in other.cells if c.get("id") == "timeline")
        cell.outputs = [o for o in cell.outputs if "image/png" not in o.get("data", {})]

    def image_resized(other):
        _outputs(other, "timeline")[0].data["image/png"] = _png(1600, 900)

    def output_added(other):
        _outputs(other, "verify").append(nbformat.v4.new_output("stream", name="stdout", text="all good\n"))

    for edit in (stream, html_cell, plain, image_removed, image_resized, output_added):
        assert changed(edit), f"{edit.__name__}: the edit went unnoticed"
    assert any("99%" in p for p in changed(stream))

    # what legitimately varies from run to run is not a difference
    size = nbexec.png_size(_outputs(nb, "timeline")[0].data["image/png"])

    def image_bytes(other):  # same picture size, other bytes (another matplotlib, other fonts)
        _outputs(other, "timeline")[0].data["image/png"] = _png(*size, payload=b"other bytes")

    def image_slightly_wider(other):
        _outputs(other, "timeline")[0].data["image/png"] = _png(size[0] + size[0] // 20, size[1])

    def machine_noise(other):
        other.metadata["language_info"] = {"name": "python", "version": "3.99.0"}
        next(c for c in other.cells if c.get("id") == "verify").metadata["execution"] = {
            "iopub.status.busy": "x"
        }

    def split_stream(other):  # one cell's prints arriving as two stream messages (a busy kernel)
        cell = next(c for c in other.cells if c.get("id") == "verdict")
        text = cell.outputs[0].text
        cut = text.index("\n") + 1
        cell.outputs[0].text = text[:cut]
        cell.outputs.insert(1, nbformat.v4.new_output("stream", name="stdout", text=text[cut:]))

    def font_cache(other):  # matplotlib's notice when it (re)builds its shared font cache
        notice = "Matplotlib is building the font cache; this may take a moment.\n"
        _outputs(other, "time-sequence").insert(
            0, nbformat.v4.new_output("stream", name="stderr", text=notice)
        )

    for edit in (image_bytes, image_slightly_wider, machine_noise, split_stream, font_cache):
        assert changed(edit) == [], f"{edit.__name__} counted as a difference"

    one = nbformat.v4.new_output(
        "stream", name="stdout", text="<Obj object at 0x7f00aa11bb22>\nWall time: 1.2 s\n"
    )
    two = nbformat.v4.new_output(
        "stream", name="stdout", text="<Obj object at 0x7f55cc33dd44>\nWall time: 3.4 s\n"
    )
    a, b = copy.deepcopy(nb), copy.deepcopy(nb)
    _outputs(a, "verify").append(one)
    _outputs(b, "verify").append(two)
    assert nbexec.differences(a, b) == []
    assert nbexec.machine_specific(a), "a memory address in an output is machine-specific"


def test_machine_specific_outputs_are_refused():
    nb = stored("explore_capture.ipynb")
    other = copy.deepcopy(nb)
    _outputs(other, "setup")[0].text = f"reading {NOTEBOOKS.parent / 'sample_pcaps' / 'x.pcap'}\n"
    assert nbexec.machine_specific(other) and not nbexec.machine_specific(nb)


def test_postmortem_reaches_the_verdict(executed):
    nb = executed("postmortem.ipynb")
    text = "\n".join(_texts(nb))
    assert re.search(r"^verdict:\s+mtu_blackhole$", text, re.M), "the verdict line is missing or wrong"
    assert re.search(r"^after the fix: healthy\b", text, re.M), (
        "the verification after the fix is not healthy"
    )
    # the story in UTC times: the stalled connection's first and last packet, from the datetime columns
    assert "opened 23:01:37.158348 UTC, last packet 23:01:45.205084 UTC" in text
    assert "hung for 8.0 s" in text
    # the Analysis and the Capture show their HTML summaries, not table dumps
    assert any(t.startswith("<div><p><b>pcapmtu: mtu_blackhole</b>") for t in _texts(nb))
    assert any(t.startswith("<div><b>pcapmtu capture</b> container.pcap") for t in _texts(nb))
    # time sequence, timeline, size wall and MSS plots are rendered, not just created
    assert _images(nb) >= 4


def test_explore_shows_the_capture(executed):
    nb = executed("explore_capture.ipynb")
    text = "\n".join(_texts(nb))
    assert "api.example" in text
    assert "first packet 2026-12-01 23:01:54.143589+00:00" in text
    assert _images(nb) >= 1
