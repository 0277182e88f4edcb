"""Credentials out of text a run shows: error messages, progress lines, traces, envelopes.

A driver's or a user's message may quote a URL with its password (`postgresql://u:pw@h/db`,
an HTTP base URL read from `KFLOW_API_BASE_URL`) or a libpq keyword DSN (`password=pw`);
`mask` keeps the user and hides the password, as `u:***@`, wherever it sits in the text.
Plain `re`, compiled once: this runs only when a node fails.
"""

from __future__ import annotations

import re

# scheme://user:password@ up to the last '@' before whitespace (a password may hold '/').
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@\s]+)@")
# What follows "host:" when the '@' belongs to a path or query: a port, then a path.
_PORT_THEN_PATH = re.compile(r"\d+[/?#]")
# password=secret in a keyword/value DSN or a query string; quoted values too.
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?:'[^']*'|\"[^\"]*\"|[^\s&;,'\")]+)",
    re.IGNORECASE,
)

MASK = "***"


def _mask_userinfo(match: re.Match[str]) -> str:
    if _PORT_THEN_PATH.match(match["secret"]):
        return match[0]  # "http://h:80/x?to=a@b": no user-info here
    return f"{match['head']}:{MASK}@"


def mask(text: str) -> str:
    """`text` with every URL password shown as `***` (`u:***@host`), and `password=***`."""
    if "@" in text:
        text = _URL_CREDENTIALS.sub(_mask_userinfo, text)
    if "=" in text:
        text = _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
    return text
