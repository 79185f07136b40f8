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
    """Running Markdown text (CommonMark + GFM) that may carry capture bytes no one marked as such.

    Only what would start a construct where it stands is backslash-escaped, so plain prose (pcapmtu's own
    sentences, `jenkins-updates.example (198.18.0.11:443)`, `[fd00::1]:443`) comes out unchanged:
    - a backslash before punctuation or at the end;
    - `` ` * | ~ $ @ < ``: code, emphasis, table cells, strikethrough, math, e-mail autolinks, HTML, autolinks;
    - `_` unless inside a word; `&` before a letter, digit or `#`, or at the end (entities);
    - `]` before `(` or `[` (links, images; md_text sees to a `(` in the piece that follows, md_block to
      a link reference definition);
    - `://` and `www.` (GFM's extended autolinks).
    What starts a block (`#`, `>`, `- `, `1. `, ...) is md_block's business.
    """
    return _MD_ACTIVE.sub(lambda m: "\\" + m.group(), printable(value, limit))


# The characters markdown() escapes, each only where it is active (see there).
_MD_ACTIVE = re.compile(
    r"\\(?=[!-/:-@\[-`{-~]|$)"  # a backslash that would escape what follows, or end a line
    r"|[`*|~$@<]"
    r"|(?<![^\W_])_|_(?![^\W_])"  # `_` with a non-alphanumeric character (or nothing) on either side
    r"|&(?=[#A-Za-z0-9]|$)"
    r"|\](?=[(\[])"
    r"|(?<=[A-Za-z0-9]):(?=//)"
    r"|(?<=(?<![A-Za-z0-9])[Ww][Ww][Ww])\."
)
# What starts a block when it begins a paragraph or a list item's text: a heading, a block quote, a list
# item, a thematic break or setext underline, a link reference definition, a footnote or task-list box.
_MD_BLOCK = re.compile(r"#{1,6}(?:[ ]|$)|[-+=](?:[-= ]|$)|[>\[]")
_MD_ORDERED = re.compile(r"\d{1,9}(?=[.)](?:[ ]|$))")
# A capture string made only of these reads the same in any Markdown renderer (and GitHub's or GitLab's
# @mentions, #references, :emoji: and autolinks do not touch it): letters, digits, and ` .,;()'"=+/-…`.
_MD_INERT = re.compile(r"(?:[^\W_]|[ .,;()'\"=+/…-])+")
_OWN_CODE = re.compile(r"`([^`]+)`")
_WWW = re.compile(r"(?<![A-Za-z0-9])www\.", re.IGNORECASE)


def md_block(text: str) -> str:
    """`text` (already Markdown) as the start of a paragraph or of a list item's text: a leading block
    marker is escaped (a leading space becomes `&#32;`, else four of them would start a code block)."""
    if text.startswith(" "):
        return "&#32;" + text[1:]
    if m := _MD_ORDERED.match(text):
        return f"{m.group()}\\{text[m.end() :]}"
    if _MD_BLOCK.match(text):
        return "\\" + text
    return text


def md_code(text: str, table: bool = False) -> str:
    """`text` as a code span, shown exactly as it is: the fence is one backtick longer than the longest
    run inside, padded with a space when the text starts or ends with a backtick or a space. In a GFM table
    cell every `|` is written `\\|` (GFM takes it out again, inside code spans too)."""
    if not text:
        return ""
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if (text[0] in "` " or text[-1] in "` ") and text.strip(" ") else ""
    if table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(text: str, info: str = "") -> list[str]:
    """`text` as a fenced code block, as lines: the fence is longer than any backtick run inside."""
    fence = "`" * max(3, max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    return [f"{fence}{info}", *text.split("\n"), fence]


def md_capture(value: object, limit: int = 200, table: bool = False) -> str:
    """A string from a capture (a DNS name, an SNI, a file name): as it is when it cannot mean anything to
    a Markdown renderer (`jenkins-updates.example`, `host.pcap`), else as a code span, which no renderer,
    autolinker or @mention filter looks into. The bytes shown are the capture's either way."""
    text = printable(value, limit)
    inert = _MD_INERT.fullmatch(text) and text.strip(" ") == text and not _WWW.search(text)
    return text if inert else md_code(text, table)


class Quotes:
    """Strings to find in text, as printable() shows them, indexed by their first two characters: a report
    of thousands of connections looks each of its texts over for thousands of names quickly."""

    def __init__(self, strings=()):
        self._by_head: dict[str, list[str]] = {}
        for s in {s for s in strings if s}:
            self._by_head.setdefault(s[:2], []).append(s)  # a one-character string under its character

    def within(self, text: str) -> set[str]:
        heads = self._by_head
        return {
            s
            for p in range(len(text))
            for head in (text[p : p + 2], text[p])
            for s in heads.get(head, ())
            if text.startswith(s, p)
        }


def md_text(value: object, limit: int = 200, capture=(), code=(), table: bool = False) -> str:
    """Text of pcapmtu's own that quotes capture strings (`capture`: names, file names; a Quotes or the
    strings) and filters or commands (`code`), each as printable() shows it: those are found in it (whole,
    the longest first) and written by md_capture and md_code. The rest is pcapmtu's: what it quotes as code
    (`tcpdump -i any`) is a code span, as the author meant, and the words go through markdown(), which
    leaves them as they are. Capture strings with a backtick are looked for first, so that a backtick of
    theirs never pairs with one of pcapmtu's."""
    text = printable(value, limit)
    codes = {c for c in code if c and c in text}
    keys = sorted(
        codes | (capture if isinstance(capture, Quotes) else Quotes(capture)).within(text),
        key=len,
        reverse=True,
    )
    ticked = [k for k in keys if "`" in k]
    plain = [k for k in keys if "`" not in k]
    out: list[str] = []

    def quoted(key: str) -> str:
        if key in codes or (
            key.startswith("(") and out and out[-1].endswith("]") and not out[-1].endswith("\\]")
        ):
            return md_code(key, table)  # `[..]` and then `(..)` would be a link
        return md_capture(key, len(text), table)

    for key, piece in _pieces(text, ticked):
        if key:
            out.append(quoted(piece))
            continue
        for i, part in enumerate(_OWN_CODE.split(piece)):
            if i % 2:
                out.append(md_code(part, table))
                continue
            for key2, bit in _pieces(part, plain):
                out.append(quoted(bit) if key2 else markdown(bit, len(bit)))
    return "".join(out)


def _pieces(text: str, keys: list[str]):
    """(True, key) for each whole-word occurrence of one of `keys` (longest first), (False, text) between."""
    pos = p = 0
    while p < len(text):
        key = None
        if p == 0 or not _word(text[p - 1]):  # whole names only: not "a" inside "capture"
            key = next(
                (
                    k
                    for k in keys
                    if text.startswith(k, p) and (p + len(k) == len(text) or not _word(text[p + len(k)]))
                ),
                None,
            )
        if key is None:
            p += 1
            continue
        if p > pos:
            yield False, text[pos:p]
        yield True, key
        pos = p = p + len(key)
    if pos < len(text):
        yield False, text[pos:]


def _word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def html_text(value: object, limit: int = 200) -> str:
    """Text for HTML element content or a quoted attribute."""
    return html.escape(printable(value, limit), quote=True)
