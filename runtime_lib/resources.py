"""Resources of a run: declared specs, environment overrides, secrets, lazy open and close.

A generated module declares its resources as specs (``Database``, ``HttpClient``, ``Cache``,
``CustomResource``) and hands them to ``Resources``, which opens each one on first use and closes
what it opened when the run ends. The drivers (asyncpg, aiohttp, redis) are imported inside
``open()`` only, so a module that uses no resource never pays for importing them.

The rules users rely on (env naming, coercion, secrets, lifecycle, injection) are written
down in docs/resources.md; keep the two in step.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import importlib
import inspect
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from kflow_runtime.observe import emit
from kflow_runtime.redact import mask
from kflow_runtime.run import is_cancellation  # it ends an open; a driver's error fails it

__all__ = [
    "Cache",
    "CustomResource",
    "Database",
    "HttpClient",
    "HttpSession",
    "ResourceError",
    "ResourceRegistry",
    "ResourceSpec",
    "Resources",
    "Secret",
    "env_name",
]

logger = logging.getLogger(__name__)

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


# --------------------------------------------------------------------------- names, secrets


def env_name(resource: str, setting: str, key: str | None = None) -> str:
    """The environment variable that overrides ``setting`` (or one ``key`` of a dict setting).

    ``KFLOW_<RESOURCE>_<SETTING>[_<KEY>]``, upper-case, every run of non-alphanumerics
    becomes one ``_`` (a trailing one is dropped).
    """
    raw = f"KFLOW_{resource}_{setting}" if key is None else f"KFLOW_{resource}_{setting}_{key}"
    return _NON_ALNUM.sub("_", raw).rstrip("_").upper()


class Secret:
    """A setting read from the environment variable ``env`` when the resource opens.

    It holds the variable's name only, so writing it into generated source leaks nothing.
    """

    __slots__ = ("env",)

    def __init__(self, env: str) -> None:
        if not isinstance(env, str) or not env:
            raise TypeError(f"Secret needs an environment variable name, got {env!r}")
        self.env = env

    def __repr__(self) -> str:
        return f"Secret({self.env!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.env == self.env

    def __hash__(self) -> int:
        return hash((Secret, self.env))

    def resolve(self, environ: Mapping[str, str], resource: str, setting: str) -> str:
        try:
            return environ[self.env]
        except KeyError:
            raise ResourceError(
                f"resource {resource!r}: setting {setting!r} is a secret read from the "
                f"environment variable {self.env}, which is not set",
                resource=resource,
            ) from None


class Env:
    """A setting that workflow.py read with ``os.getenv(env, default)``: read from the same
    variable when the resource opens, ``default`` when it is unset (``KFLOW_<RESOURCE>_
    <SETTING>`` still overrides it, as it does any setting)."""

    __slots__ = ("env", "default")

    def __init__(self, env: str, default: str | None = None) -> None:
        if not isinstance(env, str) or not env:
            raise TypeError(f"Env needs an environment variable name, got {env!r}")
        self.env = env
        self.default = default

    def __repr__(self) -> str:
        return f"Env({self.env!r}, {self.default!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Env) and (other.env, other.default) == (self.env, self.default)

    def __hash__(self) -> int:
        return hash((Env, self.env, self.default))

    def resolve(self, environ: Mapping[str, str]) -> str | None:
        return environ.get(self.env, self.default)


def _resolve_env(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, Env):
        return value.resolve(environ)
    if isinstance(value, dict):
        return {k: _resolve_env(v, environ) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_resolve_env(v, environ) for v in value)
    return value


class ResourceError(Exception):
    """A resource could not be resolved, opened or found.

    ``resource`` is the resource's name, ``where`` what it points at (``describe()``), and
    the original exception, if any, is the ``__cause__``.
    """

    def __init__(
        self, message: str, *, resource: str | None = None, where: str | None = None
    ) -> None:
        super().__init__(message)
        self.resource = resource
        self.where = where


def _mask_url(url: str) -> str:
    """``url`` without the password of its user-info part, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def _host_port(url: str, default_port: int) -> tuple[str, Any, str]:
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    return parts.hostname or "localhost", port, parts.path.lstrip("/")


# --------------------------------------------------------------------------- coercion


def _coerce(text: str, like: Any, hint: type | None, var: str, resource: str) -> Any:
    """Turn the environment string ``text`` into the type of ``like`` (or ``hint``)."""

    def bad(what: str) -> ResourceError:
        return ResourceError(
            f"resource {resource!r}: environment variable {var}={text!r} is not {what}",
            resource=resource,
        )

    target: type = type(like) if like is not None and not isinstance(like, Secret) else str
    if like is None and hint is not None:
        target = hint
    if target is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad("a boolean (true/false/1/0/yes/no/on/off)")
    if target is int:
        try:
            return int(text)
        except ValueError:
            # A declared `timeout=30` is still a float setting: accept "2.5" for it.
            if hint is float:
                try:
                    return float(text)
                except ValueError:
                    pass
            raise bad("an integer") from None
    if target is float:
        try:
            return float(text)
        except ValueError:
            raise bad("a number") from None
    if target in (dict, list, tuple):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            # The text may hold credentials (headers): name the position, not the content.
            raise ResourceError(
                f"resource {resource!r}: environment variable {var} is not valid JSON "
                f"({exc.msg} at position {exc.pos})",
                resource=resource,
            ) from None
        want = dict if target is dict else list
        if not isinstance(value, want):
            raise ResourceError(
                f"resource {resource!r}: environment variable {var} must hold a JSON "
                f"{'object' if want is dict else 'array'}",
                resource=resource,
            )
        return tuple(value) if target is tuple else value
    return text


def _overridable(value: Any) -> bool:
    return value is None or isinstance(
        value, str | int | float | bool | dict | list | tuple | Secret
    )


def _resolve_secrets(value: Any, environ: Mapping[str, str], resource: str, setting: str) -> Any:
    """``value`` with every Secret read from ``environ``; ``setting`` names where it sits
    (``headers.Authorization``) for the message about an unset variable."""
    if isinstance(value, Secret):
        return value.resolve(environ, resource, setting)
    if isinstance(value, Mapping):
        return {
            k: _resolve_secrets(v, environ, resource, f"{setting}.{k}") for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [
            _resolve_secrets(v, environ, resource, f"{setting}[{i}]") for i, v in enumerate(value)
        ]
        return items if isinstance(value, list) else tuple(items)
    return value


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a sync or async callable and return its (awaited) result."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


# --------------------------------------------------------------------------- specs


@dataclasses.dataclass(frozen=True)
class ResourceSpec(abc.ABC):
    """A declared resource: its name and settings as the workflow wrote them.

    Subclasses set ``kind``, ``setting_types`` (so an override of an undeclared setting,
    e.g. ``KFLOW_DB_PORT``, still gets the right type) and implement ``describe``, ``open``
    and ``close``.
    """

    name: str
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    kind: ClassVar[str] = "resource"
    setting_types: ClassVar[Mapping[str, type]] = {}
    #: what failed when open() raised, for the error message
    open_failure: ClassVar[str] = "could not connect"
    #: the driver's connect-timeout setting, given the open's bound when not declared
    connect_timeout_setting: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"resource name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.settings, Mapping):
            raise TypeError(
                f"resource {self.name!r}: settings must be a mapping, got {type(self.settings).__name__}"
            )

    def resolved_settings(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """Declared settings with ``KFLOW_<NAME>_<SETTING>`` overrides applied, secrets resolved.

        Raises ResourceError for a malformed override or a Secret whose variable is unset.
        """
        out: dict[str, Any] = {k: _resolve_env(v, environ) for k, v in self.settings.items()}
        names = list(out)
        names += [s for s in self.setting_types if s not in out]
        for setting in names:
            declared = out.get(setting)
            if not _overridable(declared):
                continue  # callables and objects (factory, ssl contexts) have no text form
            hint = self.setting_types.get(setting)
            var = env_name(self.name, setting)
            if var in environ:
                out[setting] = _coerce(environ[var], declared, hint, var, self.name)
            value = out.get(setting)
            if isinstance(value, dict):
                value = dict(value)
                for key in list(value):
                    if not isinstance(key, str):
                        continue
                    key_var = env_name(self.name, setting, key)
                    if key_var in environ:
                        current = value[key]
                        like = current if _overridable(current) else None
                        value[key] = _coerce(environ[key_var], like, None, key_var, self.name)
                out[setting] = value
        return {k: _resolve_secrets(v, environ, self.name, k) for k, v in out.items()}

    def describe(self, settings: Mapping[str, Any]) -> str:
        return self.kind

    def env_names(self) -> list[str]:
        """Every ``KFLOW_<NAME>_<SETTING>[_<KEY>]`` variable that overrides something."""
        names = []
        for setting in [*self.settings, *(s for s in self.setting_types
                                          if s not in self.settings)]:
            names.append(env_name(self.name, setting))
            value = self.settings.get(setting)
            if isinstance(value, dict):
                names += [env_name(self.name, setting, k) for k in value if isinstance(k, str)]
        return names

    @abc.abstractmethod
    async def open(self, settings: dict[str, Any]) -> Any:
        """Create the object node code uses (a pool, a session, a client)."""

    @abc.abstractmethod
    async def close(self, obj: Any) -> None:
        """Close what `open` made."""


def _kwargs(settings: Mapping[str, Any], *drop: str) -> dict[str, Any]:
    # A None setting means "the driver's default", so it is not passed at all.
    return {k: v for k, v in settings.items() if v is not None and k not in drop}


# How long a pool gets to close gracefully (connections released, each saying goodbye to the
# server) before it is terminated. A healthy server takes milliseconds; a frozen one would
# take forever, since asyncpg waits for its answer.
_POOL_CLOSE_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class Database(ResourceSpec):
    """An asyncpg connection pool (``asyncpg.create_pool``)."""

    kind: ClassVar[str] = "database"
    setting_types: ClassVar[Mapping[str, type]] = {
        "host": str,
        "port": int,
        "database": str,
        "user": str,
        "password": str,
        "dsn": str,
        "min_size": int,
        "max_size": int,
        "command_timeout": float,
        "timeout": float,
        "max_queries": int,
        "max_inactive_connection_lifetime": float,
        "statement_cache_size": int,
        "server_settings": dict,
    }
    connect_timeout_setting: ClassVar[str | None] = "timeout"  # asyncpg's connect timeout

    @staticmethod
    def _with_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(settings)
        if out.get("dsn") is None:
            # With a DSN, explicit host/port would override the DSN's, so no defaults then.
            out.setdefault("host", "localhost")
            out.setdefault("port", 5432)
        return out

    def describe(self, settings: Mapping[str, Any]) -> str:
        s = self._with_defaults(settings)
        host, port, database = s.get("host"), s.get("port"), s.get("database")
        if s.get("dsn") is not None:
            dsn_host, dsn_port, dsn_db = _host_port(str(s["dsn"]), 5432)
            host, port, database = host or dsn_host, port or dsn_port, database or dsn_db
        where = f"postgresql {host}:{port}"
        return f"{where}/{database}" if database else where

    async def open(self, settings: dict[str, Any]) -> Any:
        import asyncpg

        kwargs = _kwargs(self._with_defaults(settings))
        if "server_settings" in kwargs:
            # PostgreSQL takes every run-time parameter as text.
            kwargs["server_settings"] = {k: str(v) for k, v in kwargs["server_settings"].items()}
        if "max_size" in kwargs and "min_size" not in kwargs:
            # asyncpg's min_size default (10) would exceed a smaller max_size.
            kwargs["min_size"] = min(10, kwargs["max_size"])
        pool = asyncpg.create_pool(**kwargs)
        try:
            return await pool
        except BaseException:
            # Older asyncpg leaves already-made connections open when init fails.
            pool.terminate()
            raise

    async def close(self, obj: Any) -> None:
        try:
            async with asyncio.timeout(_POOL_CLOSE_TIMEOUT):
                await obj.close()
        except TimeoutError:
            logger.warning(
                "resource %r: the pool did not close within %.0f s (connections still in use, "
                "or the server does not answer); terminating it",
                self.name,
                _POOL_CLOSE_TIMEOUT,
            )
            obj.terminate()


@dataclasses.dataclass(frozen=True)
class HttpClient(ResourceSpec):
    """An aiohttp session behind ``HttpSession``, which resolves paths against ``base_url``."""

    kind: ClassVar[str] = "http"
    setting_types: ClassVar[Mapping[str, type]] = {
        "base_url": str,
        "headers": dict,
        "timeout": float,
        "connection_limit": int,
    }
    open_failure: ClassVar[str] = "could not create the session"

    def describe(self, settings: Mapping[str, Any]) -> str:
        base = settings.get("base_url")
        return f"http {_mask_url(str(base))}" if base else "http (no base_url)"

    async def open(self, settings: dict[str, Any]) -> HttpSession:
        import aiohttp

        kwargs = _kwargs(settings, "base_url", "headers", "timeout", "connection_limit")
        timeout = settings.get("timeout")
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=float(timeout))
        limit = settings.get("connection_limit")
        if limit is not None:
            if "connector" in kwargs:
                raise ValueError("give either connection_limit or connector, not both")
            kwargs["connector"] = aiohttp.TCPConnector(limit=int(limit))
        headers = settings.get("headers")
        if headers:
            # A dict, or (name, value) pairs (kflowc keeps the form the workflow wrote).
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            kwargs["headers"] = {str(k): str(v) for k, v in pairs}
        auth = kwargs.get("auth")
        if isinstance(auth, list | tuple):
            kwargs["auth"] = aiohttp.BasicAuth(*(str(part) for part in auth))
        try:
            session = aiohttp.ClientSession(**kwargs)
        except BaseException:
            if "connector" in kwargs and limit is not None:
                await kwargs["connector"].close()  # ours, and would warn "Unclosed connector"
            raise
        return HttpSession(session, settings.get("base_url"), name=self.name, timeout=timeout)

    async def close(self, obj: Any) -> None:
        await obj.close()


@dataclasses.dataclass(frozen=True)
class Cache(ResourceSpec):
    """A ``redis.asyncio.Redis`` client (``decode_responses=True`` unless declared)."""

    kind: ClassVar[str] = "cache"
    setting_types: ClassVar[Mapping[str, type]] = {
        "host": str,
        "port": int,
        "db": int,
        "password": str,
        "username": str,
        "url": str,
        "decode_responses": bool,
        "socket_timeout": float,
        "socket_connect_timeout": float,
        "max_connections": int,
        "ssl": bool,
    }
    connect_timeout_setting: ClassVar[str | None] = "socket_connect_timeout"

    @staticmethod
    def _with_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(settings)
        out.setdefault("decode_responses", True)
        if out.get("url") is None:
            out.setdefault("host", "localhost")
            out.setdefault("port", 6379)
            out.setdefault("db", 0)
        return out

    def describe(self, settings: Mapping[str, Any]) -> str:
        s = self._with_defaults(settings)
        if s.get("url") is not None:
            host, port, path = _host_port(str(s["url"]), 6379)
            return f"redis {host}:{port}/{path or s.get('db', 0)}"
        return f"redis {s['host']}:{s['port']}/{s['db']}"

    async def open(self, settings: dict[str, Any]) -> Any:
        import redis.asyncio as aioredis

        kwargs = _kwargs(self._with_defaults(settings))
        url = kwargs.pop("url", None)
        client = aioredis.Redis.from_url(url, **kwargs) if url else aioredis.Redis(**kwargs)
        try:
            # Redis connects on first command; ping so a bad address fails here, named.
            await client.ping()
        except BaseException:
            await _close_redis(client)
            raise
        return client

    async def close(self, obj: Any) -> None:
        await _close_redis(obj)


async def _close_redis(client: Any) -> None:
    closer = getattr(client, "aclose", None) or client.close  # aclose() since redis 5.0.1
    await closer()


def _import_dotted(path: str) -> Any:
    module, _, attr = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class CustomResource(ResourceSpec):
    """Anything else: ``factory`` builds it, ``cleanup`` (optional) closes it.

    ``factory``, ``cleanup`` and ``health_check`` are callables (sync or async) or dotted
    names (``"package.module:function"``). Every other setting is passed to ``factory`` as
    a keyword argument. Without ``cleanup`` the object's own ``aclose()`` or ``close()``
    is called, if it has one.
    """

    kind: ClassVar[str] = "custom"
    open_failure: ClassVar[str] = "could not create"
    _HOOKS: ClassVar[tuple[str, ...]] = ("factory", "cleanup", "health_check")

    def __post_init__(self) -> None:
        super().__post_init__()
        for hook in self._HOOKS:
            fn = self.settings.get(hook)
            if hook == "factory" and fn is None:
                raise TypeError(f"resource {self.name!r}: a custom resource needs a factory")
            if fn is not None and not (callable(fn) or isinstance(fn, str)):
                raise TypeError(
                    f"resource {self.name!r}: {hook} must be a callable or a dotted name, "
                    f"got {type(fn).__name__}"
                )

    def _hook(self, name: str) -> Callable[..., Any] | None:
        fn = self.settings.get(name)
        return _import_dotted(fn) if isinstance(fn, str) else fn

    def describe(self, settings: Mapping[str, Any]) -> str:
        fn = settings.get("factory")
        label = fn if isinstance(fn, str) else getattr(fn, "__qualname__", repr(fn))
        return f"custom {label}"

    async def open(self, settings: dict[str, Any]) -> Any:
        factory = self._hook("factory")
        assert factory is not None  # checked in __post_init__
        obj = await _call(factory, **_kwargs(settings, *self._HOOKS))
        check = self._hook("health_check")
        if check is not None:
            try:
                healthy = await _call(check, obj)
                if healthy is False:
                    raise RuntimeError("health_check returned False")
            except BaseException:
                await self.close(obj)
                raise
        return obj

    async def close(self, obj: Any) -> None:
        cleanup = self._hook("cleanup")
        if cleanup is not None:
            await _call(cleanup, obj)
            return
        closer = getattr(obj, "aclose", None) or getattr(obj, "close", None)
        if callable(closer):
            await _call(closer)


# --------------------------------------------------------------------------- HTTP session


class HttpSession:
    """An aiohttp ``ClientSession`` that resolves relative URLs against ``base_url``.

    aiohttp's own ``base_url`` drops a base path unless the base ends in ``/`` and the
    path does not start with one; here ``"https://h/v1"`` + ``"/users"`` is
    ``"https://h/v1/users"``, as node code written for the guide expects. Absolute URLs
    pass through. Everything else is the session's own (``api.session``, or attribute
    access falls through to it).
    """

    def __init__(
        self,
        session: Any,
        base_url: str | None = None,
        *,
        name: str = "http",
        timeout: float | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/") if base_url else None
        self.name = name
        self._timeout = timeout
        # A query on the base (`?api_key=...`) goes on every request, before the path's own.
        self._base = urlsplit(self.base_url) if self.base_url else None

    def url_for(self, url: Any) -> Any:
        text = str(url)
        if self._base is None or "://" in text:
            return url
        base, own = self._base, urlsplit(text)
        path = base.path.rstrip("/")
        if own.path.strip("/"):
            path += "/" + own.path.lstrip("/")
        query = "&".join(q for q in (base.query, own.query) if q)
        return urlunsplit((base.scheme, base.netloc, path, query, own.fragment or base.fragment))

    def request(self, method: str, url: Any, **kwargs: Any) -> _Request:
        """``await api.request(...)`` gives the response; ``async with`` releases it."""
        return _Request(self, method.upper(), self.url_for(url), kwargs)

    def get(self, url: Any, **kwargs: Any) -> _Request:
        return self.request("GET", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> _Request:
        return self.request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> _Request:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> _Request:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> _Request:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: Any, **kwargs: Any) -> _Request:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: Any, **kwargs: Any) -> _Request:
        return self.request("OPTIONS", url, **kwargs)

    def ws_connect(self, url: Any, **kwargs: Any) -> Any:
        return self.session.ws_connect(self.url_for(url), **kwargs)

    @property
    def closed(self) -> bool:
        return bool(self.session.closed)

    async def close(self) -> None:
        await self.session.close()

    def __getattr__(self, attr: str) -> Any:
        if attr == "session":  # not set yet (copy, pickle): don't recurse
            raise AttributeError(attr)
        return getattr(self.session, attr)

    def __repr__(self) -> str:
        return mask(f"<HttpSession {self.name!r} base_url={self.base_url!r}>")


class _Request:
    """One request, started only when awaited or entered (so an unused one leaks nothing)."""

    __slots__ = ("_api", "_method", "_url", "_kwargs", "_cm")

    def __init__(self, api: HttpSession, method: str, url: Any, kwargs: dict[str, Any]) -> None:
        self._api = api
        self._method = method
        self._url = url
        self._kwargs = kwargs
        self._cm: Any = None

    def _start(self) -> Any:
        kwargs = self._kwargs
        timeout = kwargs.get("timeout")
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            import aiohttp

            # aiohttp wants a ClientTimeout; node code naturally writes timeout=5.
            kwargs = {**kwargs, "timeout": aiohttp.ClientTimeout(total=float(timeout))}
        return self._api.session.request(self._method, self._url, **kwargs)

    def _timed_out(self, exc: BaseException) -> BaseException:
        timeout = self._kwargs.get("timeout", self._api._timeout)
        limit = f" within {timeout} s" if isinstance(timeout, int | float) else ""
        message = mask(
            f"{self._method} {self._url}: no response{limit} (timeout of http resource "
            f"{self._api.name!r}; override with {env_name(self._api.name, 'timeout')})"
        )
        try:
            # Keep the class (aiohttp.ServerTimeoutError is also a ClientError) for retries.
            return type(exc)(message)
        except Exception:
            return TimeoutError(message)

    async def _send(self) -> Any:
        try:
            return await self._start()
        except TimeoutError as exc:
            raise self._timed_out(exc) from exc

    def __await__(self) -> Any:
        return self._send().__await__()

    async def __aenter__(self) -> Any:
        self._cm = self._start()
        try:
            return await self._cm.__aenter__()
        except TimeoutError as exc:
            raise self._timed_out(exc) from exc

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._cm.__aexit__(*exc_info)


# --------------------------------------------------------------------------- injection


class ResourceRegistry:
    """Instances and factories that stand in for declared resources (tests, mocks).

    An instance is used as is and never closed by kflow. A factory is called once per run
    that uses the name; its object is closed by ``cleanup`` (if given) when the run ends.
    """

    def __init__(self) -> None:
        self._instances: dict[str, Any] = {}
        self._factories: dict[str, tuple[Callable[[], Any], Callable[[Any], Any] | None]] = {}

    def register_instance(self, name: str, instance: Any) -> None:
        self._factories.pop(name, None)
        self._instances[name] = instance

    def register_factory(
        self,
        name: str,
        factory: Callable[[], Any],
        *,
        cleanup: Callable[[Any], Any] | None = None,
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory for {name!r} must be callable")
        self._instances.pop(name, None)
        self._factories[name] = (factory, cleanup)

    def __contains__(self, name: object) -> bool:
        return name in self._instances or name in self._factories

    def names(self) -> list[str]:
        return sorted({*self._instances, *self._factories})

    def instance(self, name: str) -> tuple[bool, Any]:
        """``(True, obj)`` for a registered instance, else ``(False, None)``."""
        if name in self._instances:
            return True, self._instances[name]
        return False, None

    def factory(self, name: str) -> tuple[Callable[[], Any], Callable[[Any], Any] | None] | None:
        return self._factories.get(name)


_UNSET: Any = object()

# The bound on opening a resource for a node without a timeout (the builder's default one).
DEFAULT_OPEN_TIMEOUT = 30.0
# The bound on closing any one resource (a cleanup hook that hangs cannot hold the run).
_CLOSE_TIMEOUT = 10.0


def _failure_text(exc: BaseException, bound: float, expired: bool) -> str:
    if expired:
        return f"no answer within {bound:g}s"
    if isinstance(exc, TimeoutError) and not str(exc):
        # asyncpg's connect timeout, redis's socket_connect_timeout: say how long it was.
        return f"{type(exc).__name__}: no answer within {bound:g}s"
    return mask(f"{type(exc).__name__}: {exc}")


# Variables already warned about, so a process running many runs says it once; and
# kflow's own variables, which no resource's settings could mean.
_WARNED: set[str] = set()
_SCANNED: set[tuple[int, int, tuple[str, ...]]] = set()
_OWN = frozenset({"KFLOW_LOG_LEVEL", "KFLOW_DASK_SCHEDULER"})


def warn_unknown_overrides(specs: Mapping[str, ResourceSpec], environ: Mapping[str, str]
                           ) -> list[str]:
    """Warn (once per variable) about a ``KFLOW_<RESOURCE>_<...>`` variable of a declared
    resource that overrides none of its settings: a misspelt override is otherwise
    silently ignored. Returns the warnings made now."""
    prefixes = sorted(((env_name(name, "") + "_", spec) for name, spec in specs.items()),
                      key=lambda p: -len(p[0]))
    made = []
    for var in environ:
        if not var.startswith("KFLOW_") or var in _WARNED or var in _OWN:
            continue
        for prefix, spec in prefixes:  # the longest name first: `main_db` before `main`
            if var.startswith(prefix):
                known = spec.env_names()
                if var not in known:
                    _WARNED.add(var)
                    import difflib

                    close = difflib.get_close_matches(var, known, n=1, cutoff=0.6)
                    hint = (f"did you mean {close[0]}?" if close else
                            f"its variables are {', '.join(sorted(known))}" if known else
                            "it has no settings to override")
                    text = (f"environment variable {var} is set, but resource {spec.name!r} "
                            f"has no setting it overrides: {hint}")
                    logger.warning("%s", text)
                    made.append(text)
                break
    return made


class Resources:
    """The resources of one run (or of a long-lived process that owns and closes it).

    ``get(name)`` looks in ``injected``, then ``registry``, then ``specs``; a spec or a
    registry factory is opened on first use, once, and closed by ``aclose()``.
    """

    def __init__(
        self,
        specs: Mapping[str, ResourceSpec],
        *,
        injected: Mapping[str, Any] | None = None,
        registry: ResourceRegistry | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._specs = dict(specs)
        self._injected = dict(injected or {})
        self._registry = registry
        self._environ = environ
        if self._specs:
            env = os.environ if environ is None else environ
            # Once per environment and set of resources: a process's runs share both.
            key = (id(env), len(env), tuple(self._specs))
            if key not in _SCANNED:
                _SCANNED.add(key)
                warn_unknown_overrides(self._specs, env)
        self._objects: dict[str, Any] = {}
        # What this object opened, in order, with how to close it: closed in reverse.
        self._opened: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        self._pending: dict[str, asyncio.Task[Any]] = {}
        self._closed = False

    @property
    def opened(self) -> tuple[str, ...]:
        """Names this object opened (and has not closed yet), in open order."""
        return tuple(name for name, _, _ in self._opened)

    def kind(self, name: str) -> str:
        """The declared kind of ``name`` (``"database"``, ``"http"``, ...) or ``"unknown"``."""
        spec = self._specs.get(name)
        return spec.kind if spec is not None else "unknown"

    async def get(self, name: str, timeout: float | None = None) -> Any:
        """The object for ``name``, opened on first use.

        ``timeout`` (the using node's timeout) bounds the open, connect included: drivers get
        it as their connect timeout unless one is declared, and an open still going when it
        passes fails with a ResourceError. None means DEFAULT_OPEN_TIMEOUT.
        """
        obj = self._objects.get(name, _UNSET)
        if obj is not _UNSET:
            return obj
        if name in self._injected:
            return self._injected[name]
        if self._registry is not None:
            found, instance = self._registry.instance(name)
            if found:
                return instance
        if self._closed:
            raise ResourceError(
                f"resource {name!r}: the resources of this run are already closed",
                resource=name,
            )
        task = self._pending.get(name)
        if task is None:
            emit("kflow.resource.open", {"kflow.resource.name": name,
                                         "kflow.resource.kind": self.kind(name)})
            opener = self._opener(name)
            bound = DEFAULT_OPEN_TIMEOUT if timeout is None else timeout
            # A task, not inline: if the first caller is cancelled (a node timeout), the
            # others waiting for the same resource still get it.
            task = asyncio.get_running_loop().create_task(
                opener(bound), name=f"kflow-open-{name}"
            )
            task.add_done_callback(lambda t, name=name: self._settled(name, t))
            self._pending[name] = task
        return await asyncio.shield(task)

    def where(self, name: str) -> str | None:
        """What ``name`` points at (``postgresql host:port/db``), for messages; None if unknown."""
        spec = self._specs.get(name)
        if spec is None:
            return None
        environ = os.environ if self._environ is None else self._environ
        try:
            return spec.describe(spec.resolved_settings(environ))
        except Exception:  # noqa: BLE001 - only for a message
            return spec.kind

    def _settled(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._pending.get(name) is task:
            # Failed or done: a later get() opens again (or finds the object).
            del self._pending[name]
        if not task.cancelled():
            task.exception()  # retrieved even if every waiter was cancelled

    def _opener(self, name: str) -> Callable[[float], Any]:
        factory = self._registry.factory(name) if self._registry is not None else None
        if factory is not None:
            make, cleanup = factory

            async def open_factory(bound: float) -> Any:
                scope = asyncio.timeout(bound)
                try:
                    async with scope:
                        obj = await _call(make)
                except BaseException as exc:
                    if is_cancellation(exc):
                        raise
                    raise ResourceError(
                        f"resource {name!r} (registry factory): could not create: "
                        f"{_failure_text(exc, bound, scope.expired())}",
                        resource=name,
                        where="registry factory",
                    ) from exc
                return self._keep(name, obj, cleanup)

            return open_factory

        spec = self._specs.get(name)
        if spec is None:
            raise ResourceError(
                f"resource {name!r} is neither declared nor injected: declare it on the "
                f"builder (with_database / with_http_client / with_cache / require_resource) "
                f"or inject it via run(resources={{{name!r}: obj}}) or a ResourceRegistry",
                resource=name,
            )

        async def open_spec(bound: float) -> Any:
            environ = os.environ if self._environ is None else self._environ
            settings = spec.resolved_settings(environ)
            where = spec.describe(settings)
            connect = spec.connect_timeout_setting
            if connect is not None and settings.get(connect) is None:
                settings[connect] = bound
            # Bounded here too, not only by the node: the open is shared and shielded, so
            # without its own bound it would outlive a node that gave up on it.
            scope = asyncio.timeout(bound)
            try:
                async with scope:
                    obj = await spec.open(settings)
            except BaseException as exc:
                if is_cancellation(exc):
                    raise
                raise ResourceError(
                    f"resource {name!r} ({where}): {spec.open_failure}: "
                    f"{_failure_text(exc, bound, scope.expired())}",
                    resource=name,
                    where=where,
                ) from exc
            return self._keep(name, obj, spec.close)

        return open_spec

    def _keep(self, name: str, obj: Any, closer: Callable[[Any], Any] | None) -> Any:
        self._objects[name] = obj
        self._opened.append((name, obj, closer))
        return obj

    async def aclose(self) -> None:
        """Close what this object opened, newest first; a failing close is logged, not raised."""
        if self._closed and not self._opened and not self._pending:
            return
        self._closed = True
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        cancelled: BaseException | None = None
        if pending:
            try:
                await asyncio.gather(*pending, return_exceptions=True)
            except asyncio.CancelledError as exc:
                cancelled = exc
        while self._opened:
            name, obj, closer = self._opened.pop()
            self._objects.pop(name, None)
            if closer is None:
                continue
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await _call(closer, obj)
            except asyncio.CancelledError as exc:
                cancelled = exc  # finish closing the rest, then honour the cancellation
            except TimeoutError:
                logger.warning("resource %r: close did not finish within %.0f s; left behind",
                               name, _CLOSE_TIMEOUT)
            except Exception:
                logger.warning("resource %r: close failed", name, exc_info=True)
        if cancelled is not None:
            raise cancelled

    async def __aenter__(self) -> Resources:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
