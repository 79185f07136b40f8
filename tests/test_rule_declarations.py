"""Rules are declared like ruff's: keyword arguments, the function named after the rule, an example that fills
the templates, references; a declaration that is wrong fails when it registers, with a sentence that says what
to change. Verdicts and reasons are enums that carry their rank."""

from __future__ import annotations

import json
import re

import pytest

import pcapmtu
from pcapmtu.diagnose import detectors
from pcapmtu.diagnose.detectors import RULES
from pcapmtu.results import Reason, Severity, Verdict


def _declare(func_name: str = "made_up_rule", **changes):
    """Register a made-up rule (removed again), with `changes` to a declaration that is right."""
    declaration = dict(code="Z997", name="made-up-rule", severity=Severity.INFO, message="{service}: {count} things",
                       fix="Clamp the MSS {fix_mss}.", why="w", example={"service": "a (198.18.0.1:443)", "count": 3,
                       "fix_mss": "to 1410"}, references=("RFC 2923",))  # fmt: skip
    declaration.update(changes)

    def func(ctx):
        return []

    func.__name__ = func_name
    try:
        detectors.rule(**declaration)(func)
        return RULES["Z997"]
    finally:
        RULES.pop("Z997", None)


def test_a_right_declaration_registers():
    r = _declare()
    assert r.code == "Z997" and r.func.__name__ == "made_up_rule" and r.references == ("RFC 2923",)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"message": "{servce}: {count} things"},
            "placeholders without a description in PLACEHOLDERS: ['servce']",
        ),
        ({"example": {"service": "a", "count": 3}}, "the example must give exactly the placeholders"),
        ({"example": {"service": "a", "count": 3, "fix_mss": "x", "size": 1}}, "must give exactly"),
        ({"message": "{service:.1f}: {count} things"}, "the example does not fill the templates: ValueError"),
        ({"references": ("rfc2923",)}, "references are 'RFC N' or a https:// address"),
        ({"references": ("http://example.com/x",)}, "references are 'RFC N' or a https:// address"),
        ({"implies": Verdict.NOT_MTU}, "a reason (a Reason) is given exactly when the rule implies not_mtu"),
        ({"reason": Reason.LOSSY_LINK}, "a reason (a Reason) is given exactly when the rule implies not_mtu"),
        ({"implies": Verdict.HEALTHY}, "a finding never implies healthy"),
        ({"implies": "mtu_blackhole"}, "implies is a Verdict"),
        ({"code": "B1"}, "a code is a capital letter and three digits"),
        ({"code": "B001"}, "registered twice"),
        ({"name": "Made_Up"}, "a name is lowercase words joined by '-'"),
    ],
)
def test_a_wrong_declaration_fails_when_it_registers(changes, says):
    with pytest.raises(ValueError, match=r"^rule \S+: .*" + re.escape(says)):
        _declare(**changes)
    assert "Z997" not in RULES


def test_the_function_is_named_after_the_rule():
    with pytest.raises(ValueError, match=r"the function is named after the rule: def made_up_rule\(ctx\)"):
        _declare(func_name="download")


def test_only_keywords():
    with pytest.raises(TypeError):
        detectors.rule("Z997", "made-up-rule", "info", "m", "f", "w", {})  # type: ignore[misc]


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_rule_declaration_is_complete(code):
    r = RULES[code]
    assert detectors.check(r) == ["registered twice (code or name)"]  # it is registered: only that
    assert r.func.__name__ == r.name.replace("-", "_")
    assert r.message.format(**r.example) and r.example, code
    if r.code.startswith(("B", "M")):
        assert any(ref.startswith("RFC ") for ref in r.references), f"{code}: an MTU rule cites its RFC"


def test_the_black_hole_rules_cite_rfc_2923_and_the_pmtud_rfcs():
    cited = {ref for code in ("B001", "B002", "B005") for ref in RULES[code].references}
    assert {"RFC 2923", "RFC 1191", "RFC 8201"} <= cited
    assert "RFC 4821" in RULES["B003"].references


def test_docs_show_each_example_and_link_each_reference():
    doc = detectors.markdown()
    for r in RULES.values():
        assert f"- Example: {r.message.format(**r.example)}" in doc
        for ref in r.references:
            assert detectors.reference_link(ref) in doc
    assert "[RFC 2923](https://www.rfc-editor.org/rfc/rfc2923)" in doc


def test_verdicts_rank_strongest_first_and_are_their_strings():
    order = list(Verdict)
    assert [v.rank for v in order] == sorted((v.rank for v in order), reverse=True)
    assert Verdict.ranks()["mtu_blackhole"] == Verdict.MTU_BLACKHOLE.rank
    assert {v for v in Verdict if v.is_mtu} == {Verdict.MTU_BLACKHOLE, Verdict.MTU_BLACKHOLE_RECOVERED}
    assert [r.rank for r in Reason] == sorted((r.rank for r in Reason), reverse=True)
    assert Reason.FILTERED.rank > Reason.RESET.rank and Reason.LOSSY_LINK.words.startswith(
        "packets of every size"
    )
    assert (
        json.dumps({"v": Verdict.NOT_MTU, "r": Reason.SERVER_SLOW}) == '{"v": "not_mtu", "r": "server_slow"}'
    )


def test_an_analysis_speaks_enums_and_its_tables_hold_plain_strings(tmp_path):
    from support.environment import SAMPLES

    scenario = SAMPLES / "lossy_link"
    a = pcapmtu.analyze(host=scenario / "host.pcap", container=scenario / "container.pcap")
    assert a.verdict is Verdict.NOT_MTU and a.diagnosis.reason is Reason.LOSSY_LINK
    assert a.verdict == "not_mtu"  # a StrEnum: what callers compared with before still holds
    assert {type(x) for x in a.verdicts["verdict"]} == {str} and {type(x) for x in a.verdicts["reason"]} == {
        str
    }
    assert a.to_json()["verdict"] == "not_mtu" and type(a.to_json()["verdict"]) is str
