"""Render (the last stage): what a person or a program reads.

jsondoc (the `--json` documents and report.json), report (report.html, report.md and the plots/ folder), plots
(matplotlib figures), measures (the per-connection measures `inspect` and the report share), parquet (the tables
for DuckDB and Spark). Text from captures is escaped through ../textsafe.py on every way out.
"""
