"""The text policy for strings and numbers from files (core.textsafe) and the byte limits (core.limits)."""

from __future__ import annotations

import numpy as np
import pytest

from unetgui.core import limits
from unetgui.core.errors import FormatError
from unetgui.core.textsafe import one_line, parse_float, parse_int, printable


def test_printable_escapes_what_a_terminal_would_obey_and_keeps_the_rest():
    assert printable("Leber \x1b[2J\x1b]0;owned\x07") == "Leber \\x1b[2J\\x1b]0;owned\\x07"
    assert printable("abc\u202edcba") == "abc\\u202edcba"  # a bidi override would show "abcabcd"
    assert printable("Rückenmark 脊髓") == "Rückenmark 脊髓"  # letters of any script stay
    assert printable("x" * 500).endswith("...") and len(printable("x" * 500)) == 200


def test_one_line_cannot_start_a_header_line():
    assert one_line("liver\ndata file: /etc/passwd") == "liver data file: /etc/passwd"
    assert "\n" not in one_line("a\r\nb\x0bc\u2028d") and "\r" not in one_line("a\r\nb")


@pytest.mark.parametrize("text", ["9" * 5000, "1e3", "0x10", "", "12 13", "١٢"])
def test_parse_int_refuses_what_is_not_a_short_integer(text):
    with pytest.raises(FormatError):
        parse_int(text, "labels.txt line 3")


def test_parse_int_and_float_bounds():
    assert parse_int(" 42 ", "x", 1, 254) == 42
    with pytest.raises(FormatError, match="outside 1..254"):
        parse_int("255", "label value", 1, 254)
    assert parse_float("-1.5e2", "x") == -150.0
    for bad in ("nan", "inf", "1e999", "1" * 100):
        with pytest.raises(FormatError):
            parse_float(bad, "spacing")


def test_byte_limits_count_the_data_type():
    shape = (4000, 512, 512)  # within the voxel limit: 2 GiB as int16, 8 GiB as float64
    limits.check_shape(shape, "ct", itemsize=np.dtype(np.int16).itemsize)
    with pytest.raises(FormatError, match="GiB"):
        limits.check_shape(shape, "ct", itemsize=np.dtype(np.float64).itemsize)
    limits.check_within(100, 50, 150, "x")
    with pytest.raises(FormatError, match="claims"):
        limits.check_within(100, 51, 150, "x")
