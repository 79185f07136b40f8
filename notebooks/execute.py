"""Execute the notebooks of this folder and store them with their outputs, or check the stored outputs.

    python notebooks/execute.py            # re-execute every notebook here and rewrite it (`make notebooks`)
    python notebooks/execute.py --check    # re-execute and compare with the stored outputs; exit 1 on a difference
    python notebooks/execute.py postmortem.ipynb    # just one

The kernel is this interpreter (a temporary kernel spec named "python3" that starts `sys.executable`), run from
notebooks/ as Jupyter would; Jupyter's and IPython's own directories are temporary too, so nothing under the
user's home is read or written. tests/test_notebooks.py uses the same functions.

"Comparing in their facts" (`differences`): everything a cell printed or displayed must be equal (stream text,
text/plain, text/html, text/markdown, errors) after normalising what legitimately varies from run to run:
memory addresses (`0x7f...`), `%time` lines, how a cell's printed text was split into stream messages (a busy
machine splits one cell's prints into several), matplotlib's one-off "building the font cache" notice, and the
bytes of PNG images, of which only presence and pixel size (within IMAGE_TOLERANCE) are compared. Execution
timing metadata is never stored.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CELL_TIMEOUT = 120  # seconds per cell
IMAGE_TOLERANCE = 0.10  # a re-rendered plot may differ this much in width or height (fonts, versions)
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "application/json")

_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")
_TIMING = re.compile(r"^(CPU times|Wall time):.*$", re.M)
# said once per machine (or after another matplotlib rewrote the shared cache), not by the notebook
_NOISE = re.compile(r"^Matplotlib is building the font cache; this may take a moment\.\n?", re.M)


def notebooks() -> list[Path]:
    return sorted(HERE.glob("*.ipynb"))


@contextlib.contextmanager
def isolated_kernel() -> Iterator[None]:
    """While inside, the kernel name "python3" means this interpreter's ipykernel, whatever else is installed."""
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR",
                                            "JUPYTER_PLATFORM_DIRS")}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pcapmtu-nb-") as tmp:
        base = Path(tmp)
        spec_dir = base / "data" / "kernels" / "python3"
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "env": {
                "IPYTHONDIR": str(base / "ipython"),
                "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            },
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        os.environ.update(
            JUPYTER_PATH=str(base / "data"),  # searched before the user, venv and system directories
            JUPYTER_RUNTIME_DIR=str(base / "runtime"),
            JUPYTER_CONFIG_DIR=str(base / "config"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def execute(path: Path):
    """The notebook at `path` executed top to bottom (not written); raises nbclient's CellExecutionError."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, startup_timeout=60,
                                     record_timing=False, coalesce_streams=True,
                                     resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()
    return tidy(nb)


def tidy(nb):
    """Drop what says which machine ran it: the Python version in language_info, timing metadata."""
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def _text(value) -> str:
    return (
        value if isinstance(value, str) else "".join(value) if isinstance(value, list) else json.dumps(value)
    )


def normalise(text: str) -> str:
    return _TIMING.sub(r"\1: <timing>", _ADDRESS.sub("0x<address>", text))


def png_size(data: str) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR), without decoding the image."""
    import base64

    raw = base64.b64decode(data if isinstance(data, str) else "".join(data))
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", raw[16:24])


def facts(nb) -> list[list[tuple]]:
    """Per code cell, what it showed: ("stream", name, text), (mime, text), ("image/png", width, height)."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        shown: list[tuple] = []
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                text = normalise(_NOISE.sub("", _text(out.get("text", ""))))
                if not text:
                    continue
                if shown and shown[-1][:2] == (
                    "stream",
                    out.get("name"),
                ):  # one print, split by a busy kernel
                    shown[-1] = (*shown[-1][:2], shown[-1][2] + text)
                else:
                    shown.append(("stream", out.get("name"), text))
            elif kind == "error":
                shown.append(("error", out.get("ename"), normalise(out.get("evalue", ""))))
            else:
                data = out.get("data", {})
                for mime in sorted(data):
                    if mime.startswith("image/"):
                        size = png_size(data[mime]) if mime == "image/png" else (0, 0)
                        shown.append((mime, *size))
                    else:
                        shown.append((mime, normalise(_text(data[mime]))))
        cells.append(shown)
    return cells


def differences(stored, executed) -> list[str]:
    """Where the stored notebook's outputs and a fresh execution's differ in their facts (empty: none)."""
    found = []
    a, b = facts(stored), facts(executed)
    if len(a) != len(b):
        return [f"{len(a)} code cells stored, {len(b)} executed"]
    ids = [c.get("id", "?") for c in stored.cells if c.cell_type == "code"]
    for cell_id, old, new in zip(ids, a, b, strict=True):
        if len(old) != len(new):
            found.append(f"cell {cell_id}: {len(old)} outputs stored, {len(new)} executed")
            continue
        for i, (x, y) in enumerate(zip(old, new, strict=True)):
            if x[0] == "image/png" and y[0] == "image/png":
                if any(abs(p - q) > IMAGE_TOLERANCE * max(p, q) for p, q in zip(x[1:], y[1:], strict=True)):
                    found.append(
                        f"cell {cell_id} output {i}: image {x[1]}x{x[2]} stored, {y[1]}x{y[2]} executed"
                    )
            elif x != y:
                found.append(f"cell {cell_id} output {i} ({x[0]}) differs:\n{_first_difference(x, y)}")
    return found


def _first_difference(x: tuple, y: tuple) -> str:
    old, new = str(x[-1]).splitlines(), str(y[-1]).splitlines()
    for n, (p, q) in enumerate(zip(old, new, strict=False)):
        if p != q:
            return f"  line {n + 1} stored:   {p[:200]}\n  line {n + 1} executed: {q[:200]}"
    return (
        f"  {len(old)} lines stored, {len(new)} executed" if len(old) != len(new) else f"  {x[:2]} != {y[:2]}"
    )


def machine_specific(nb) -> list[str]:
    """Outputs that would tie the stored notebook to this machine: absolute paths, home, memory addresses."""
    needles = {str(ROOT), str(Path.home()), tempfile.gettempdir() + "/"}
    problems = []
    for cell_id, shown in zip(
        (c.get("id") for c in nb.cells if c.cell_type == "code"), facts(nb), strict=True
    ):
        for item in shown:
            text = str(item[-1])
            for needle in needles:
                if needle and needle != "/" and needle in text:
                    problems.append(f"cell {cell_id}: {needle!r} in {item[0]}")
            if "0x<address>" in text:
                problems.append(f"cell {cell_id}: a memory address in {item[0]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks of this folder (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the stored outputs, write nothing")
    args = parser.parse_args(argv)
    paths = [HERE / Path(n).name for n in args.names] or notebooks()
    failed = False
    with isolated_kernel():
        for path in paths:
            rel = path.relative_to(ROOT)
            executed = execute(path)
            problems = machine_specific(executed)
            if args.check:
                problems += differences(nbformat.read(path, as_version=4), executed)
            if problems:
                failed = True
                print(f"{rel}:\n  " + "\n  ".join(problems), file=sys.stderr)
            elif args.check:
                print(f"{rel}: outputs match")
            else:
                nbformat.write(executed, path)
                print(f"{rel}: executed and written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
