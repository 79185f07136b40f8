"""Make capture-controlled strings safe to show: terminals, JSON consumers, Markdown, HTML.

DNS names, SNI and HTTP lines come from packets an attacker may have crafted. Control characters
(terminal escape sequences included) are shown as \\xNN; each renderer adds its own escaping on top.
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def printable(value: object, limit: int = 200) -> str:
    """Plain text with control and bidi characters made visible, cut to `limit` characters."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(value: object, limit: int = 200) -> str:
    """Text for a Markdown table cell: every Markdown metacharacter and pipe escaped."""
    return _MD_SPECIAL.sub(r"\\\1", printable(value, limit))


def html_text(value: object, limit: int = 200) -> str:
    """Text for HTML element content or a quoted attribute."""
    return html.escape(printable(value, limit), quote=True)
