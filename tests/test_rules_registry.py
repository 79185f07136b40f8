"""The rule registry: well-formed unique codes, placeholders that read as words, a template its values
cannot fill, a hint for every code, docs/detectors.md generated from it, and a positive and a negative test
for every code in tests/test_rules_*.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pcapmtu
from pcapmtu.diagnose import detectors
from pcapmtu.diagnose.detectors import RULES


# ------------------------------------------------------------------------------------------- registry
def test_registry_codes_are_unique_and_well_formed():
    assert len(RULES) >= 23
    for code, rule in RULES.items():
        assert re.fullmatch(r"[A-Z]\d{3}", code), code
        assert rule.code == code
        assert rule.message.strip() and rule.why.strip(), code
        assert rule.severity in ("info", "warning", "error"), code
        assert rule.func is not None, code
        if rule.implies:
            assert rule.implies in pcapmtu.results.VERDICTS and rule.implies != "healthy", code
            assert bool(rule.reason) == (rule.implies == "not_mtu"), code
    assert len({r.name for r in RULES.values()}) == len(RULES)
    with pytest.raises(ValueError, match="registered twice"):
        detectors.rule("B001", "again", "info", "m", "h", "w")(lambda ctx: [])
    assert RULES["B001"].name == "pmtud-blackhole"


def test_registry_every_placeholder_reads_as_words():
    """`pcapmtu explain` and docs/detectors.md show templates as sentences: no placeholder is left undescribed."""
    import string

    for rule in [*RULES.values(), detectors.CRASH]:
        for template in (rule.message, rule.hint):
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            assert names <= set(detectors.PLACEHOLDERS), (rule.code, names - set(detectors.PLACEHOLDERS))
            shown = detectors.readable(template)
            assert "{" not in shown and "}" not in shown, (rule.code, shown)


def test_registry_a_message_its_values_cannot_fill_is_a_finding_not_a_crash(blackhole):
    r, _ = blackhole
    detectors.rule("Z998", "broken-template", "info", "{missing} thing", "h", "w")(
        lambda ctx: [detectors.Hit({"other": 1})]
    )
    try:
        found = detectors.run(r.context)
    finally:
        del detectors.RULES["Z998"]
    crash = [f for f in found if f.code == "E900" and "Z998" in f.message]
    assert crash and "cannot be filled" in crash[0].message, [f.message for f in found if f.code == "E900"]


def test_registry_every_code_has_a_hint():
    missing = sorted(code for code, rule in RULES.items() if not rule.hint.strip())
    assert missing == [], missing


def test_docs_detectors_md_is_generated_from_the_registry():
    docs = Path(__file__).resolve().parents[1] / "docs" / "detectors.md"
    assert docs.read_text() == detectors.markdown(), (
        "run: python -m pcapmtu.diagnose.detectors > docs/detectors.md"
    )


def test_every_code_has_positive_and_negative_tests():
    names = {
        node.name
        for path in sorted(Path(__file__).parent.glob("test_rules_*.py"))
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }
    missing = [
        f"{code}_{kind}"
        for code in sorted(RULES)
        for kind in ("positive", "negative")
        if not any(n.startswith(f"test_{code}_{kind}") for n in names)
    ]
    assert missing == [], missing
