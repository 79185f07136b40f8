"""Make capture-controlled strings safe to show: terminals, JSON consumers, Markdown, HTML.

DNS names, SNI and HTTP lines come from packets an attacker may have crafted. Control characters
(terminal escape sequences included) are shown as \\xNN (\\uNNNN above U+00FF); each renderer adds its
own escaping on top.
"""

from __future__ import annotations

import html
import re

# C0/C1 controls, zero-width and bidi controls (Trojan Source: LRE..RLO, LRI..PDI, LRM, RLM, ALM), BOM,
# invisible tag characters, and lone surrogates (a file name that is not UTF-8 decodes to those, and they
# cannot be encoded: writing the report would fail).
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
    "\ud800-\udfff\U000e0000-\U000e007f]"
)
# `&` and `$` too: otherwise a renderer shows a capture's `&lt;b&gt;` as `<b>` and GitHub typesets
# `$\frac{1}{2}$` as math (the text would show something other than what the packet said).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&$])")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape: the undecodable byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(value: object, limit: int = 200) -> str:
    """Plain text with control and bidi characters made visible, cut to `limit` characters."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub(_visible, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(value: object, limit: int = 200) -> str:
    """Text for a Markdown table cell: every Markdown metacharacter and pipe escaped."""
    return _MD_SPECIAL.sub(r"\\\1", printable(value, limit))


def html_text(value: object, limit: int = 200) -> str:
    """Text for HTML element content or a quoted attribute."""
    return html.escape(printable(value, limit), quote=True)
