"""Pytest plugin: fixtures for the real services of the test setup.

- ``pg_dsn`` / ``redis_url`` (session): where PostgreSQL and Redis are
  (``KFLOW_TEST_PG_DSN``, ``KFLOW_TEST_REDIS_URL``). Unreachable -> the test is skipped,
  or fails under ``KFLOW_REQUIRE_SERVICES=1`` (set by ``.ci/run``).
- ``pg_pool``, ``pg_conn``, ``redis_client``: ready-made clients, closed after the test.
- ``unique_name``: a per-test prefix for tables and keys (``kflow_<test>_<hex>``).
- ``store_url`` (SQLite file, and PostgreSQL marked ``services``) / ``pg_store_url``: a fresh
  checkpoint store URL; a PostgreSQL store gets a schema of the test's own, dropped after.
- ``free_port``: a local port with nothing listening (for "connection refused" tests).
- ``http_app_server``: ``await http_app_server(app)`` serves your ``aiohttp.web.Application``
  on 127.0.0.1 and returns its base URL.
- ``http_server``: a ready app (routes below, also under ``/v1``) with a request log.
- ``no_leaks``: ``with no_leaks(): await work()`` fails if anything created inside was left
  unclosed (ResourceWarning such as "Unclosed client session", asyncpg's "unclosed
  connection", or asyncio's "Unclosed ..." log). Run the work in a coroutine whose locals
  are gone when the block ends, so garbage collection can find what leaked. Objects that
  the event loop still references (an open asyncpg or Redis connection) never reach
  garbage collection: count their sockets with ``open_connections`` instead.
- ``open_connections``: ``open_connections(port)`` counts this process's TCP connections to
  ``port`` (Linux /proc; the test is skipped elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import socket
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_CHECK_TIMEOUT = 5.0


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _unavailable(what: str, env: str, url: str, exc: BaseException) -> None:
    message = (
        f"{what} not reachable at {_masked(url)} ({type(exc).__name__}: {exc}); "
        f"start it or point {env} at one"
    )
    if os.environ.get("KFLOW_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (KFLOW_REQUIRE_SERVICES=1, so this is a failure)", pytrace=False)
    pytest.skip(message)


async def _check_pg(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=_CHECK_TIMEOUT)
    await conn.close()


async def _check_redis(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=_CHECK_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("KFLOW_TEST_PG_DSN", DEFAULT_PG_DSN)
    try:
        # Sync fixture on its own short-lived loop: session scope outlives any test's loop.
        asyncio.run(_check_pg(dsn))
    except Exception as exc:
        _unavailable("PostgreSQL", "KFLOW_TEST_PG_DSN", dsn, exc)
    return dsn


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("KFLOW_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        asyncio.run(_check_redis(url))
    except Exception as exc:
        _unavailable("Redis", "KFLOW_TEST_REDIS_URL", url, exc)
    return url


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[Any]:
    import asyncpg

    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def pg_conn(pg_dsn: str) -> AsyncIterator[Any]:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """``kflow_<test name>_<8 hex>``: a valid SQL identifier and Redis key prefix."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:30]
    return f"kflow_{stem}_{uuid.uuid4().hex[:8]}"


def pg_url(dsn: str, schema: str) -> str:
    """The checkpoint store URL of `dsn` with its tables in `schema`."""
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


async def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def pg_store_url(pg_dsn: str, unique_name: str) -> Iterator[str]:
    """A PostgreSQL checkpoint store in a schema of this test's own."""
    yield pg_url(pg_dsn, unique_name)
    asyncio.run(drop_schema(pg_dsn, unique_name))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh checkpoint store: a SQLite file under tmp_path, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "runs.db")
    else:
        yield request.getfixturevalue("pg_store_url")


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _no_leaks() -> Iterator[None]:
    collector = _LogCollector()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(collector)
    try:
        with warnings.catch_warnings(record=True) as caught:
            # ResourceWarning is ignored by default; these are exactly what we look for.
            warnings.simplefilter("always", ResourceWarning)
            yield
            gc.collect()
    finally:
        asyncio_log.removeHandler(collector)
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    leaks += [m for m in collector.messages if "nclosed" in m]
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            # Recording swallowed them; hand them back to pytest's own summary.
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    assert not leaks, f"left open: {leaks}"


@pytest.fixture
def no_leaks() -> Callable[[], contextlib.AbstractContextManager[None]]:
    return _no_leaks


def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _connections_to(port: int) -> int:
    mine = _own_socket_inodes()
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            # fields[3] is the TCP state; 0A is LISTEN, which is not a connection.
            if remote_port == port and fields[3] != "0A" and fields[9] in mine:
                count += 1
    return count


@pytest.fixture
def open_connections() -> Callable[[int], int]:
    if not os.path.isdir("/proc/self/fd") or not os.path.exists("/proc/net/tcp"):
        pytest.skip("counting open connections needs Linux /proc")
    return _connections_to


@pytest.fixture
async def http_app_server() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """``url = await http_app_server(app)``: serve ``app`` on 127.0.0.1, stopped after the test.

    The URL has no trailing slash (``http://127.0.0.1:PORT``). A handler still running at
    teardown is cancelled, so a hanging endpoint does not hold up the test.
    """
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


# --------------------------------------------------------------------------- http_server

USERS = [
    {"id": 1, "name": "Ada", "email": "ada@example.com"},
    {"id": 2, "name": "Grace", "email": "grace@example.com"},
    {"id": 3, "name": "Linus", "email": "linus@example.com"},
]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]


@dataclass
class LocalHttpServer:
    """The ``http_server`` fixture's server.

    Routes (each also under ``/v1``, to test a base URL with a path):
    ``GET /users`` (USERS), ``GET /users/{id}/profile``, ``* /status/{code}`` (that status,
    JSON body), ``* /echo`` (method, path, query, JSON body), ``GET /headers`` (request
    headers), ``GET /text`` (text/plain), ``GET /hang`` (waits until the test ends),
    ``GET /gate`` (waits for ``release_gate()``; counts requests in flight).
    """

    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    _gate: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def release_gate(self) -> None:
        self._gate.set()

    async def wait_in_flight(self, count: int) -> None:
        """Return once ``count`` /gate requests are being handled at the same time."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight >= count)

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, dict(request.headers), dict(request.query)
                )
            )
            return await handler(request)

        app = web.Application(middlewares=[record])
        for prefix in ("", "/v1"):
            app.router.add_get(f"{prefix}/users", self._users)
            app.router.add_get(f"{prefix}/users/{{id}}/profile", self._profile)
            app.router.add_route("*", f"{prefix}/status/{{code}}", self._status)
            app.router.add_route("*", f"{prefix}/echo", self._echo)
            app.router.add_get(f"{prefix}/headers", self._headers)
            app.router.add_get(f"{prefix}/text", self._text)
            app.router.add_get(f"{prefix}/hang", self._hang)
            app.router.add_get(f"{prefix}/gate", self._gate_handler)
        return app

    async def _users(self, request: web.Request) -> web.Response:
        return web.json_response(USERS)

    async def _profile(self, request: web.Request) -> web.Response:
        uid = int(request.match_info["id"])
        if not any(u["id"] == uid for u in USERS):
            return web.json_response({"error": "no such user"}, status=404)
        return web.json_response({"id": uid, "bio": f"user {uid}", "path": request.path})

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"status": code}, status=code)

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "json": body,
            }
        )

    async def _headers(self, request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers)})

    async def _text(self, request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def _hang(self, request: web.Request) -> web.Response:
        await self._stop.wait()
        return web.Response(text="released")

    async def _gate_handler(self, request: web.Request) -> web.Response:
        async with self._changed:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self._changed.notify_all()
        try:
            await self._gate.wait()
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()
        return web.json_response({"ok": True})


@pytest.fixture
async def http_server(
    http_app_server: Callable[[web.Application], Awaitable[str]],
) -> AsyncIterator[LocalHttpServer]:
    server = LocalHttpServer()
    server.url = await http_app_server(server.app())
    yield server
    # Let waiting handlers finish before the runner shuts down.
    server._stop.set()
    server.release_gate()


async def settle(read: Callable[[], Any], want: Any) -> Any:
    """``read()`` (a value or an awaitable) once it equals ``want``, or its last value
    after a generous wait: sockets and server backends go away a moment after close()."""
    for _ in range(200):
        value = read()
        if asyncio.iscoroutine(value):
            value = await value
        if value == want:
            break
        await asyncio.sleep(0.05)
    return value


async def run_script(
    script: Path, environ: dict[str, str], *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    """``python script args`` (a generated module) with ``environ`` on top of a
    KFLOW_-free environment, run without blocking this event loop (the test's servers
    run on it): exit code, the envelope printed (None if nothing was), stderr."""
    import json
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(environ)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args, cwd=str(script.parent), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    text = out.decode()
    return proc.returncode, (json.loads(text) if text.strip() else None), err.decode()


def pg_settings(dsn: str, **extra: Any) -> dict[str, Any]:
    """The DSN as separate settings, the way a workflow declares with_database(...)."""
    parts = urlsplit(dsn)
    settings: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "database": parts.path.lstrip("/") or "test",
        "user": parts.username or "postgres",
    }
    if parts.password:
        settings["password"] = parts.password
    return {**settings, **extra}


# --------------------------------------------------------------------------- fault injection
#
# Servers of our own, for tests that freeze (SIGSTOP) or kill (SIGKILL) them: the shared
# PostgreSQL and Redis are never touched. Each lives for the session and is thawed (and
# restarted if killed) after every test that used it.
#
# - ``fault_pg``: a throwaway PostgreSQL cluster on a free port (``log_statement=all``, so a
#   test can read what the driver sent in ``fault_pg.log()``); ``.dsn``, ``.port``,
#   ``.freeze()`` / ``.thaw()`` / ``.kill()``, ``await .backends(app_name)``.
# - ``fault_redis``: a redis-server on a free port; ``.url``, ``.port``, freeze/thaw/kill.
# - ``silent_server``: ``await silent_server()`` is the port of a TCP server that accepts
#   connections and never answers (``.accepted`` counts them).
# - ``pg_backends(pg_conn, app_name)``: backends of PostgreSQL with that application_name.

_PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _pg_bin() -> Path | None:
    found = sorted(Path("/").glob(_PG_BIN_GLOB.lstrip("/")), key=lambda p: p.parent.name)
    for candidate in reversed(found):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal_all(pids: list[int], signum: int) -> None:
    import signal as _signal

    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    if signum == _signal.SIGKILL:
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)


class _FaultServer:
    """Freeze, thaw and kill a server by its processes."""

    frozen = False
    killed = False

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        import signal as _signal

        _signal_all(self.pids(), _signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        import signal as _signal

        if self.frozen:
            _signal_all(self.pids(), _signal.SIGCONT)
            self.frozen = False

    def kill(self) -> None:
        import signal as _signal

        pids = self.pids()
        _signal_all(pids, _signal.SIGCONT)
        _signal_all(pids, _signal.SIGKILL)
        self.frozen = False
        self.killed = True


class PostgresInstance(_FaultServer):
    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _as_owner(self, *cmd: str) -> list[str]:
        # initdb and postgres refuse to run as root: run them as the postgres user then.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return list(cmd)

    def _run(self, *cmd: str) -> None:
        import subprocess

        subprocess.run(self._as_owner(*cmd), check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.root, "postgres")
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   "-c fsync=off -c log_statement=all -c log_connections=on "
                   "-c log_disconnections=on -c log_line_prefix='%m [%p] app=%a '")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "server.log"), "-w", "-t", "30", "start")
        self.killed = False

    def stop(self) -> None:
        self.thaw()
        if not self.killed:
            with contextlib.suppress(Exception):
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m",
                          "immediate", "-w", "stop")

    def postmaster(self) -> int | None:
        try:
            with open(self.data / "postmaster.pid") as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def pids(self) -> list[int]:
        pid = self.postmaster()
        return [] if pid is None else [pid, *_children(pid)]

    def log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")

    async def backends(self, app_name: str) -> int:
        import asyncpg

        conn = await asyncpg.connect(self.dsn, timeout=_CHECK_TIMEOUT)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name))
        finally:
            await conn.close()


class RedisInstance(_FaultServer):
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: Any = None

    def start(self) -> None:
        import subprocess
        import time

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            time.sleep(0.05)
        self.killed = False

    def pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid]

    def stop(self) -> None:
        self.thaw()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _fault_pg_server() -> Iterator[PostgresInstance]:
    bin_dir = _pg_bin()
    if bin_dir is None or not os.path.isdir("/proc"):
        _unavailable("a PostgreSQL installation (initdb, pg_ctl)", "PATH", _PG_BIN_GLOB,
                     FileNotFoundError("not found"))
    import shutil
    import tempfile

    # Not under pytest's temporary directory: that is private to this user, and the server
    # may run as the postgres user.
    root = Path(tempfile.mkdtemp(prefix="kflow-fault-pg-"))
    server = PostgresInstance(bin_dir, root, _port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fault_pg(_fault_pg_server: PostgresInstance) -> Iterator[PostgresInstance]:
    yield _fault_pg_server
    _fault_pg_server.thaw()
    if _fault_pg_server.killed or _fault_pg_server.postmaster() is None:
        _fault_pg_server.start()


@pytest.fixture(scope="session")
def _fault_redis_server() -> Iterator[RedisInstance]:
    import shutil

    if shutil.which("redis-server") is None:
        _unavailable("redis-server", "PATH", "redis-server", FileNotFoundError("not found"))
    server = RedisInstance(_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_redis(_fault_redis_server: RedisInstance) -> Iterator[RedisInstance]:
    yield _fault_redis_server
    _fault_redis_server.thaw()
    if _fault_redis_server.killed or not _fault_redis_server.pids():
        _fault_redis_server.start()


class _Silent(asyncio.Protocol):
    def __init__(self, owner: SilentServer) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner.accepted += 1
        self.owner.transports.append(transport)


@dataclass
class SilentServer:
    """Accepts TCP connections and never sends a byte."""

    port: int = 0
    accepted: int = 0
    transports: list[asyncio.BaseTransport] = field(default_factory=list)


@pytest.fixture
async def silent_server() -> AsyncIterator[Callable[[], Awaitable[SilentServer]]]:
    servers: list[tuple[asyncio.Server, SilentServer]] = []

    async def start() -> SilentServer:
        state = SilentServer()
        server = await asyncio.get_running_loop().create_server(
            lambda: _Silent(state), "127.0.0.1", 0)
        state.port = int(server.sockets[0].getsockname()[1])
        servers.append((server, state))
        return state

    yield start
    for server, state in servers:
        server.close()
        for transport in state.transports:
            transport.close()
        await server.wait_closed()


async def pg_backends(pg_conn: Any, app_name: str) -> int:
    """Backends of the PostgreSQL behind ``pg_conn`` whose application_name is ``app_name``."""
    return int(await pg_conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name))
