"""Which store a URL names: a file path or ``sqlite:///path``, or a ``postgresql://`` DSN."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._errors import BadStoreURL

DEFAULT_SCHEMA = "kflow"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SYNCHRONOUS = ("normal", "full", "extra")


@dataclass(frozen=True)
class StoreURL:
    kind: str  # "sqlite" | "postgresql"
    label: str  # the URL as written, password masked: for messages
    path: str = ""  # sqlite: the database file
    dsn: str = ""  # postgresql: what asyncpg connects to (without our own options)
    schema: str = DEFAULT_SCHEMA  # postgresql: where the store's tables live
    synchronous: str = "normal"  # sqlite: PRAGMA synchronous
    timeout: float = 5.0  # sqlite: seconds to wait for another process's write lock


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
    if password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}").geturl()


def parse_store_url(url: str) -> StoreURL:
    """Parse a checkpoint URL; a BadStoreURL says what is wrong and what would work."""
    label = mask(url)
    if not isinstance(url, str) or not url.strip():
        raise BadStoreURL(repr(url), "empty URL; use a file path, sqlite:///path or postgresql://...")
    if "://" not in url:
        return StoreURL("sqlite", label, path=url)
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        return _sqlite(url, label)
    if scheme in ("postgresql", "postgres"):
        return _postgres(url, label)
    raise BadStoreURL(
        label, f"unsupported scheme {scheme!r}; use a file path, sqlite:///path or postgresql://..."
    )


def _sqlite(url: str, label: str) -> StoreURL:
    # SQLAlchemy's spelling, which people know: sqlite:///relative.db, sqlite:////abs/path.db.
    rest = url.split("://", 1)[1]
    if not rest.startswith("/"):
        raise BadStoreURL(label, "write sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path, _, query = rest[1:].partition("?")
    if not path or path == ":memory:":
        raise BadStoreURL(label, "needs a file path (a store in memory cannot outlive the run)")
    synchronous, timeout = "normal", 5.0
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "synchronous":
            synchronous = value.lower()
            if synchronous not in _SYNCHRONOUS:
                raise BadStoreURL(label, "synchronous must be normal, full or extra")
        elif key == "timeout":
            try:
                timeout = float(value)
            except ValueError:
                raise BadStoreURL(label, f"timeout must be seconds, got {value!r}") from None
        else:
            raise BadStoreURL(label, f"unknown option {key!r}; known: synchronous, timeout")
    return StoreURL("sqlite", label, path=path, synchronous=synchronous, timeout=timeout)


def _postgres(url: str, label: str) -> StoreURL:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise BadStoreURL(label, f"not a valid DSN ({exc})") from None
    schema = DEFAULT_SCHEMA
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))  # asyncpg's own options and server settings
    if not _IDENTIFIER.fullmatch(schema):
        raise BadStoreURL(label, f"schema {schema!r} is not a plain SQL identifier")
    dsn = parts._replace(scheme="postgresql", query=urlencode(kept)).geturl()
    return StoreURL("postgresql", label, dsn=dsn, schema=schema)
