"""Resources without services: env naming and overrides, secrets, lazy lifecycle, injection.

Lifecycle tests use real CustomResource resources whose factories record what happened; the
services themselves are covered in test_resources_services.py.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kflow_runtime.resources import (
    Cache,
    CustomResource,
    Database,
    HttpClient,
    ResourceError,
    ResourceRegistry,
    Resources,
    ResourceSpec,
    Secret,
    env_name,
)

# --------------------------------------------------------------------------- env_name


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("db", "password"), "KFLOW_DB_PASSWORD"),
        (("db", "host"), "KFLOW_DB_HOST"),
        (
            ("authenticated_api", "headers", "Authorization"),
            "KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION",
        ),
        (("api", "headers", "X-Api-Key"), "KFLOW_API_HEADERS_X_API_KEY"),
        (("my-api.v2", "base_url"), "KFLOW_MY_API_V2_BASE_URL"),
        (("a--b", "c  d"), "KFLOW_A_B_C_D"),
        (
            ("db", "server_settings", "application_name"),
            "KFLOW_DB_SERVER_SETTINGS_APPLICATION_NAME",
        ),
        (("api", "headers", "Authorization:"), "KFLOW_API_HEADERS_AUTHORIZATION"),
    ],
)
def test_env_name(args: tuple[str, ...], expected: str) -> None:
    assert env_name(*args) == expected


# --------------------------------------------------------------------------- overrides


def test_declared_settings_are_overridden_and_coerced_to_their_type() -> None:
    spec = Database("db", {"host": "db.internal", "port": 5432, "min_size": 2, "database": "app"})
    env = {"KFLOW_DB_HOST": "other", "KFLOW_DB_PORT": "6543", "KFLOW_DB_MIN_SIZE": "3"}
    assert spec.resolved_settings(env) == {
        "host": "other",
        "port": 6543,
        "min_size": 3,
        "database": "app",
    }
    # The spec itself is untouched: a later run with another environment starts fresh.
    assert spec.resolved_settings({}) == dict(spec.settings)


def test_known_but_undeclared_settings_get_their_type() -> None:
    spec = Database("db", {"database": "app"})
    env = {"KFLOW_DB_PORT": "5433", "KFLOW_DB_COMMAND_TIMEOUT": "2.5", "KFLOW_DB_USER": "svc"}
    assert spec.resolved_settings(env) == {
        "database": "app",
        "port": 5433,
        "command_timeout": 2.5,
        "user": "svc",
    }


def test_unknown_undeclared_variables_are_not_picked_up() -> None:
    # KFLOW_DB_MAIN_HOST belongs to a resource "db_main", not to a setting "main_host" of "db".
    spec = Database("db", {})
    assert spec.resolved_settings({"KFLOW_DB_MAIN_HOST": "x", "KFLOW_DB_FOO": "1"}) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("1", True),
        ("YES", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("off", False),
        ("no", False),
    ],
)
def test_bool_coercion(text: str, expected: bool) -> None:
    spec = HttpClient("api", {"raise_for_status": False})
    assert spec.resolved_settings({"KFLOW_API_RAISE_FOR_STATUS": text}) == {
        "raise_for_status": expected
    }


def test_int_declared_float_setting_accepts_a_fraction() -> None:
    spec = HttpClient("api", {"timeout": 30})
    assert spec.resolved_settings({"KFLOW_API_TIMEOUT": "45"}) == {"timeout": 45}
    assert spec.resolved_settings({"KFLOW_API_TIMEOUT": "2.5"}) == {"timeout": 2.5}


@pytest.mark.parametrize(
    ("spec", "var", "text", "words"),
    [
        (Database("db", {"port": 5432}), "KFLOW_DB_PORT", "abc", "an integer"),
        (Database("db", {}), "KFLOW_DB_PORT", "5432x", "an integer"),
        (HttpClient("api", {"timeout": 1.5}), "KFLOW_API_TIMEOUT", "soon", "a number"),
        (
            HttpClient("api", {"raise_for_status": True}),
            "KFLOW_API_RAISE_FOR_STATUS",
            "maybe",
            "a boolean",
        ),
    ],
)
def test_bad_override_names_the_variable(
    spec: ResourceSpec, var: str, text: str, words: str
) -> None:
    with pytest.raises(ResourceError) as err:
        spec.resolved_settings({var: text})
    message = str(err.value)
    assert var in message and words in message and repr(spec.name) in message


def test_dict_setting_per_key_override() -> None:
    spec = HttpClient(
        "authenticated_api",
        {"headers": {"Authorization": "Bearer your-token", "User-Agent": "MyApp/1.0"}},
    )
    env = {"KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION": "Bearer real"}
    assert spec.resolved_settings(env)["headers"] == {
        "Authorization": "Bearer real",
        "User-Agent": "MyApp/1.0",
    }


def test_dict_setting_whole_json_then_per_key() -> None:
    spec = Database("db", {"server_settings": {"application_name": "declared"}})
    env = {
        "KFLOW_DB_SERVER_SETTINGS": '{"application_name": "json", "search_path": "s1"}',
        "KFLOW_DB_SERVER_SETTINGS_SEARCH_PATH": "s2",
    }
    assert spec.resolved_settings(env)["server_settings"] == {
        "application_name": "json",
        "search_path": "s2",
    }


def test_whole_json_for_an_undeclared_dict_setting() -> None:
    spec = HttpClient("api", {"base_url": "https://h"})
    settings = spec.resolved_settings({"KFLOW_API_HEADERS": '{"X-Trace": "1"}'})
    assert settings == {"base_url": "https://h", "headers": {"X-Trace": "1"}}


def test_bad_json_override_does_not_echo_its_content() -> None:
    spec = HttpClient("api", {"headers": {}})
    with pytest.raises(ResourceError) as err:
        spec.resolved_settings({"KFLOW_API_HEADERS": '{"Authorization": "Bearer sekrit"'})
    assert "KFLOW_API_HEADERS" in str(err.value) and "JSON" in str(err.value)
    assert "sekrit" not in str(err.value)
    with pytest.raises(ResourceError, match="JSON object"):
        spec.resolved_settings({"KFLOW_API_HEADERS": "[1, 2]"})


def test_callables_are_not_overridable() -> None:
    def factory() -> int:
        return 1

    spec = CustomResource("thing", {"factory": factory, "size": 1})
    settings = spec.resolved_settings({"KFLOW_THING_FACTORY": "os.getcwd", "KFLOW_THING_SIZE": "7"})
    assert settings == {"factory": factory, "size": 7}


# --------------------------------------------------------------------------- secrets


def test_secret_repr_and_equality() -> None:
    assert repr(Secret("KFLOW_DB_PASSWORD")) == "Secret('KFLOW_DB_PASSWORD')"
    assert Secret("A") == Secret("A") and Secret("A") != Secret("B")
    spec = Database("db", {"password": Secret("KFLOW_DB_PASSWORD")})
    # The spec's repr is what a generated module contains: the variable, never a value.
    assert "Secret('KFLOW_DB_PASSWORD')" in repr(spec)


def test_secrets_resolve_at_top_level_and_nested() -> None:
    spec = HttpClient(
        "api",
        {
            "base_url": "https://h",
            "headers": {"Authorization": Secret("KFLOW_API_HEADERS_AUTHORIZATION"), "A": "b"},
            "auth_list": [Secret("TOKEN_A"), "plain"],
        },
    )
    env = {"KFLOW_API_HEADERS_AUTHORIZATION": "Bearer t", "TOKEN_A": "a"}
    assert spec.resolved_settings(env) == {
        "base_url": "https://h",
        "headers": {"Authorization": "Bearer t", "A": "b"},
        "auth_list": ["a", "plain"],
    }


def test_env_override_replaces_a_secret() -> None:
    spec = Database("db", {"password": Secret("SOME_VAULT_VAR")})
    assert spec.resolved_settings({"KFLOW_DB_PASSWORD": "from-override"}) == {
        "password": "from-override"
    }


@pytest.mark.parametrize(
    "spec",
    [
        Database("db", {"password": Secret("KFLOW_DB_PASSWORD")}),
        HttpClient("db", {"headers": {"Authorization": Secret("KFLOW_DB_PASSWORD")}}),
    ],
)
def test_missing_secret_names_the_variable(spec: ResourceSpec) -> None:
    with pytest.raises(ResourceError) as err:
        spec.resolved_settings({})
    message = str(err.value)
    assert "KFLOW_DB_PASSWORD" in message and "'db'" in message and "not set" in message
    assert err.value.resource == "db"


async def test_missing_secret_fails_get_before_opening() -> None:
    opened: list[str] = []
    spec = CustomResource("svc", {"factory": lambda token: opened.append(token), "token": Secret("NOPE")})
    async with Resources({"svc": spec}, environ={}) as res:
        with pytest.raises(ResourceError, match="NOPE"):
            await res.get("svc")
    assert opened == []


async def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFLOW_THING_SIZE", "5")
    monkeypatch.setenv("KFLOW_THING_TOKEN", "t0k")
    spec = CustomResource(
        "thing",
        {
            "factory": lambda size, token: (size, token),
            "size": 1,
            "token": Secret("KFLOW_THING_TOKEN"),
        },
    )
    async with Resources({"thing": spec}) as res:
        assert await res.get("thing") == (5, "t0k")


# --------------------------------------------------------------------------- describe


def test_describe() -> None:
    db = Database("db", {})
    assert db.describe({"host": "127.0.0.1", "port": 5432, "database": "test"}) == (
        "postgresql 127.0.0.1:5432/test"
    )
    assert db.describe({}) == "postgresql localhost:5432"
    described = db.describe({"dsn": "postgresql://u:hunter2@pg.internal:6000/app"})
    assert described == "postgresql pg.internal:6000/app"
    assert HttpClient("api", {}).describe({"base_url": "https://api.example.com"}) == (
        "http https://api.example.com"
    )
    assert "hunter2" not in HttpClient("api", {}).describe({"base_url": "https://u:hunter2@h/"})
    cache = Cache("cache", {})
    assert cache.describe({"host": "127.0.0.1"}) == "redis 127.0.0.1:6379/0"
    assert cache.describe({"url": "redis://:pw@r.internal:6380/2"}) == "redis r.internal:6380/2"


def test_specs_validate_when_built() -> None:
    with pytest.raises(TypeError, match="factory"):
        CustomResource("x", {})
    with pytest.raises(TypeError, match="cleanup"):
        CustomResource("x", {"factory": dict, "cleanup": 3})
    with pytest.raises(TypeError, match="name"):
        Database("", {})


# --------------------------------------------------------------------------- lifecycle


class Tracker:
    """CustomResource-resource factories and cleanups that write what happened into one log."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def spec(self, name: str, *, fail_close: bool = False) -> CustomResource:
        async def factory() -> dict[str, str]:
            self.log.append(f"open {name}")
            return {"name": name}

        async def cleanup(obj: dict[str, str]) -> None:
            self.log.append(f"close {name}")
            if fail_close:
                raise RuntimeError(f"cannot close {name}")

        return CustomResource(name, {"factory": factory, "cleanup": cleanup})


async def test_a_spec_never_used_is_never_opened() -> None:
    t = Tracker()
    res = Resources({"a": t.spec("a"), "b": t.spec("b")})
    assert (await res.get("a")) == {"name": "a"}
    assert (await res.get("a")) is (await res.get("a"))
    await res.aclose()
    assert t.log == ["open a", "close a"]


async def test_concurrent_first_get_opens_once() -> None:
    calls = 0
    started, release = asyncio.Event(), asyncio.Event()

    async def factory() -> object:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return object()

    async with Resources({"x": CustomResource("x", {"factory": factory})}) as res:
        getters = [asyncio.create_task(res.get("x")) for _ in range(10)]
        await started.wait()
        release.set()
        objs = await asyncio.gather(*getters)
    assert calls == 1
    assert all(o is objs[0] for o in objs)


async def test_first_getter_cancelled_others_still_get_the_resource() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def factory() -> str:
        started.set()
        await release.wait()
        return "ok"

    async with Resources({"x": CustomResource("x", {"factory": factory})}) as res:
        first = asyncio.create_task(res.get("x"))
        await started.wait()
        second = asyncio.create_task(res.get("x"))
        first.cancel()
        release.set()
        assert await second == "ok"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert res.opened == ("x",)


async def test_failed_open_is_wrapped_and_a_later_get_tries_again() -> None:
    attempts = 0

    def factory() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ValueError("boom")
        return "second time"

    async with Resources({"x": CustomResource("x", {"factory": factory})}) as res:
        with pytest.raises(ResourceError) as err:
            await res.get("x")
        assert str(err.value).startswith("resource 'x' (custom ")
        assert "could not create: ValueError: boom" in str(err.value)
        assert isinstance(err.value.__cause__, ValueError)
        assert res.opened == ()
        assert await res.get("x") == "second time"


async def test_aclose_closes_in_reverse_order_and_is_idempotent() -> None:
    t = Tracker()
    res = Resources({n: t.spec(n) for n in "abc"})
    for name in ("b", "a", "c"):
        await res.get(name)
    await res.aclose()
    await res.aclose()
    assert t.log == ["open b", "open a", "open c", "close c", "close a", "close b"]
    assert res.opened == ()


async def test_a_failing_close_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    t = Tracker()
    res = Resources({"a": t.spec("a"), "b": t.spec("b", fail_close=True), "c": t.spec("c")})
    for name in "abc":
        await res.get(name)
    with caplog.at_level(logging.WARNING, logger="kflow_runtime.resources"):
        await res.aclose()
    assert t.log[3:] == ["close c", "close b", "close a"]
    assert any("'b'" in r.getMessage() and "close failed" in r.getMessage() for r in caplog.records)


async def test_get_after_aclose_is_an_error() -> None:
    t = Tracker()
    res = Resources({"a": t.spec("a")})
    await res.aclose()
    with pytest.raises(ResourceError, match="already closed"):
        await res.get("a")
    assert t.log == []


async def test_aclose_cancels_an_open_in_progress() -> None:
    started = asyncio.Event()
    cleaned: list[str] = []

    async def factory() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("factory unwound")

    res = Resources({"x": CustomResource("x", {"factory": factory})})
    getter = asyncio.create_task(res.get("x"))
    await started.wait()
    await res.aclose()
    assert cleaned == ["factory unwound"]
    with pytest.raises(asyncio.CancelledError):
        await getter


async def test_unknown_name_tells_how_to_provide_it() -> None:
    async with Resources({}) as res:
        with pytest.raises(ResourceError) as err:
            await res.get("payments")
    message = str(err.value)
    assert "'payments'" in message and "run(resources=" in message and "declare" in message


async def test_custom_sync_hooks_kwargs_and_default_close() -> None:
    class Conn:
        def __init__(self, size: int) -> None:
            self.size = size
            self.closed = False

        async def aclose(self) -> None:
            self.closed = True

    res = Resources({"c": CustomResource("c", {"factory": Conn, "size": 3})})
    conn = await res.get("c")
    assert conn.size == 3
    await res.aclose()
    assert conn.closed  # no cleanup given: the object's own aclose()


async def test_custom_dotted_factory_and_health_check() -> None:
    res = Resources({"od": CustomResource("od", {"factory": "collections:OrderedDict"})})
    assert type(await res.get("od")).__name__ == "OrderedDict"
    await res.aclose()

    closed: list[Any] = []
    spec = CustomResource(
        "h",
        {"factory": lambda: "obj", "health_check": lambda obj: False, "cleanup": closed.append},
    )
    async with Resources({"h": spec}) as res:
        with pytest.raises(ResourceError, match="health_check returned False"):
            await res.get("h")
    assert closed == ["obj"]  # an unhealthy object is still closed


# --------------------------------------------------------------------------- injection


class Closable:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_injected_object_wins_and_is_never_closed() -> None:
    t = Tracker()
    fake = Closable()
    async with Resources({"db": t.spec("db")}, injected={"db": fake}) as res:
        assert await res.get("db") is fake
        assert res.opened == ()
    assert not fake.closed and t.log == []


async def test_registry_instance_and_factory() -> None:
    registry = ResourceRegistry()
    instance = Closable()
    made: list[Closable] = []
    cleaned: list[Closable] = []

    def factory() -> Closable:
        made.append(Closable())
        return made[-1]

    registry.register_instance("db", instance)
    registry.register_factory("api", factory, cleanup=cleaned.append)
    assert "db" in registry and "api" in registry and "cache" not in registry
    assert registry.names() == ["api", "db"]

    t = Tracker()
    specs = {"db": t.spec("db"), "api": t.spec("api")}
    for _ in range(2):
        async with Resources(specs, registry=registry) as res:
            assert await res.get("db") is instance
            api = await res.get("api")
            assert await res.get("api") is api
    # Each run gets its own factory object, cleaned up at its end; the instance is left alone.
    assert len(made) == 2 and cleaned == made
    assert not instance.closed and t.log == []


async def test_injected_beats_registry_beats_spec() -> None:
    registry = ResourceRegistry()
    registry.register_instance("x", "from registry")
    registry.register_instance("y", "from registry")
    t = Tracker()
    specs = {"x": t.spec("x"), "y": t.spec("y"), "z": t.spec("z")}
    async with Resources(specs, injected={"x": "injected"}, registry=registry) as res:
        assert await res.get("x") == "injected"
        assert await res.get("y") == "from registry"
        assert await res.get("z") == {"name": "z"}


async def test_registry_factory_failure_is_a_resource_error() -> None:
    registry = ResourceRegistry()

    async def factory() -> None:
        raise ConnectionError("down")

    registry.register_factory("svc", factory)
    async with Resources({}, registry=registry) as res:
        with pytest.raises(ResourceError, match="'svc'.*ConnectionError: down"):
            await res.get("svc")


def test_importing_resources_does_not_import_drivers() -> None:
    code = (
        "import sys, kflow_runtime.resources, kflow_runtime.resource_ops; "
        "bad = [m for m in ('asyncpg', 'aiohttp', 'redis', 'compiler', 'libcst', 'jinja2', "
        "'black', 'click') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_misspelt_override_variable_is_warned_about_once(caplog, monkeypatch) -> None:
    # Issue 14.12: KFLOW_DB_HOTS would otherwise be ignored without a word.
    import kflow_runtime.resources as resources

    monkeypatch.setattr(resources, "_WARNED", set())
    monkeypatch.setattr(resources, "_SCANNED", set())
    specs = {"db": Database("db", {"host": "localhost"}),
             "main_db": Database("main_db", {"database": "app"})}
    environ = {"KFLOW_DB_HOTS": "x", "KFLOW_DB_HOST": "h", "KFLOW_MAIN_DB_DATABSE": "a",
               "KFLOW_MAIN_DB_PORT": "5433", "KFLOW_LOG_LEVEL": "INFO", "KFLOW_OTHER_X": "1"}
    with caplog.at_level(logging.WARNING, logger="kflow_runtime"):
        Resources(specs, environ=environ)
        Resources(specs, environ=environ)  # a second run says nothing more
    assert sorted(r.getMessage() for r in caplog.records) == [
        "environment variable KFLOW_DB_HOTS is set, but resource 'db' has no setting it "
        "overrides: did you mean KFLOW_DB_HOST?",
        "environment variable KFLOW_MAIN_DB_DATABSE is set, but resource 'main_db' has no "
        "setting it overrides: did you mean KFLOW_MAIN_DB_DATABASE?",
    ]
