"""`pcapmtu rules --json`: every detector code as data, for tooling (CI gates, dashboards). A contract:
docs/json.md; adding a field is compatible, renaming or removing one bumps RULES_SCHEMA_VERSION."""

from __future__ import annotations

import json
from collections.abc import Mapping

from .. import __version__

RULES_SCHEMA_VERSION = 1


def rules_document(rules: Mapping) -> dict:
    from ..diagnose.detectors import readable

    return {
        "schema_version": RULES_SCHEMA_VERSION,
        "tool": {"name": "pcapmtu", "version": __version__},
        "rules": [
            {
                "code": r.code,
                "name": r.name,
                "severity": str(r.severity),
                "verdict": str(r.implies) if r.implies is not None else None,
                "reason": str(r.reason) if r.reason is not None else None,
                "message": readable(r.message),
                "why": r.why,
                "fix": readable(r.fix),
                "references": list(r.references),
            }
            for r in (rules[code] for code in sorted(rules))
        ],
    }


def rules_json(rules: Mapping) -> str:
    return json.dumps(rules_document(rules), indent=2)
