"""CSV cells that spreadsheets cannot run: text starting with ``= + - @``, a tab or a carriage return is a
formula to Excel, LibreOffice and Google Sheets (CSV injection), so it gets a leading apostrophe (OWASP's
advice), which they show as text. Numbers, negative ones included, are left alone."""

from __future__ import annotations

import csv
import io
import math

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape(text: str) -> str:
    if not text.startswith(_TRIGGERS):
        return text
    try:
        float(text)
        return text  # a number such as -0.5 is data, not a formula
    except ValueError:
        return "'" + text


def cell(value) -> str:
    """One CSV cell, the one format of every CSV unetgui writes: None, NaN and infinity empty (undefined,
    e.g. HD95 with one side empty), floats with 10 significant digits, booleans true/false, text escaped."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".10g")
    if isinstance(value, int):
        return str(value)
    return escape(str(value))  # names and reasons are text from files and users


def table_text(columns: list[str], rows) -> str:
    """RFC 4180 CSV text (CRLF; a CR or a quote in a cell gets quoted) of ``rows`` (dicts; keys not in
    ``columns`` are left out, missing ones empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([escape(str(c)) for c in columns])
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return out.getvalue()
