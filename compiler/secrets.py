"""Keep credentials out of the IR and out of generated modules.

A password, a DSN or URL carrying a password, a credential header or a
token-like setting becomes a `SecretRef` naming the environment variable the
module reads (`KFLOW_<RESOURCE>_<SETTING>[_<KEY>]`). The builder keeps the real
values aside, so in-process runs can still use them without them ever being
written anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from kflow.ir import SecretRef
from kflow_runtime.resources import env_name

CREDENTIAL_SETTINGS = frozenset({"password", "passwd", "token", "api_key", "secret"})
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})
_TOKENISH = re.compile(r"(password|passwd|secret|token|api_?key|credential)", re.IGNORECASE)


def _is_secret(setting: str, value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    lowered = setting.lower()
    if lowered in CREDENTIAL_SETTINGS or _TOKENISH.search(lowered):
        return True
    if "://" in value:
        # Any URL (dsn, url, base_url, ...) is secret when it carries a password; one that
        # cannot be parsed is kept secret to be safe.
        try:
            return urlsplit(value).password is not None
        except ValueError:
            return True
    # A keyword DSN ("host=h password=p") may carry a password anywhere.
    return lowered in ("dsn", "url") and "password" in value.lower()


def split_secrets(resource: str, settings: Mapping[str, Any]) -> tuple[dict, dict[str, str]]:
    """Settings with secrets replaced by `SecretRef`, and the secret values by variable."""
    public: dict[str, Any] = {}
    values: dict[str, str] = {}
    for setting, value in settings.items():
        if setting == "headers" and isinstance(value, Mapping):
            headers = {}
            for header, header_value in value.items():
                if header.lower() in SECRET_HEADERS and isinstance(header_value, str):
                    name = env_name(resource, "headers", header)
                    values[name] = header_value
                    headers[header] = SecretRef(name)
                else:
                    headers[header] = header_value
            public[setting] = headers
        elif _is_secret(setting, value):
            name = env_name(resource, setting)
            values[name] = value
            public[setting] = SecretRef(name)
        else:
            public[setting] = value
    return public, values
