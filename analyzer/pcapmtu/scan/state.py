"""What a scan has done, so that an interrupted run goes on where it stopped (docs/scan.md, "Resuming").

The state is a JSON-lines file of the scan lines themselves (`--out DIR` keeps it as DIR/scan.jsonl): each
line is appended and flushed the moment its group is done, so a run killed at any point keeps every group
it finished. The next run skips a group whose line has the same `key` (its files' contents, pcapmtu's
version and the options: job.group_key) and finished without error; `--force` analyses every group again.
A line cut short by the interruption, or of another schema version, is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .line import ERROR, SCHEMA_VERSION


class State:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh = None

    def load(self) -> dict[str, dict]:
        """key -> the line of each group done without error."""
        done: dict[str, dict] = {}
        if self.path is None or not self.path.is_file():
            return done
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for text in fh:
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    continue
                if (
                    isinstance(line, dict)
                    and line.get("schema_version") == SCHEMA_VERSION
                    and isinstance(line.get("key"), str)
                    and line.get("status") != ERROR
                ):
                    done[line["key"]] = line
        return done

    def begin(self, kept: list[dict]) -> None:
        """Start the file again with the lines kept from the last run; new lines are appended to it."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rewrite(kept)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def record(self, line: dict) -> None:
        if self._fh is not None:
            self._fh.write(dumps(line) + "\n")
            self._fh.flush()

    def finish(self, lines: list[dict]) -> None:
        """The run is over: the file holds every group's line, worst first."""
        self.close()
        if self.path is not None:
            self._rewrite(lines)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _rewrite(self, lines: list[dict]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(dumps(line) + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, self.path)


def dumps(line: dict) -> str:
    """One line: compact, keys in schema order, no NaN (JSON readers refuse it)."""
    return json.dumps(line, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
