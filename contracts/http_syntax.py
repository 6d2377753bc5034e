"""What HTTP lets a subscription carry: header names, header values and URL characters.

A subscription's headers and URL are written into every delivery's request, so anything HTTP
does not allow would fail each attempt at the sender (or be read differently by each receiver).
These rules refuse it at registration instead. Messages name the offending character, never
the value: header values are often credentials.
"""

from __future__ import annotations

import unicodedata

# RFC 9110 section 5.6.2: a field name is a token, 1*tchar.
TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_LINE_BREAKS = frozenset("\r\n")
_HTAB = "\t"
# Unicode categories a URL must not hold, even in its path or query: controls and every kind
# of space. Clients encode, strip or reject them differently, so the request the receiver sees
# would depend on the client.
_URL_REFUSED_CATEGORIES = frozenset({"Cc", "Zs", "Zl", "Zp"})


def _code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def header_name_problem(name: str) -> str | None:
    """Why `name` cannot be an HTTP header name, or None when it is a token."""
    if not name:
        return "header name is empty"
    for char in name:
        if char not in TCHAR:
            # Checked on the name as given: a non-ASCII letter may lowercase to an ASCII one
            # (U+212A KELVIN SIGN to "k"), yet it is still not something HTTP can carry.
            return (
                "not a valid header name: only ASCII letters, digits and !#$%&'*+-.^_`|~ "
                f"are allowed (found {_code_point(char)})"
            )
    return None


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value, or None when it can.

    RFC 9110 section 5.5: visible characters, with spaces and tabs only between them. The
    obsolete obs-text octets (0x80-0xFF) are refused too: the delivery client writes text as
    UTF-8, while receivers commonly decode header bytes as ISO-8859-1, so a non-ASCII value
    would not arrive as the text that was registered.
    """
    for char in value:
        if char in _LINE_BREAKS:
            return "value must not contain line breaks"
        if char == _HTAB:
            continue
        point = ord(char)
        if point < 0x20 or point == 0x7F:
            return f"value must not contain control characters (found {_code_point(char)})"
        if point > 0x7E:
            return (
                "value must be ASCII text: HTTP gives other characters no agreed encoding "
                f"(found {_code_point(char)})"
            )
    if value != value.strip(" \t"):
        # HTTP drops them, so the receiver would not read the registered value.
        return "value must not begin or end with a space or tab"
    return None


def url_text_problem(url: str) -> str | None:
    """Why `url`'s characters cannot be sent as they are, or None (other URL rules apart)."""
    for char in url:
        if unicodedata.category(char) in _URL_REFUSED_CATEGORIES:
            kind = "a control character" if unicodedata.category(char) == "Cc" else "a space"
            return (
                f"URL must not contain spaces or control characters (found {kind}, "
                f"{_code_point(char)}); percent-encode it, e.g. %20 for a space"
            )
    return None
