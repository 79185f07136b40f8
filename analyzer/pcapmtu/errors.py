"""Exceptions the library raises; the CLI maps them to exit codes in one place."""

from __future__ import annotations


class PcapmtuError(Exception):
    """Base class: every error a user can act on, with a one-line message."""


class CaptureError(PcapmtuError):
    """The file is not a capture we can read (wrong magic, empty, unreadable, unsupported)."""


class UsageError(PcapmtuError):
    """The caller asked for something inconsistent (bad option values, missing inputs)."""
