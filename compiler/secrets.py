"""Keep credentials out of the IR and out of generated modules.

One classifier, `is_secret(path, value)`, decides for every leaf of a resource's
settings (a setting, a header, a dict key at any depth, an element of a pair) whether it
is a credential; `split_secrets` walks the settings and replaces each credential by a
`SecretRef` naming the environment variable the module reads
(`KFLOW_<RESOURCE>_<PATH>`: `KFLOW_API_HEADERS_X_API_KEY`). The builder keeps the real
values aside, so in-process runs can still use them without them ever being written
anywhere. `secret_literals` finds credential-looking literals in code inlined from a
custom resource's factory, for a warning.

The rules (tests/test_secrets.py has them as a table):
- a setting or dict key named like a credential, at any depth (`password`, `passwd`,
  `secret`, `token`, `api_key`, `credentials`, `auth`, `private_key`, ...): its value;
- every header whose name contains auth, token, secret, key, cookie, session, password
  or credential (`Authorization`, `X-Api-Key`, `Cookie`, `Proxy-Authorization`, ...),
  whether headers are a dict or a list of (name, value) pairs;
- every cookie (`cookies=`), and the password of `auth=(user, password)`;
- a URL or DSN holding a password, or a query parameter named like a credential
  (`?password=`, `?api_key=`, `?token=`, `?access_token=`, `?secret=`, `?key=`), and a
  keyword DSN with `password=` in it. A URL that cannot be parsed counts as secret.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kflow.ir import SecretRef
from kflow_runtime.resources import env_name

Path = tuple[str | int, ...]

# Words that make a setting's (or a dict key's, or a query parameter's) name a credential,
# matched as whole words of the name (`api_key`, `apiKey`, `X-Auth-Token`).
_NAME_WORDS = re.compile(
    r"(?:^|_)(pass|password|passwd|pwd|passphrase|secrets?|tokens?|credentials?|auth|"
    r"apikey|api_key|access_key|private_key|secret_key|client_secret|sessionid|session_key|"
    r"cookies?|jwt|bearer|signature|sig)(?:_|$)"
)
# A header is a credential if its name *contains* one of these (as the issue of record asks).
_HEADER_PARTS = ("auth", "token", "secret", "key", "cookie", "session", "password", "passwd",
                 "credential")
# Query parameters that carry credentials beyond the name words (Google-style `?key=`).
_QUERY_NAMES = frozenset({"key", "access_token", "id_token", "refresh_token"})
_KEYWORD_DSN = re.compile(r"(?:^|\s)(password|passwd|pwd)\s*=", re.IGNORECASE)


def _words(name: str) -> str:
    """`X-Api-Key` -> `x_api_key`, `apiKey` -> `api_key`: one form to match words in."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def secret_name(name: str) -> bool:
    """Whether a setting, dict key or query parameter named `name` holds a credential."""
    words = _words(name)
    return bool(_NAME_WORDS.search(words)) or words in _QUERY_NAMES


def secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _HEADER_PARTS)


def secret_url(value: str) -> bool:
    """A URL or DSN that carries a credential: a password, or a credential-named query
    parameter. One that cannot be parsed is kept secret to be safe."""
    if "://" not in value:
        return bool(_KEYWORD_DSN.search(value))
    try:
        parts = urlsplit(value)
        if parts.password is not None:
            return True
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return True
    return any(secret_name(key) for key, _ in query)


def is_secret(path: Path, value: Any) -> bool:
    """The classifier: is the leaf at `path` of a resource's settings a credential?

    `path` is the setting and the keys (or indexes) under it: `("password",)`,
    `("headers", "X-Api-Key")`, `("auth", 1)`, `("server_settings", "password")`,
    `("cookies", "sid")`. Only text and numbers can be secrets (None, bools, empty
    strings are not).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        return False
    top = str(path[0]).lower() if path else ""
    if top in ("cookie", "cookies"):
        return True
    if top == "headers":
        return len(path) > 1 and isinstance(path[1], str) and secret_header(path[1])
    if top == "auth":
        return path[1:] != (0,)  # auth=(user, password): the user name is not secret
    if any(isinstance(part, str) and secret_name(part) for part in path):
        return True
    return isinstance(value, str) and secret_url(value)


def split_secrets(resource: str, settings: Mapping[str, Any]) -> tuple[dict, dict[str, str]]:
    """Settings with every credential replaced by a `SecretRef`, and the credentials' values
    by environment variable."""
    values: dict[str, str] = {}

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            if path and str(path[0]).lower() == "headers" and _pairs(value):
                # Headers as (name, value) pairs: each value is classified by its name.
                return [[name, walk(v, (*path, name))] for name, v in value]
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if is_secret(path, value):
            # Read from the environment by workflow.py (os.getenv): from the same variable.
            read = getattr(value, "read", None)
            name = read.var if read is not None else env_name(resource, "_".join(_label(path)))
            if read is not None:
                read.used = True
            text = str(value)
            if values.get(name, text) != text:
                raise ValueError(f"two secrets of resource {resource!r} would be read from "
                                 f"the one variable {name}")
            values[name] = text
            return SecretRef(name)
        return value

    return {k: walk(v, (k,)) for k, v in settings.items()}, values


def _pairs(value: Any) -> bool:
    return all(isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)
               for item in value)


def _label(path: Path) -> Iterator[str]:
    for i, part in enumerate(path):
        if isinstance(part, int):
            yield "password" if path[0] == "auth" and i == 1 and part == 1 else str(part)
        else:
            yield part


def secret_literals(code: str) -> list[tuple[str, int]]:
    """Credential-looking string literals in code (an inlined factory's source):
    `API_KEY = "..."`, `connect(password="...")`, `{"token": "..."}`, as (name, line)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found: list[tuple[str, int]] = []

    def literal(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(node.value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and literal(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name) and secret_name(target.id):
                    found.append((target.id, node.lineno))
        elif isinstance(node, ast.keyword) and node.arg and literal(node.value):
            if secret_name(node.arg):
                found.append((node.arg, node.value.lineno))
        elif isinstance(node, ast.Dict):
            for key, item in zip(node.keys, node.values, strict=True):
                if literal(key) and literal(item) and (secret_name(key.value)
                                                       or secret_header(key.value)):
                    found.append((key.value, item.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                "://" in node.value and secret_url(node.value):
            found.append(("a URL with a credential", node.lineno))
    return sorted(set(found), key=lambda f: (f[1], f[0]))
