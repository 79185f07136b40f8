"""The report (report.html, report.md, report.json, plots/): hostile capture text stays inert, the writing
rules hold, output is deterministic, report.json matches docs/report-format.md, and a real browser renders it.

The browser is headless Chromium driven over the Chrome DevTools Protocol with a hand-rolled WebSocket
client (stdlib only). The report must need nothing from the network, and the test checks that it fetches
nothing.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import warnings
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import pcapmtu
from pcapmtu.cli import app
from pcapmtu.diagnose.detectors import RULES
from pcapmtu.errors import UsageError
from pcapmtu.render.jsondoc import FLOW_FIELDS, VERDICT_FLOW_FIELDS, analyze_document
from pcapmtu.results import Reason, Severity, Verdict
from support import packets as B
from support.environment import ROOT, SAMPLES, require_tool
from support.pcapwriter import Record, write_pcap
from support.report_schema import KNOWN_KEYWORDS, SCHEMA, validate, validate_or_fail

runner = CliRunner()
DEMO = SAMPLES / "blackhole_tls12"
DOC = ROOT / "docs" / "report-format.md"
SCENARIOS = (
    sorted(p.name for p in SAMPLES.iterdir() if (p / "container.pcap").is_file()) if SAMPLES.is_dir() else []
)
REPORT_FILES = ("report.html", "report.md", "report.json")
GENERATED = re.compile(r"Generated at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by pcapmtu \S+\.")
# Raw control characters a file may not contain (a newline is the only one a report writes itself).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


# ============================================================================ hostile capture strings
CLIENT = "172.17.0.2"
# Each name is a DNS answer whose address is a connection's server (so it becomes flows.name), except SNI,
# which reaches flows.name through the TLS ClientHello. DNS labels are at most 63 bytes.
HOSTILE_DNS = {
    "198.18.0.10": "<script>alert(1)</script>.a|b|c.example",
    "198.18.0.11": "<img src=x onerror=alert(1)>.[click](http://evil.example)",
    "198.18.0.12": "`tick`\x1b[31mred\x00nul\r\nCRLF.&#27;[1m&lt;b&gt;--><x>.example",
    "198.18.0.14": "cost$5$\\frac{1}{2}.\u202egnp.exe.\x9b31m.example",
}
HOSTILE_SNI = "<script>alert(2)</script>|`x`\x1b[2J[c](http://evil.example)"
HOSTILE_HTTP = b"GET /<script>alert(3)</script>|a|b HTTP/1.1\r\nHost: \x1b[31mevil\r\n\r\n"


def _client_hello(sni: str) -> bytes:
    """A TLS 1.2 ClientHello record with one server_name extension (RFC 6066)."""
    name = sni.encode("latin-1")
    names = struct.pack(">HBH", len(name) + 3, 0, len(name)) + name
    ext = struct.pack(">HH", 0, len(names)) + names
    body = struct.pack(">H", 0x0303) + bytes(32) + b"\x00" + struct.pack(">HH", 2, 0x002F) + b"\x01\x00"
    body += struct.pack(">H", len(ext)) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def _request_then_reset(server: str, port: int, cport: int, t0: float, payload: bytes) -> list:
    pkts = B.handshake(CLIENT, server, cport, port, t0=t0)
    pkts += [
        (
            t0 + 0.02,
            B.tcp(CLIENT, server, cport, port, seq=1001, ack=5001, flags=B.ACK | B.PSH, payload=payload),
        ),
        (
            t0 + 1.5,
            B.tcp(server, CLIENT, port, cport, seq=5001, ack=1001 + len(payload), flags=B.RST | B.ACK),
        ),
    ]
    return pkts


def _hostile_capture(path: Path) -> None:
    pkts = [
        (999.0 + i * 0.01, B.udp("198.18.0.53", CLIENT, 53, 5353 + i, B.dns_answer(name, ip)))
        for i, (ip, name) in enumerate(HOSTILE_DNS.items())
    ]
    syn = B.tcp_options(mss=1460)
    # refused, no answer, HTTP request then reset, TLS hello then reset, a plain exchange
    pkts += [
        (1001.0, B.tcp(CLIENT, "198.18.0.10", 40001, 443, seq=100, flags=B.SYN, opts=syn)),
        (1001.001, B.tcp("198.18.0.10", CLIENT, 443, 40001, seq=0, ack=101, flags=B.RST | B.ACK)),
    ]
    pkts += [
        (1002.0 + k, B.tcp(CLIENT, "198.18.0.11", 40002, 443, seq=200, flags=B.SYN, opts=syn))
        for k in range(3)
    ]
    pkts += _request_then_reset("198.18.0.12", 80, 40003, 1006.0, HOSTILE_HTTP)
    pkts += _request_then_reset("198.18.0.13", 443, 40004, 1008.0, _client_hello(HOSTILE_SNI))
    pkts += _request_then_reset("198.18.0.14", 80, 40005, 1010.0, b"GET / HTTP/1.1\r\n\r\n")
    write_pcap(path, [Record(t, B.ether(p)) for t, p in sorted(pkts, key=lambda x: x[0])])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    capture = base / "evil.pcap"
    _hostile_capture(capture)
    analysis = pcapmtu.analyze(container=capture)
    out = base / "report"
    written = analysis.save(out, svg=True)
    return SimpleNamespace(analysis=analysis, out=out, written=written, capture=capture)


def test_hostile_strings_reach_the_analysis(hostile):
    """The capture really carries the hostile text into the names (else the tests below prove nothing)."""
    names = set(hostile.analysis.flows["name"])
    assert set(HOSTILE_DNS.values()) | {HOSTILE_SNI} <= names
    doc = json.loads((hostile.out / "report.json").read_text())
    assert any(HOSTILE_SNI in f["message"] for f in doc["findings"])  # findings quote the service name


class _Html(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


HTML_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "span", "b", "pre", "code",
             "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "figure", "img", "figcaption", "details", "summary", "section"}  # fmt: skip
HTML_ATTRS = {"lang", "charset", "name", "content", "class", "id", "alt", "src"}


def test_html_keeps_hostile_text_inert(hostile):
    html = (hostile.out / "report.html").read_text()
    low = html.lower()
    assert "<script" not in low and "<img src=x" not in low and "<x>" not in low
    # "onerror=" may only appear as escaped text of the hostile name
    for m in re.finditer("onerror=", low):
        assert low[max(0, m.start() - 20) : m.start()].endswith("&lt;img src=x "), html[
            m.start() - 40 : m.end()
        ]
    page = _Html()
    page.feed(html)
    tags = {tag for tag, _ in page.tags}
    assert tags <= HTML_TAGS, tags - HTML_TAGS
    for tag, attrs in page.tags:
        assert set(attrs) <= HTML_ATTRS, (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
    # shown escaped, and exactly as the packet said once a browser decodes the entities
    for escaped in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;",
                    "&amp;#27;[1m&amp;lt;b&amp;gt;--&gt;&lt;x&gt;", "[click](http://evil.example)"):  # fmt: skip
        assert escaped in html, escaped
    text = "".join(page.text)
    assert "<script>alert(2)</script>|`x`\\x1b[2J[c](http://evil.example)" in text
    assert "`tick`\\x1b[31mred\\x00nul\\x0d\\x0aCRLF" in text
    assert "cost$5$\\frac{1}{2}.\\u202egnp.exe.\\x9b31m" in text
    assert not RAW_CONTROL.search(html), RAW_CONTROL.search(html)


# ---------------------------------------------------------------------------------------- report.md
def _md_render(md: str) -> tuple[list, str]:
    """report.md through a CommonMark renderer with GFM tables (markdown-it-py, which rich depends on):
    the flat token stream (inline children included) and the HTML."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").enable("table")
    tokens = parser.parse(md)
    flat = [t for tok in tokens for t in (tok, *(tok.children or []))]
    return flat, parser.renderer.render(tokens, parser.options, {})


def _md_codes(flat: list) -> list[str]:
    """What the rendered report shows as code: code spans and fenced blocks, exactly."""
    return [t.content for t in flat if t.type in ("code_inline", "fence")]


def _md_table_widths(flat: list) -> list[set[int]]:
    """For every table, the set of cell counts of its rows (header row included)."""
    widths, cells = [], 0
    for t in flat:
        if t.type == "table_open":
            widths.append(set())
        elif t.type == "tr_open":
            cells = 0
        elif t.type in ("th_open", "td_open"):
            cells += 1
        elif t.type == "tr_close":
            widths[-1].add(cells)
    return widths


MD_BLOCKS = {"heading", "paragraph", "bullet_list", "list_item", "table", "thead", "tbody", "tr", "th", "td",
             "fence", "inline", "text", "code_inline", "strong", "image", "softbreak"}  # fmt: skip


def test_markdown_keeps_hostile_text_inert(hostile):
    """Rendered, the hostile names make no link, image, HTML, heading or table cell: each is one code span
    showing exactly what the capture said (control characters made visible)."""
    md = (hostile.out / "report.md").read_text()
    assert not RAW_CONTROL.search(md), RAW_CONTROL.search(md)
    flat, html = _md_render(md)
    kinds = {t.type.removesuffix("_open").removesuffix("_close") for t in flat}
    assert kinds <= MD_BLOCKS, kinds - MD_BLOCKS  # no html_inline, html_block, link, blockquote, hr, em, s
    images = [t for t in flat if t.type == "image"]
    assert images and all(re.fullmatch(r"plots/[a-z0-9-]+\.png", t.attrs["src"]) for t in images)
    headings = [t for t in flat if t.type == "heading_open"]
    assert len(headings) == len(re.findall(r"^#{1,3} ", md, re.M))  # only pcapmtu's own
    page = _Html()
    page.feed(html)
    assert {tag for tag, _ in page.tags} <= {"h1", "h2", "h3", "p", "strong", "code", "pre", "ul", "li", "table",
                                             "thead", "tbody", "tr", "th", "td", "img"}  # fmt: skip
    widths = _md_table_widths(flat)
    assert len(widths) == 2 and all(len(w) == 1 for w in widths), widths  # no pipe added a cell
    codes = _md_codes(flat)
    visible = [
        "<script>alert(1)</script>.a|b|c.example",
        "<img src=x onerror=alert(1)>.[click](http://evil.example)",
        "`tick`\\x1b[31mred\\x00nul\\x0d\\x0aCRLF.&#27;[1m&lt;b&gt;--><x>.example",
        "<script>alert(2)</script>|`x`\\x1b[2J[c](http://evil.example)",
        "cost$5$\\frac{1}{2}.\\u202egnp.exe.\\x9b31m.example",
    ]
    for name in visible:
        assert name in codes, name
    # outside code, nothing of them is left: no `<`, no URL for an autolinker, no math, no backslash
    prose = "".join(t.content for t in flat if t.type == "text")
    for needle in ("<", "://", "$", "\\", "`", "|"):
        assert needle not in prose, needle


def test_markdown_filters_and_commands_are_verbatim_code(demo):
    """Every Wireshark filter and fix command of report.json is, byte for byte, a code span or the
    command line of its own ```sh block in report.md, and the same line the terminal printed."""
    doc = json.loads((demo.b / "report.json").read_text())
    flat, _html = _md_render((demo.b / "report.md").read_text())
    codes = _md_codes(flat)
    filters = {f["wireshark_filter"] for f in doc["findings"] if f["wireshark_filter"]}
    commands = [c["command"] for c in doc["fix"]["commands"]]
    assert filters and commands
    assert filters <= set(codes)
    sh = [t.content for t in flat if t.type == "fence" and t.info == "sh"]
    assert [block.splitlines()[-1] for block in sh] == commands
    assert all(len(block.splitlines()) == 2 and block.startswith("# ") for block in sh), sh
    # the explanation's filter is a code span too
    explanation = next(t for t in flat if t.type == "inline" and "Evidence:" in t.content)
    assert any(c.type == "code_inline" and c.content in filters for c in explanation.children)
    terminal = demo.second.stdout.splitlines()
    printed = {
        line.split("wireshark: ", 1)[1] for line in terminal if line.lstrip().startswith("wireshark: ")
    }
    assert printed == filters
    assert all(f"  {c}" in terminal for c in commands)


def test_markdown_own_text_is_not_escaped(demo):
    """The demo incident's report.md reads as written: no backslash anywhere (no capture string in it
    needs one), addresses and names as they are, the plots' whereabouts said in words."""
    md = (demo.b / "report.md").read_text()
    assert "\\" not in md
    for text in ("jenkins-updates.example (198.18.0.11:443): PMTUD black hole - the server's 1500-byte packets",
                 "| container | 1 | jenkins-updates.example (198.18.0.11:443) | 172.17.0.2:57056 | 198.18.0.11:443 |",
                 "bracket [1450, 1500), decided by: ICMP fragmentation needed (next-hop MTU 1450)",
                 "net.ipv4.tcp_mtu_probing", "kind=host_syn_mss", "| host | host.pcap | pcap |"):  # fmt: skip
        assert text in md, text
    plots = md.split("## Plots", 1)[1]
    assert "plots/ folder beside this file" in plots and "report.html" in plots


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_markdown_of_every_scenario_needs_no_escape(scenario):
    """pcapmtu's own sentences never need a Markdown escape, in any lab scenario's report."""
    from pcapmtu.render.report import render_markdown

    analysis = _scenario(scenario)
    md = render_markdown(analysis, analyze_document(analysis), [], "now")
    assert "\\" not in md, [line for line in md.splitlines() if "\\" in line]


MD_HOSTILE = [
    "# heading", "###### h6", "- item", "+ item", "* item", "1. item", "2) item", "> quote", "---", "===",
    "    indented", "```fence", "~~~fence", "[ ] task", "[x]: /evil \"definition\"", "[^1]: footnote",
    "[link](http://evil.example)", "[ref][x]", "![img](x.png)", "<b>bold</b>", "<http://evil.example>",
    "<a@b.example>", "&lt;entity&#62;", "*em* _em_ **strong** __strong__", "~~strike~~ ~s~", "`code` ``x``",
    "a | b | c", "|", "trailing backslash \\", "\\*escaped\\*", "www.evil.example", "http://evil.example",
    "mail me@evil.example", "$x^2$ and $$y$$", "a_b_c", "_a_", "x]", "( paren ) [ bracket",
]  # fmt: skip


@pytest.mark.parametrize("hostile_text", MD_HOSTILE)
def test_markdown_helpers_show_any_text_as_text(hostile_text):
    """Whatever a capture says, md_capture (a capture string) and md_text / markdown() (text around one),
    at the start of a paragraph or list item, mid-sentence or in a table cell, render as exactly that
    text: no link, image, HTML, heading, list, quote, rule, emphasis or table cell of its own."""
    from pcapmtu.textsafe import markdown, md_block, md_capture, md_text

    ways = {
        "capture": lambda t, table=False: md_capture(t, table=table),
        "text": lambda t, table=False: md_text(t, capture=["evil.example"], table=table),
        "markdown": lambda t, table=False: markdown(t),
    }
    for way, write in ways.items():
        doc = "\n".join([
            md_block(write(hostile_text)), "",
            f"- {md_block(write(hostile_text))}", "",
            f"before {write(hostile_text)} after", "",
            "| a | b |", "|---|---|", f"| {write(hostile_text, table=True)} | z |",
        ])  # fmt: skip
        flat, _html = _md_render(doc)
        kinds = {t.type.removesuffix("_open").removesuffix("_close") for t in flat}
        assert kinds <= {"paragraph", "bullet_list", "list_item", "inline", "text", "code_inline", "table",
                         "thead", "tbody", "tr", "th", "td"}, (way, doc, kinds)  # fmt: skip
        shown = [
            "".join(c.content for c in t.children) for t in flat if t.type == "inline"
        ]  # paragraph, list item, sentence, then the table's cells
        # md_text shows what pcapmtu's own words quote between backticks as code: the backticks go
        same = (lambda x: x.replace("`", "")) if way == "text" else (lambda x: x)
        assert same(shown[0]).strip() == same(hostile_text).strip() == same(shown[1]).strip(), (
            way,
            doc,
            shown,
        )
        assert same(shown[2]) == same(f"before {hostile_text} after"), (way, doc, shown)
        assert [same(x).strip() for x in shown[3:]] == ["a", "b", same(hostile_text).strip(), "z"], (way, doc)


def test_notebook_markdown_repr_starts_no_block_from_capture_text():
    """Analysis._repr_markdown_ shares markdown(): an explanation that opens with a hostile name makes no
    link reference definition, heading or HTML in a notebook either."""
    from pcapmtu.diagnose.analysis import Analysis

    for start in ("[x]: http://evil.example", "# heading", "1. item", "<b>bold</b>", "> quote"):
        d = SimpleNamespace(verdict="not_mtu", reason="filtered", confidence=0.5, fix=None,
                            explanation=f"{start} (198.18.0.11:443): SYNs are never answered [x]")  # fmt: skip
        flat, _html = _md_render(Analysis._repr_markdown_(SimpleNamespace(diagnosis=d)))
        kinds = {t.type.removesuffix("_open").removesuffix("_close") for t in flat}
        assert kinds <= {"paragraph", "inline", "text", "strong", "code_inline"}, (start, kinds)
        shown = "".join(c.content for t in flat if t.type == "inline" for c in t.children)
        assert f"{start} (198.18.0.11:443)" in shown, shown


def test_md_text_finds_capture_strings_whole():
    """Capture strings are found as whole words, the longest first, one character long too; the rest is
    pcapmtu's, whose `quoted` words are code spans."""
    from pcapmtu.textsafe import Quotes, md_text

    names = Quotes(["a_", "_", "<", "x.example", "x.example_b", "tcp"])
    assert md_text(
        "x.example_b (1.2.3.4:443) and x.example: see `tcp -i any`, tcp_x", 300, capture=names
    ) == ("`x.example_b` (1.2.3.4:443) and x.example: see `tcp -i any`, tcp_x")
    assert md_text("< a_ capture_ _", 300, capture=names) == "`<` `a_` capture\\_ `_`"
    assert md_text("[x](y)", 300, capture=["(y)"]) == "[x]`(y)`"  # no link from two pieces


def test_markdown_code_fences_outgrow_the_backticks_inside():
    from pcapmtu.textsafe import md_code, md_fence

    assert (
        md_code("a``b") == "```a``b```"
        and md_code("`x") == "`` `x ``"
        and md_code("a|b", table=True) == "`a\\|b`"
    )
    assert md_fence("echo ````", "sh") == ["`````sh", "echo ````", "`````"]
    flat, _ = _md_render("\n".join(md_fence("x\n```\ny ``", "sh")) + "\n\nafter " + md_code(" `` ") + "\n")
    assert [t.content for t in flat if t.type == "fence"] == ["x\n```\ny ``\n"]
    assert [t.content for t in flat if t.type == "code_inline"] == [" `` "]


def test_json_keeps_capture_text_verbatim(hostile):
    """report.json is data: capture strings exactly as captured, JSON-escaped, no raw control bytes."""
    raw = (hostile.out / "report.json").read_text()
    assert not RAW_CONTROL.search(raw)
    doc = json.loads(raw)
    names = {f["name"] for f in doc["flows"]}
    assert set(HOSTILE_DNS.values()) | {HOSTILE_SNI} <= names
    validate_or_fail(doc)


def test_plots_keep_hostile_text_inert(hostile):
    for svg in (hostile.out / "plots").glob("*.svg"):
        text = svg.read_text()
        assert not RAW_CONTROL.search(text), svg.name
        root = ET.fromstring(text)  # well-formed: a name with "-->" did not break out of a comment
        for el in root.iter():
            tag = el.tag.rsplit("}", 1)[-1]
            assert tag not in ("script", "foreignObject", "iframe"), (svg.name, tag)
            for attr, value in el.attrib.items():
                attr = attr.rsplit("}", 1)[-1]
                assert not attr.lower().startswith("on"), (svg.name, attr)
                if attr == "href":
                    assert value.startswith(("#", "data:image/png;base64,")), (svg.name, value[:60])


def test_save_reports_the_paths_it_wrote(hostile):
    out = hostile.out
    written = [Path(p) for p in hostile.written]
    assert len(written) == len(set(written))
    on_disk = {p for p in out.rglob("*") if p.is_file()}
    assert set(written) == on_disk, set(written) ^ on_disk
    assert {out / name for name in REPORT_FILES} <= set(written)
    pngs = {p.stem for p in written if p.suffix == ".png"}
    assert {"timeline", "sizes", "mss"} <= pngs and any(s.startswith("tsg-container-") for s in pngs)
    assert {"timeline", "mss"} <= {p.stem for p in written if p.suffix == ".svg"} <= pngs
    assert all(p.parent == out / "plots" for p in written if p.suffix in (".png", ".svg"))
    assert not list(out.rglob("*.tmp"))


def test_vector_plots_only_when_asked(tmp_path):
    """SVG copies cost a second rendering of their figures: `--svg` / save(svg=True) only."""
    analysis = pcapmtu.analyze(DEMO / "host.pcap", DEMO / "container.pcap")
    written = analysis.save(tmp_path / "report")
    assert {p.suffix for p in written if p.parent.name == "plots"} == {".png"}
    assert not list((tmp_path / "report").rglob("*.svg"))
    result = runner.invoke(app, ["analyze", str(DEMO / "host.pcap"), str(DEMO / "container.pcap"), "--svg"])
    assert result.exit_code == 2 and "--svg" in result.stderr and "--out" in result.stderr, result.output


def test_save_refuses_a_non_empty_directory(hostile, tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine\n")
    with pytest.raises(UsageError, match="force"):
        hostile.analysis.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"] and keep.read_text() == "mine\n"
    with pytest.raises(UsageError, match="not a directory"):
        hostile.analysis.save(keep, force=True)
    assert keep.read_text() == "mine\n"


def test_report_survives_a_file_name_that_is_not_utf8(hostile, tmp_path):
    """os.fsdecode turns the byte 0xff into a lone surrogate, which cannot be written as UTF-8."""
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/evil\xff\x1b.pcap"))
    try:
        shutil.copyfile(hostile.capture, odd)
    except (OSError, UnicodeError):
        pytest.skip("the file system does not accept non-UTF-8 names")
    from pcapmtu.render.report import render_html, render_markdown

    analysis = pcapmtu.analyze(container=odd)
    doc = analyze_document(analysis)
    md = render_markdown(analysis, doc, [], "now").encode()
    html = render_html(analysis, doc, [], {}, "now").encode()
    assert rb"| `evil\xff\x1b.pcap` |" in md and rb"evil\xff\x1b.pcap" in html
    json.dumps(doc, allow_nan=False).encode()


def test_unknown_path_bounds_read_as_question_marks(hostile):
    md = (hostile.out / "report.md").read_text()
    html = (hostile.out / "report.html").read_text()
    assert "None" not in md and not re.search(r"value , |\[, |, \)", html)


def test_a_big_capture_lists_the_connections_with_findings_and_counts_the_rest(monkeypatch):
    """Over the limit, the table lists the connections with a finding (worst first) and a summary counts the
    rest by capture, service and verdict, saying how many it left out; report.json keeps every one."""
    from pcapmtu.render import report

    analysis = pcapmtu.analyze(DEMO / "host.pcap", DEMO / "container.pcap")  # 3 connections, 2 with codes
    doc = analyze_document(analysis)
    monkeypatch.setattr(report, "MAX_CONNECTION_ROWS", 1)
    monkeypatch.setattr(report, "MAX_SUMMARY_ROWS", 1)
    listed = report._connection_rows(analysis)
    assert [(r["capture"], r["#"], r["verdict"]) for r in listed] == [("container", 1, "mtu_blackhole")]
    summary = report._summary_rows(analysis)
    assert summary == [
        {
            "capture": "container",
            "service": "api.example (198.18.0.10:80)",
            "verdict": "healthy",
            "connections": 1,
            "codes": "M004",
        }
    ]
    words = (
        "2 of 3 connections are not listed one by one (1 with a finding, 1 healthy without one); they are "
        "counted by service and verdict below (the 1 biggest of 2 groups, worst verdict first)."
    )
    md = report.render_markdown(analysis, doc, [], "now")
    section = md.split("## Connections", 1)[1].split("## Findings", 1)[0]
    assert words in section and "| container | api.example (198.18.0.10:80) | healthy | 1 | M004 |" in section
    html = report.render_html(analysis, doc, [], {}, "now")
    assert words in html and "<td>api.example (198.18.0.10:80)</td>" in html
    assert len(doc["flows"]) == 3


def test_a_capture_with_many_findings_lists_the_loudest_and_counts_the_rest(monkeypatch):
    from pcapmtu.render import report

    analysis = pcapmtu.analyze(DEMO / "host.pcap", DEMO / "container.pcap")
    every = analysis.findings_list
    errors = [f for f in every if f.severity == "error"]
    assert 0 < len(errors) < len(every) - 1
    monkeypatch.setattr(report, "MAX_FINDING_ROWS", len(errors))
    listed, words = report._listed_findings(analysis)
    assert listed == errors  # the loudest, in the report's order
    left = sorted(f.code for f in every if f.severity != "error")
    counts = ", ".join(f"{left.count(c)} x {c}" for c in sorted(set(left)))
    assert words == (
        f"{len(left)} of {len(every)} findings are not listed here, the quietest ({counts}); "
        "report.json has every one."
    )
    doc = analyze_document(analysis)
    md = (
        report.render_markdown(analysis, doc, [], "now").split("## Findings", 1)[1].split("## Path MTU", 1)[0]
    )
    assert md.count("- **") == len(errors) and words in md
    assert words in report.render_html(analysis, doc, [], {}, "now")


def test_the_streamed_document_is_the_one_dumps_gives():
    """report.json and analyze --json are written in pieces (jsondoc.dump); the characters are those of
    dumps(), compact or indented, with keys that are not strings, text that needs escapes, and long lists."""
    from pcapmtu.render.jsondoc import BATCH, dump, dumps

    flow = {"name": 'e\u0301vil "x"\n\x1b', "frames": [1, 2, 3], "ratio": 0.1, "none": None, "ok": True}
    big = {
        "schema_version": 2,
        "path": {4: {"value": 1450}, "6": {}},
        "flows": [dict(flow, conn=i) for i in range(2001)],
        "captures": [
            {"role": "container", "flows": [flow] * (BATCH + 3), "empty": [], "nested": {"a": [[]]}}
        ],
        "findings": [],
        "unicode": "\u2603",
    }
    small = {"flows": [flow], "captures": [], "path": {4: None}}
    for doc in (big, small):
        pieces: list[str] = []
        dump(doc, pieces.append)
        assert "".join(pieces) == dumps(doc) + "\n"
    pieces = []
    dump(big, pieces.append)
    assert len(pieces) > 10 and max(map(len, pieces)) < len(dumps(big)) / 3  # in pieces, not one string


def test_report_of_a_capture_without_connections(tmp_path):
    """Nothing to plot is no reason for warnings on stderr (matplotlib's 'No artists with labels')."""
    capture = tmp_path / "dns-only.pcap"
    write_pcap(capture, [(1000.0, B.ether(B.udp(CLIENT, "198.18.0.53", 5353, 53, bytes(12))))])
    analysis = pcapmtu.analyze(container=capture)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = analysis.save(tmp_path / "report")
    assert analysis.verdict == "inconclusive"
    assert {p.name for p in written} >= set(REPORT_FILES)
    validate_or_fail(json.loads((tmp_path / "report" / "report.json").read_text()))


def test_size_wall_mtu_line_counts_ipv6_headers(tmp_path):
    """An IPv6 SYN's MSS 1440 means a 1500-byte interface MTU (60 bytes of headers, not 40)."""
    server, client = "fd00:18::10", "fd00:17::2"
    pkts = B.handshake(client, server, 40000, 443, mss_c=1440, mss_s=1440)
    pkts.append((1000.05, B.tcp(server, client, 443, 40000, seq=5001, ack=1001, payload=bytes(1000))))
    capture = tmp_path / "v6.pcap"
    write_pcap(capture, [Record(t, B.ether(p)) for t, p in pkts])
    fig = pcapmtu.analyze(container=capture).plot_sizes()
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "client MTU 1500 (from SYN MSS)" in labels, labels


# ====================================================================== writing rules and determinism
def _cli_in_subprocess(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from pcapmtu.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo incident written twice: once by a separate process (another hash seed) with --json, once
    in this process into a non-empty directory with --force."""
    base = tmp_path_factory.mktemp("demo")
    host, container = str(DEMO / "host.pcap"), str(DEMO / "container.pcap")
    a, b = base / "a", base / "b"
    first = _cli_in_subprocess(
        "analyze", host, container, "--out", str(a), "--svg", "--json", env={"PYTHONHASHSEED": "7"}
    )
    b.mkdir()
    (b / "notes.txt").write_text("mine\n")
    second = runner.invoke(app, ["analyze", host, container, "--out", str(b), "--svg", "--force"])
    return SimpleNamespace(a=a, b=b, first=first, second=second)


def test_cli_refuses_a_non_empty_out_without_force(tmp_path):
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "report.html").write_text("an older report\n")
    (out / "plots" / "x.png").write_bytes(b"\x89PNG")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    result = runner.invoke(
        app, ["analyze", str(DEMO / "host.pcap"), str(DEMO / "container.pcap"), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcapmtu: ") and "--force" in lines[0], result.stderr
    assert result.stdout == ""
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_cli_force_writes_and_reports_where(demo):
    assert demo.first.returncode == 1, demo.first.stderr
    assert demo.second.exit_code == 1, demo.second.output
    assert f"report: {demo.a / 'report.html'}" in demo.first.stderr  # with --json the line goes to stderr
    assert f"report: {demo.b / 'report.html'}" in demo.second.stdout
    assert (demo.b / "notes.txt").read_text() == "mine\n"  # --force leaves other files alone
    for out in (demo.a, demo.b):
        for name in REPORT_FILES:
            assert (out / name).stat().st_size > 0, out / name
        assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))


def test_report_json_is_the_analyze_json_document(demo):
    stdout = demo.first.stdout
    assert stdout == (demo.a / "report.json").read_text()
    assert json.loads(stdout) == json.loads((demo.b / "report.json").read_text())
    assert json.loads(stdout)["verdict"] == "mtu_blackhole"


def test_two_runs_are_identical_but_for_the_generated_line(demo):
    a, b = demo.a, demo.b
    assert (a / "report.json").read_bytes() == (b / "report.json").read_bytes()
    for name in ("report.md", "report.html"):
        la, lb = (a / name).read_text().split("\n"), (b / name).read_text().split("\n")
        stamped = [i for i, line in enumerate(la) if GENERATED.search(line)]
        assert len(stamped) == 1, (name, stamped)
        assert [i for i, line in enumerate(lb) if GENERATED.search(line)] == stamped
        assert [x for i, x in enumerate(la) if i not in stamped] == [
            x for i, x in enumerate(lb) if i not in stamped
        ]
    plots_a = sorted(p.name for p in (a / "plots").iterdir())
    assert plots_a == sorted(p.name for p in (b / "plots").iterdir())
    assert any(n.endswith(".png") for n in plots_a) and any(n.endswith(".svg") for n in plots_a)
    for name in plots_a:
        assert (a / "plots" / name).read_bytes() == (b / "plots" / name).read_bytes(), name


def test_html_is_self_contained(demo):
    html = (demo.a / "report.html").read_text()
    page = _Html()
    page.feed(html)
    assert {tag for tag, _ in page.tags} <= HTML_TAGS
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == len(list((demo.a / "plots").glob("*.png")))
    for src in images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "url(" not in html and "@import" not in html and "href=" not in html
    assert re.search(r'id="verdict"[^>]*>mtu_blackhole<', html)


# ================================================================================ report.json schema
def test_schema_uses_only_keywords_the_validator_knows():
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        yield from walk(sub)
                elif key in ("items", "additionalProperties") and isinstance(value, dict):
                    yield from walk(value)

    assert set(walk(SCHEMA)) <= KNOWN_KEYWORDS, set(walk(SCHEMA)) - KNOWN_KEYWORDS


def test_schema_validator_catches_mistakes(demo):
    doc = json.loads((demo.a / "report.json").read_text())
    assert validate(doc, SCHEMA) == []
    broken = [
        ("verdict", "mtu_black_hole"),
        ("confidence", "0.9"),
        ("reason", "because"),
        ("path_mtu", True),
        ("surprise", 1),
    ]
    for key, value in broken:
        bad = {**doc, key: value}
        assert validate(bad, SCHEMA), key
    bad = json.loads(json.dumps(doc))
    del bad["flows"][0]["matched"]
    bad["findings"][0]["severity"] = "fatal"
    bad["captures"][0]["format"] = "erf"
    bad["path"]["ipv4"]["signals"][0]["kind"] = "guess"
    errors = validate(bad, SCHEMA)
    for needle in ("missing 'matched'", "'fatal'", "'erf'", "'guess'"):
        assert any(needle in e for e in errors), (needle, errors)


@functools.cache
def _scenario(scenario: str):
    d = SAMPLES / scenario
    host = d / "host.pcap"
    return pcapmtu.analyze(host=host if host.exists() else None, container=d / "container.pcap")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_report_json_matches_documented_schema(scenario):
    analysis = _scenario(scenario)
    doc = json.loads(json.dumps(analyze_document(analysis), allow_nan=False))
    validate_or_fail(doc)


def test_demo_report_json_on_disk_matches_schema(demo):
    validate_or_fail(json.loads((demo.b / "report.json").read_text()))


def test_schema_vocabularies_match_the_package():
    defs, props = SCHEMA["$defs"], SCHEMA["properties"]
    assert sorted(defs["verdict"]["enum"]) == sorted(Verdict)
    assert props["reason"]["enum"][0] is None and sorted(props["reason"]["enum"][1:]) == sorted(Reason)
    assert defs["flow"]["properties"]["reason"]["enum"][0] == ""
    assert sorted(defs["flow"]["properties"]["reason"]["enum"][1:]) == sorted(Reason)
    assert defs["finding"]["properties"]["severity"]["enum"] == list(Severity)
    assert {r.severity for r in RULES.values()} <= set(Severity)
    assert {r.reason for r in RULES.values() if r.reason} <= set(Reason)
    facts = [f for f in FLOW_FIELDS if f not in VERDICT_FLOW_FIELDS]
    assert list(defs["flow"]["properties"]) == [*VERDICT_FLOW_FIELDS, "matched", *facts]
    assert defs["flow"]["required"] == list(defs["flow"]["properties"])


# ------------------------------------------------------------------------ docs/report-format.md
def _doc_sections() -> dict[str, list[str]]:
    """### heading -> the keys in the first column of its table(s)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if line.startswith("### "):
            current = line[4:].replace("`", "").strip()
            sections[current] = []
        elif current and (m := re.match(r"\| `([^`]+)` \|", line)):
            sections[current].append(m.group(1))
    return sections


DOC_SHAPES = {  # section of docs/report-format.md -> the object schema it documents
    "Top-level keys": SCHEMA,
    "tool": SCHEMA["properties"]["tool"],
    "path.ipv4, path.ipv6": SCHEMA["$defs"]["path_estimate"],
    "path.*.signals[]": SCHEMA["$defs"]["signal"],
    "fix": SCHEMA["properties"]["fix"],
    "fix.commands[]": SCHEMA["properties"]["fix"]["properties"]["commands"]["items"],
    "fix.network": SCHEMA["properties"]["fix"]["properties"]["network"],
    "fix.network.overlay": SCHEMA["properties"]["fix"]["properties"]["network"]["properties"]["overlay"],
    "fix.settings[]": SCHEMA["properties"]["fix"]["properties"]["settings"]["items"],
    "fix.snippets[]": SCHEMA["properties"]["fix"]["properties"]["snippets"]["items"],
    "findings[]": SCHEMA["$defs"]["finding"],
    "flows[]": SCHEMA["$defs"]["flow"],
    "captures[]": SCHEMA["$defs"]["capture"],
    "captures[].interfaces[]": SCHEMA["$defs"]["capture"]["properties"]["interfaces"]["items"],
}


def test_every_key_is_documented(demo):
    sections = _doc_sections()
    for title, shape in DOC_SHAPES.items():
        assert title in sections, f"docs/report-format.md has no section ### {title}"
        documented = sections[title]
        assert len(documented) == len(set(documented)), f"{title}: a key is listed twice"
        assert set(documented) == set(shape["properties"]), (
            title,
            set(documented) ^ set(shape["properties"]),
        )
    doc = json.loads((demo.a / "report.json").read_text())
    assert list(doc) == sections["Top-level keys"], "top-level keys: document order differs from the doc"
    assert set(doc["path"]) <= {"ipv4", "ipv6"}
    seen = {
        "tool": [doc["tool"]],
        "path.ipv4, path.ipv6": list(doc["path"].values()),
        "path.*.signals[]": [s for p in doc["path"].values() for s in p["signals"]],
        "fix": [doc["fix"]],
        "fix.commands[]": doc["fix"]["commands"],
        "fix.network": [doc["fix"]["network"]],
        "fix.settings[]": doc["fix"]["settings"],
        "fix.snippets[]": doc["fix"]["snippets"],
        "findings[]": doc["findings"],
        "flows[]": doc["flows"],
        "captures[]": doc["captures"],
        "captures[].interfaces[]": [i for c in doc["captures"] for i in c["interfaces"]],
    }
    for title, objects in seen.items():
        assert objects, title
        for obj in objects:
            assert set(obj) <= set(sections[title]), (title, set(obj) - set(sections[title]))


def test_documented_vocabularies_match_the_schema():
    table = {}
    for line in DOC.read_text().split("### Vocabularies", 1)[1].splitlines():
        if m := re.match(r"\| `([^`]+)` \| (.+) \|$", line):
            table[m.group(1)] = [
                None if v == "null" else "" if v == '""' else v for v in re.findall(r"`([^`]*)`", m.group(2))
            ]
    defs = SCHEMA["$defs"]
    expected = {
        "verdict": defs["verdict"]["enum"],
        "reason": SCHEMA["properties"]["reason"]["enum"],
        "findings[].severity": defs["finding"]["properties"]["severity"]["enum"],
        "flows[].verdict": defs["verdict"]["enum"],
        "flows[].reason": defs["flow"]["properties"]["reason"]["enum"],
        "flows[].name_source": defs["flow"]["properties"]["name_source"]["enum"],
        "flows[].state": defs["flow"]["properties"]["state"]["enum"],
        "flows[].conn_state": defs["flow"]["properties"]["conn_state"]["enum"],
        "captures[].format": defs["capture"]["properties"]["format"]["enum"],
        "captures[].compression": defs["capture"]["properties"]["compression"]["enum"],
        "path.*.signals[].kind": defs["signal"]["properties"]["kind"]["enum"],
    }
    assert set(table) == set(expected)
    for key, values in expected.items():
        assert sorted(table[key], key=str) == sorted(values, key=str), key


# ================================================================ a real browser (headless Chromium)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class DevTools:
    """Just enough of the Chrome DevTools Protocol: a WebSocket client (RFC 6455) with JSON messages."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        )  # fmt: skip
        self._buf = b""
        while b"\r\n\r\n" not in self._buf:
            self._buf += self._recv_some(time.monotonic() + timeout)
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
        if b" 101 " not in head.split(b"\r\n")[0] or accept not in head:
            raise ConnectionError(f"WebSocket handshake failed: {head[:200]!r}")
        self._next_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def call(
        self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0
    ):
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._send_frame(0x1, json.dumps(msg).encode())
        deadline = time.monotonic() + timeout
        while True:
            reply = self._recv_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, methods: set[str], session: str, start: int = 0, timeout: float = 30.0) -> int:
        """Index in `events` of the first of `methods` for `session` at or after `start`."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for i, event in enumerate(self.events[seen:], start=seen):
                if event["method"] in methods and event.get("sessionId") == session:
                    return i
            seen = len(self.events)
            reply = self._recv_message(deadline)
            if "method" in reply:
                self.events.append(reply)

    # --- framing
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        self.sock.sendall(head + mask + masked.to_bytes(n, "big"))

    def _recv_some(self, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from Chromium")
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("Chromium closed the DevTools connection")
        return chunk

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._buf += self._recv_some(deadline)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _recv_message(self, deadline: float) -> dict:
        data = b""
        while True:
            b0, b1 = self._read(2, deadline)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2, deadline))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8, deadline))[0]
            if b1 & 0x80:  # servers do not mask, but accept it
                mask = self._read(4, deadline)
                raw = self._read(n, deadline)
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(raw))
            else:
                payload = self._read(n, deadline)
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("Chromium closed the DevTools connection")
            if opcode in (0x0, 0x1, 0x2):
                data += payload
                if b0 & 0x80:
                    return json.loads(data)


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    "--window-size=1200,900",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with DevTools on an ephemeral port; killed (its process group) whatever happens."""
    require_tool("chromium")
    base = tmp_path_factory.mktemp("chromium")
    profile = base / "profile"
    profile.mkdir()
    log = (base / "chromium.log").open("wb")
    cmd = [shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
           "about:blank"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    client = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (base / "chromium.log").read_bytes()[-2000:].decode(errors="replace")
                pytest.fail(f"Chromium did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        client = DevTools(f"ws://127.0.0.1:{port}{path}")
        yield client
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.call("Browser.close", timeout=5)
            client.close()
        _stop(proc, profile)
        log.close()


def _stop(proc: subprocess.Popen, profile: Path) -> None:
    """Stop the Chromium we started: SIGTERM to its process group, then SIGKILL to whatever is left of it
    (and to any process still running with our private profile)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (left := _ours(proc.pid, profile)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    assert not _ours(proc.pid, profile), "Chromium processes survived"


def _ours(pgid: int, profile: Path) -> list[int]:
    """Live (not zombie) processes in Chromium's process group or using its profile directory."""
    marker = f"--user-data-dir={profile}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] != "Z" and (
                int(stat[2]) == pgid or marker in (entry / "cmdline").read_bytes().split(b"\0")
            ):
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


PAGE_FACTS = """(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const v = document.getElementById('verdict');
  const box = v ? v.getBoundingClientRect() : null;
  const style = v ? getComputedStyle(v) : null;
  return JSON.stringify({
    images: imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight, complete: i.complete})),
    verdict: v && {text: v.innerText, width: box.width, height: box.height, top: box.top, left: box.left,
                   display: style.display, visibility: style.visibility, opacity: style.opacity,
                   color: style.color, background: style.backgroundColor},
    viewport: [innerWidth, innerHeight],
    scripts: document.scripts.length,
    handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
      .filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name)),
    text: document.body.innerText,
  });
})()"""


def _load(browser: DevTools, report: Path) -> SimpleNamespace:
    """Open report in a new tab; return what the page shows and every problem the browser reported."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        start = len(browser.events)
        url = report.resolve().as_uri()
        nav = browser.call("Page.navigate", {"url": url}, session=session)
        assert "errorText" not in nav, nav
        at = start
        while True:  # a dialog (alert() from an injected script) blocks the load event: dismiss it
            at = browser.wait_for({"Page.loadEventFired", "Page.javascriptDialogOpening"}, session, at)
            if browser.events[at]["method"] == "Page.loadEventFired":
                break
            browser.call("Page.handleJavaScriptDialog", {"accept": True}, session=session)
            at += 1
        result = browser.call("Runtime.evaluate", {"expression": PAGE_FACTS, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)  # fmt: skip
        assert "exceptionDetails" not in result, result
        facts = json.loads(result["result"]["value"])
        events = [e for e in browser.events[start:] if e.get("sessionId") == session]
        problems = []
        for e in events:
            m, p = e["method"], e["params"]
            if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                problems.append(f"console.{p['type']}: {p['args']}")
            elif m == "Runtime.exceptionThrown":
                problems.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                problems.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Page.javascriptDialogOpening":
                problems.append(f"dialog: {p.get('message')}")
            elif m == "Network.loadingFailed":
                problems.append(f"failed: {p.get('errorText')}")
        fetched = [
            e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
        ]
        return SimpleNamespace(facts=facts, problems=problems, fetched=fetched, url=url)
    finally:
        with contextlib.suppress(Exception):
            browser.call("Target.closeTarget", {"targetId": target}, timeout=5)


def _check_page(page: SimpleNamespace, verdict: str) -> None:
    assert page.problems == [], page.problems
    foreign = [u[:80] for u in page.fetched if u != page.url and not u.startswith("data:image/png;base64,")]
    assert foreign == [], f"the report fetched: {foreign}"
    facts = page.facts
    assert facts["scripts"] == 0 and facts["handlers"] == []
    assert len(facts["images"]) >= 3
    for img in facts["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
    v = facts["verdict"]
    assert v is not None, "no #verdict element"
    assert v["text"].split()[0] == verdict, v["text"]
    assert v["width"] > 0 and v["height"] > 0 and v["display"] != "none", v
    assert v["visibility"] == "visible" and float(v["opacity"]) > 0, v
    assert 0 <= v["top"] < facts["viewport"][1] and 0 <= v["left"] < facts["viewport"][0], v  # above the fold
    assert v["color"] != v["background"], v


def test_browser_renders_the_demo_report(browser, demo):
    page = _load(browser, demo.a / "report.html")
    _check_page(page, "mtu_blackhole")
    assert "Clamp the TCP MSS to 1410" in page.facts["text"]


def test_browser_shows_hostile_text_as_text(browser, hostile):
    page = _load(browser, hostile.out / "report.html")
    _check_page(page, hostile.analysis.verdict)
    text = page.facts["text"]
    assert "<script>alert(1)</script>.a|b|c.example" in text
    assert "<img src=x onerror=alert(1)>.[click](http://evil.example)" in text
    assert "\\x1b[31mred\\x00nul\\x0d\\x0aCRLF.&#27;[1m&lt;b&gt;--><x>.example" in text


def test_plots_put_a_clock_shifted_capture_on_the_client_side_clock():
    """The host capture's clock is 3723.25 s ahead (lab derived copy): pairing measures the offset, and the
    time-sequence graph and the timeline draw both captures' packets on one time axis."""
    from matplotlib.collections import LineCollection

    scenario = SAMPLES / "blackhole_tls12"
    r = pcapmtu.analyze(host=scenario / "host_shifted.pcap", container=scenario / "container.pcap")
    assert abs(r.context.clock_offset("host") - 3723.25) < 0.01
    conn = int(r.findings[r.findings["code"] == "B001"]["conn"].iloc[0])
    fig = r.plot_time_sequence(("container", conn))
    xs = [x for c in fig.axes[0].collections if isinstance(c, LineCollection)
          for seg in c.get_segments() for x in seg[:, 0]]  # fmt: skip
    assert xs and min(xs) > -1 and max(xs) < 60, (min(xs), max(xs))
    bars = [p.get_x() for p in r.plot_timeline().axes[0].patches]
    assert bars and min(bars) >= 0 and max(bars) < 60, bars


def test_html_table_cells_of_tokens_are_never_broken_inside(demo):
    """Addresses:ports, MSS pairs and codes are cells that do not wrap (`172.17.0.2:5648|8` was seen); the
    long text columns still wrap."""
    html = (demo.a / "report.html").read_text()
    assert "td.tok{white-space:nowrap;overflow-wrap:normal}" in html
    cells = re.findall(r'<td class="tok">([^<]*)</td>', html)
    assert any(re.fullmatch(r"\d+\.\d+\.\d+\.\d+:\d+", c) for c in cells), cells[:20]
    assert any(re.fullmatch(r"\d+/\d+", c) for c in cells), cells[:20]


def test_plots_keep_legends_off_the_data_and_axes_readable():
    """The time-sequence legend sits beside the axes, the never-received range is a bar at the right edge
    (not a band over the data), and the size plot's log axis has more than one labelled tick."""
    scenario = SAMPLES / "blackhole_tls12"
    r = pcapmtu.analyze(host=scenario / "host.pcap", container=scenario / "container.pcap")
    conn = int(r.findings[r.findings["code"] == "B001"]["conn"].iloc[0])
    fig = r.plot_time_sequence(("container", conn))
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1, "the legend overlaps the data"
    never = [p for p in ax.patches if p.get_label().startswith("never received")]
    assert never and all(p.get_x() >= 0.9 for p in never), [p.get_x() for p in never]
    sizes = r.plot_sizes()
    sizes.canvas.draw()
    for axis in sizes.axes:
        labels = [t.get_text() for t in axis.get_yticklabels() if t.get_text()]
        assert len(labels) >= 2, labels
