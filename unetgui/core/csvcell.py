"""CSV cells that spreadsheets cannot run: text starting with ``= + - @``, a tab or a carriage return is a
formula to Excel, LibreOffice and Google Sheets (CSV injection), so it gets a leading apostrophe (OWASP's
advice), which they show as text. Numbers, negative ones included, are left alone."""

from __future__ import annotations

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape(text: str) -> str:
    if not text.startswith(_TRIGGERS):
        return text
    try:
        float(text)
        return text  # a number such as -0.5 is data, not a formula
    except ValueError:
        return "'" + text
