"""The notebooks in notebooks/ run top to bottom against the sample captures, and are stored without outputs.

The kernel is this interpreter: a kernel spec named "python3" that starts `sys.executable -m ipykernel_launcher`
is written to a temporary directory put first on JUPYTER_PATH, so a user's or the system's own "python3" spec
(which may point at another Python without pcapmtu) is never used. Runtime files and IPython's profile also live
in temporary directories: nothing under the user's home is read or written.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["postmortem.ipynb", "explore_capture.ipynb"]
CELL_TIMEOUT = 120  # seconds per cell; the whole module takes a few seconds


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Environment under which the kernel name "python3" means this interpreter's ipykernel."""
    base = tmp_path_factory.mktemp("jupyter")
    spec_dir = base / "data" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (pcapmtu tests)",
        "language": "python",
        "env": {
            "IPYTHONDIR": str(base / "ipython"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(base / "data"))  # searched before the user, venv and system directories
        mp.setenv("JUPYTER_RUNTIME_DIR", str(base / "runtime"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(base / "config"))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        yield


@pytest.fixture(scope="module")
def executed(kernel_env):
    """Run a notebook once per module (cwd notebooks/, as Jupyter would) and hand out the executed copy."""
    cache: dict[str, object] = {}

    def run(name: str):
        if name not in cache:
            nb = nbformat.read(NOTEBOOKS / name, as_version=4)
            client = nbclient.NotebookClient(
                nb,
                kernel_name="python3",
                timeout=CELL_TIMEOUT,
                startup_timeout=60,
                resources={"metadata": {"path": str(NOTEBOOKS)}},
            )
            try:
                client.execute()
            except nbclient.exceptions.CellExecutionError as exc:
                pytest.fail(f"{name}: a cell failed\n{exc}", pytrace=False)
            cache[name] = nb
        return cache[name]

    return run


def _texts(nb) -> list[str]:
    """Everything the code cells printed or displayed as text."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o.get("text", ""))
            for mime in ("text/plain", "text/html", "text/markdown"):
                value = o.get("data", {}).get(mime)
                if value:
                    out.append(value if isinstance(value, str) else "".join(value))
    return out


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for cell in nb.cells for o in cell.get("outputs", []))


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name):
    """Committed notebooks carry no outputs or execution counts, so running them never dirties git."""
    raw = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    assert raw["nbformat"] == 4
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    nbformat.validate(nbformat.from_dict(raw))
    assert raw["cells"], "empty notebook"
    for i, cell in enumerate(raw["cells"]):
        where = f"{name} cell {i} ({cell.get('id')})"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{where} has stored outputs"
            assert cell["execution_count"] is None, f"{where} has an execution count"
        assert "execution" not in cell.get("metadata", {}), f"{where} has execution timing metadata"
        assert "attachments" not in cell or not cell["attachments"], f"{where} has attachments"


@pytest.mark.parametrize("name", NAMES)
def test_runs_top_to_bottom(executed, name):
    nb = executed(name)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_postmortem_reaches_the_verdict(executed):
    nb = executed("postmortem.ipynb")
    text = "\n".join(_texts(nb))
    assert re.search(r"^verdict:\s+mtu_blackhole$", text, re.M), "the verdict line is missing or wrong"
    assert re.search(r"^after the fix: healthy\b", text, re.M), (
        "the verification after the fix is not healthy"
    )
    # time sequence, timeline, size wall and MSS plots are rendered, not just created
    assert _images(nb) >= 4


def test_explore_shows_the_capture(executed):
    nb = executed("explore_capture.ipynb")
    text = "\n".join(_texts(nb))
    assert "api.example" in text
    assert _images(nb) >= 1
