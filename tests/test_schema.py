"""The tables have exactly their documented columns, and docs/tables.md is current."""

from __future__ import annotations

import pcapmtu
from pcapmtu import schema
from support.environment import CORPUS, ROOT, corpus_files


def test_real_capture_tables_match_schema():
    cap = pcapmtu.read(CORPUS / "semantic" / "arkime__curl-enabled-tls13.pcap")
    for name, table in schema.TABLES.items():
        frame = getattr(cap, name)
        assert list(frame.columns) == list(table), f"{name} columns differ from schema.{name.upper()}"


def test_empty_capture_tables_match_schema():
    empty = next(p for p in corpus_files("malformed") if p.name == "tcpdump__empty.pcap")
    cap = pcapmtu.read(empty)
    assert len(cap.packets) == 0
    for name, table in schema.TABLES.items():
        assert list(getattr(cap, name).columns) == list(table), name


def test_cli_doc_is_generated_from_the_commands():
    from pcapmtu import clidoc

    doc = (ROOT / "docs" / "cli.md").read_text()
    assert doc == clidoc.markdown(), "docs/cli.md is stale: run python -m pcapmtu.clidoc > docs/cli.md"


def test_tables_doc_is_generated_from_schema():
    doc = (ROOT / "docs" / "tables.md").read_text()
    assert doc == schema.markdown(), "docs/tables.md is stale: run python -m pcapmtu.schema > docs/tables.md"
