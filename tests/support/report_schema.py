"""report.json against tests/report_schema.json: a small JSON Schema validator and the cross-checks a schema
cannot say (test helper, not library code; used by test_report and test_wireshark). The schema stays beside
the tests: docs/report-format.md links to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pcapmtu.diagnose.detectors import RULES

SCHEMA = json.loads((Path(__file__).parents[1] / "report_schema.json").read_text())


class SchemaError(AssertionError):
    pass


def validate(value, schema: dict, where: str = "$", root: dict = SCHEMA) -> list[str]:
    """A small JSON Schema (2020-12) subset validator: the keywords tests/report_schema.json uses."""
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return validate(value, target, where, root)
    errors: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(value, k) for k in kinds):
            return [f"{where}: {type(value).__name__} {value!r:.60} is not {'/'.join(kinds)}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r:.60} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r:.60} not in {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r:.60} does not match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{where}.{key}", root)
            elif extra is False:
                errors.append(f"{where}: undocumented key {key!r}")
            elif isinstance(extra, dict):
                errors += validate(item, extra, f"{where}.{key}", root)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{where}[{i}]", root)
    return errors


def _is_type(value, kind: str) -> bool:
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }[kind]


KNOWN_KEYWORDS = {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "required",
                  "additionalProperties", "properties", "items", "enum", "const", "pattern", "minimum", "maximum"}  # fmt: skip


def validate_or_fail(doc: dict) -> None:
    errors = validate(doc, SCHEMA)
    assert not errors, "\n".join(errors[:20])
    roles = {c["role"] for c in doc["captures"]}
    for f in doc["findings"]:
        assert f["code"] in RULES and RULES[f["code"]].name == f["name"], f["code"]
        assert RULES[f["code"]].severity == f["severity"], f["code"]
        assert f["capture"] in roles | {""}
    for f in doc["flows"]:
        assert f["capture"] in roles and set(f["codes"]) <= set(RULES)
        assert f["matched"] is None or f["matched"]["capture"] in roles
        assert (f["reason"] != "") == (f["verdict"] == "not_mtu"), f
    if doc["flows"]:
        assert doc["verdict"] in {f["verdict"] for f in doc["flows"]}
    assert (doc["reason"] is not None) == (doc["verdict"] == "not_mtu")
    assert (doc["recommended_mss"] is None) or doc["verdict"].startswith("mtu_blackhole")
