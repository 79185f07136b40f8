"""Render (the last stage): what a person or a program reads.

jsondoc (the `--json` documents and report.json), report (report.html, report.md and the plots/ folder), plots
(matplotlib figures), measures (the per-connection measures `inspect` and the report share), parquet (the tables
for DuckDB and Spark), scan_summary and scan_index (a scan's terminal table and index.html), rulesdoc
(`rules --json`). Text from captures is escaped through ../textsafe.py on every way out.
"""
