"""The rule registry: well-formed unique codes, placeholders that read as words, a template its values
cannot fill, a hint for every code, docs/detectors.md generated from it, and a positive and a negative test
for every code in tests/test_rules_*.py.

How tests/test_rules_*.py are written: one behaviour per test, on small captures built from literal
packets and analysed with `analyze()`: a positive test for each code (the pattern it exists to find, with its
numbers) and a negative one (the closest look-alike, on which it must stay silent), named
`test_<code>_positive_*` and `test_<code>_negative_*` (this module holds every code to that). Connections are
written with the scene builders of tests/support/scenes.py; the analysed scenes several rule modules read are
session fixtures (tests/support/scene_fixtures.py), the others fixtures of their module. Some captures hold
several unrelated connections; those tests assert per connection.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pcapmtu.diagnose import detectors
from pcapmtu.diagnose.detectors import RULES
from pcapmtu.results import Severity, Verdict


# ------------------------------------------------------------------------------------------- registry
def test_registry_codes_are_unique_and_well_formed():
    assert len(RULES) >= 23
    for code, rule in RULES.items():
        assert re.fullmatch(r"[A-Z]\d{3}", code), code
        assert rule.code == code
        assert rule.message.strip() and rule.why.strip(), code
        assert rule.severity in tuple(Severity), code
        assert rule.func is not None and rule.func.__name__ == rule.name.replace("-", "_"), code
        if rule.implies is not None:
            assert rule.implies in tuple(Verdict) and rule.implies != Verdict.HEALTHY, code
            assert (rule.reason is not None) == (rule.implies == Verdict.NOT_MTU), code
    assert len({r.name for r in RULES.values()}) == len(RULES)
    assert RULES["B001"].name == "pmtud-blackhole"


def test_registry_every_placeholder_reads_as_words():
    """`pcapmtu explain` and docs/detectors.md show templates as sentences: no placeholder is left undescribed."""
    import string

    for rule in [*RULES.values(), detectors.CRASH]:
        for template in (rule.message, rule.fix):
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            assert names <= set(detectors.PLACEHOLDERS), (rule.code, names - set(detectors.PLACEHOLDERS))
            shown = detectors.readable(template)
            assert "{" not in shown and "}" not in shown, (rule.code, shown)


def test_registry_a_message_its_values_cannot_fill_is_a_finding_not_a_crash(blackhole):
    r, _ = blackhole

    def broken_template(ctx):
        return [detectors.Hit({"other": 1})]

    detectors.rule(
        code="Z998",
        name="broken-template",
        severity=Severity.INFO,
        message="{count} thing",
        fix="h",
        why="w",
        example={"count": 1},
    )(broken_template)
    try:
        found = detectors.run(r.context)
    finally:
        del detectors.RULES["Z998"]
    crash = [f for f in found if f.code == "E900" and "Z998" in f.message]
    assert crash and "cannot be filled" in crash[0].message, [f.message for f in found if f.code == "E900"]


def test_registry_every_code_has_a_hint():
    missing = sorted(code for code, rule in RULES.items() if not rule.fix.strip())
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
