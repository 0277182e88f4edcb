"""parallel_map on real I/O: GETs to a local aiohttp server, against hand-written aiohttp.

    python bench/bench_map_http.py [--requests 10000] [--workers 50] [--rounds 5] [--check]

The server runs in a process of its own (this script with --serve), so the CPU time measured
here is the client's alone. Each contender opens its own `aiohttp.ClientSession` (a connector
of `--workers` connections) and GETs /item/<n> for n in range(requests), reading each body:

- hand-written: the usual `asyncio.Semaphore(workers)` around each request, and
  `asyncio.gather` over one coroutine per request; with a timeout, `asyncio.timeout` inside;
- parallel_map: `parallel_map(get, range(requests), max_workers=workers, timeout_per_item=...)`.

Rounds are interleaved (bench/_map_bench.py). Budget (issue 15 part 3): parallel_map's
requests/s at least 1/1.1 of the hand-written one's, and its client CPU per request at most
1.1x, both on the median ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from _map_bench import best_ratio, interleaved, speedups  # noqa: E402
from aiohttp import web  # noqa: E402

from kflow_runtime.patterns import parallel_map  # noqa: E402

BUDGET = 1.1
HAND, MAP = "hand-written", "parallel_map"


def serve() -> None:
    """The server process: print the port, serve until stdin closes."""

    async def item(request: web.Request) -> web.Response:
        return web.Response(text=request.match_info["n"])

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/item/{n}", item)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


Fetch = Callable[[aiohttp.ClientSession, str, int, int, float | None], Awaitable[list[Any]]]


async def hand_written(session: aiohttp.ClientSession, url: str, requests: int, workers: int,
                       timeout: float | None) -> list[Any]:
    slots = asyncio.Semaphore(workers)

    async def get(n: int) -> bytes:
        async with slots:
            if timeout is None:
                async with session.get(f"{url}/item/{n}") as response:
                    return await response.read()
            async with asyncio.timeout(timeout):
                async with session.get(f"{url}/item/{n}") as response:
                    return await response.read()

    return await asyncio.gather(*(get(n) for n in range(requests)))


async def with_parallel_map(session: aiohttp.ClientSession, url: str, requests: int,
                            workers: int, timeout: float | None) -> list[Any]:
    async def get(n: int) -> bytes:
        async with session.get(f"{url}/item/{n}") as response:
            return await response.read()

    out = await parallel_map(get, range(requests), max_workers=workers,
                             timeout_per_item=timeout)
    return out["results"]


def runner(fetch: Fetch, url: str, requests: int, workers: int, timeout: float | None
           ) -> Callable[[], None]:
    async def main() -> list[Any]:
        connector = aiohttp.TCPConnector(limit=workers)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await fetch(session, url, requests, workers, timeout)

    def run() -> None:
        bodies = asyncio.run(main())
        assert bodies == [str(n).encode() for n in range(requests)]

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 if the budget is missed")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        return report(url, args)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


def report(url: str, args: argparse.Namespace) -> int:
    n = args.requests
    print(f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}; {n:,} GETs to a "
          f"local aiohttp server (own process), {args.workers} at a time, {args.rounds} rounds")
    print("median (min-max) over rounds; ratios are parallel_map against hand-written (>1: "
          f"parallel_map better); budget: within {BUDGET}x")
    print()
    print(f"  {'timeout':>7}  {'hand req/s':>10}  {'map req/s':>10}  {'req/s ratio':>18}  "
          f"{'hand CPU us/req':>15}  {'map CPU us/req':>14}  {'CPU ratio':>18}  {'best CPU':>8}")
    ok = True
    for timeout in (None, 5.0):
        contenders = {HAND: runner(hand_written, url, n, args.workers, timeout),
                      MAP: runner(with_parallel_map, url, n, args.workers, timeout)}
        for run in contenders.values():  # warm-up, untimed
            run()
        timings = interleaved(contenders, args.rounds)
        wall, cpu = speedups(timings[HAND], timings[MAP])
        rate = {name: statistics.median(n / t.wall for t in ts) for name, ts in timings.items()}
        per_request = {name: statistics.median(t.cpu for t in ts) / n * 1e6
                       for name, ts in timings.items()}
        met = wall.median >= 1 / BUDGET and cpu.median >= 1 / BUDGET
        ok &= met
        print(f"  {timeout!s:>7}  {rate[HAND]:>10,.0f}  {rate[MAP]:>10,.0f}  {wall:>18}  "
              f"{per_request[HAND]:>15.1f}  {per_request[MAP]:>14.1f}  {cpu:>18}  "
              f"{best_ratio(timings[HAND], timings[MAP]):>7.2f}x  {'ok' if met else 'MISSED'}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
