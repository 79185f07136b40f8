"""Diagnose (the second stage): what the captures say about the path, and what broke.

context (the captures, their vantage points and roles, pairing, delivery, turns) -> path_mtu (the path MTU and
its evidence) -> detectors/ (rules with stable codes, each a small unit) -> verdicts (one verdict, its reason and
confidence) -> fix (the commands, with computed numbers) -> analysis (`analyze()` and the `Analysis` a user
holds). wireshark cross-checks the evidence frames with tshark.

diagnose imports ingest, never render; the `Analysis` object's render conveniences (`save`, `to_json`, `plot_*`)
load render when called, and tests/test_layering.py lists them by name.
"""
