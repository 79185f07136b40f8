"""Exceptions the library raises; the CLI maps them to exit codes in one place."""

from __future__ import annotations


class PcapmtuError(Exception):
    """Base class: every error a user can act on, with a one-line message."""


class CaptureError(PcapmtuError):
    """The file is not a capture we can read (wrong magic, empty, unreadable, unsupported)."""


class UsageError(PcapmtuError):
    """The caller asked for something inconsistent (bad option values, missing inputs)."""


class TooBig(CaptureError):
    """Reading the capture would exceed the read budget (packets or memory; ingest/budget.py): it stopped
    early. A CaptureError: the command line exits 2 and `export` and `inspect` go on with the other files."""


class CaptureFailed(PcapmtuError):
    """`pcapmtu capture` could not take the captures: no root, no such container, a tcpdump that would not
    start, or an interruption (Ctrl-C). Exit code 2, with its one line."""
