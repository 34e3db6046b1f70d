"""Text and numbers that come from files (docs/formats.md, "Text from files").

One policy for every reader and writer:

- :func:`printable`: a string from a file, safe to print on a terminal or show in a one-line message: control
  characters (C0, DEL, C1, and the Unicode bidirectional overrides that reorder what a terminal shows) are
  written escaped (``\\x1b``, ``\\u202e``), so a label name cannot move the cursor, recolour the terminal or
  hide text. Long strings are cut.
- :func:`one_line`: a string from a file, safe to write into a line-based output (an NRRD header value, a label
  table line, a CSV cell's line): every control character, line breaks included, becomes a space, so a name
  cannot start a new header line (``data file: /etc/passwd``).
- :func:`parse_int` / :func:`parse_float`: numbers written as text, parsed with a length cap and bounds, so a
  value of 5,000 digits is a one-line format error, not Python's int-conversion limit escaping as a bug.
"""

from __future__ import annotations

import math
import re

from unetgui.core.errors import FormatError

#: the longest integer (in characters, sign included) read from a text header: far beyond any real count
MAX_INT_CHARS = 20
#: the longest floating-point number read from a text header
MAX_FLOAT_CHARS = 64
#: the longest string shown in a message
MAX_SHOWN = 200

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _escape(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` safe to print: control and bidi characters escaped, cut to ``limit`` characters (with ...)."""
    shown = _CONTROL.sub(_escape, str(text))
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def one_line(text: object) -> str:
    """``text`` safe inside one line of a text format: control characters (line breaks too) become spaces."""
    return _CONTROL.sub(" ", str(text)).strip()


def one_name(text: object) -> str:
    """A name from a file or for a file: :func:`one_line`, runs of blanks collapsed to one space."""
    return " ".join(one_line(text).split())


def has_control(text: str) -> bool:
    """True when ``text`` holds a character :func:`printable` would escape (a last check before writing)."""
    return _CONTROL.search(text) is not None


def parse_int(text: object, what: str, low: int | None = None, high: int | None = None,
              error: type[FormatError] = FormatError, max_chars: int = MAX_INT_CHARS) -> int:
    """The integer written as ``text`` (surrounding blanks allowed, at most ``max_chars`` characters), within
    ``low``..``high`` when given; else ``error`` naming ``what``."""
    s = str(text).strip()
    if len(s) > max_chars or not _INT.fullmatch(s):
        raise error(f"{what}: {printable(s, 40)!s} is not an integer")
    value = int(s)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low if low is not None else '...'}..{high if high is not None else '...'}"
        raise error(f"{what}: {value} is outside {bounds}")
    return value


def parse_float(text: object, what: str, error: type[FormatError] = FormatError) -> float:
    """The finite number written as ``text``; else ``error`` naming ``what``."""
    s = str(text).strip()
    if len(s) > MAX_FLOAT_CHARS or not _FLOAT.fullmatch(s):
        raise error(f"{what}: {printable(s, 40)} is not a number")
    value = float(s)
    if not math.isfinite(value):
        raise error(f"{what}: {printable(s, 40)} is not a finite number")
    return value
