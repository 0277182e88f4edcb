"""Soak: many runs against a local HTTP server, twice; nothing may grow on the second pass.

    python bench/soak_run_many.py [--runs 10000] [--concurrency 200] [--passes 2]

Each run of the workflow opens its own HTTP session (the resource is declared, not
injected), fetches from a local aiohttp server in a separate process, fans out into two
chains and closes everything at its end: the path where a leak would show. Every
hundredth run's node fails (HTTP 500 from the server), so failure paths soak too.
Before and after each pass (after a gc.collect()) it reports open file descriptors,
asyncio tasks, TCP connections to the server, RSS, and the pass's wall and CPU time.
Exit code 1 if the last pass left more fds, tasks or connections than the one before
it, or grew RSS by more than --rss-slack MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # services._connections_to: TCP connections by port

SERVER = textwrap.dedent("""
    import sys
    from aiohttp import web

    async def item(request):
        n = int(request.match_info["n"])
        if n % 100 == 99:
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"n": n, "tags": ["a", "b"], "payload": "x" * 200})

    app = web.Application()
    app.router.add_get("/items/{n}", item)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")


def workflow(base_url: str):
    from kflow import AsyncWorkflowBuilder

    builder = AsyncWorkflowBuilder("soak")
    builder.with_http_client("api", base_url=base_url, timeout=10, connection_limit=4)
    builder.add_resource_node("fetch", "api", "get", {"path": "/items/0"})
    builder.add_async_code("get", """
response = await api.get(f"/items/{n}")
response.raise_for_status()
result = await response.json()
""", timeout=10)
    builder.add_async_code("tags", "result = len(item['tags'])")
    builder.add_async_code("size", "result = len(item['payload'])")
    builder.add_connection("get", "result", "tags", "item")
    builder.add_connection("get", "result", "size", "item")
    return builder.build()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def snapshot(port: int) -> dict[str, float]:
    from services import _connections_to

    gc.collect()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
        "connections": _connections_to(port),
        "rss_mib": rss_mib(),
    }


async def settle(port: int) -> dict[str, float]:
    # Closed sockets leave /proc a moment later; give them that moment.
    for _ in range(50):
        state = snapshot(port)
        if state["connections"] == 0:
            return state
        await asyncio.sleep(0.1)
    return state


async def soak(args: argparse.Namespace) -> int:
    from kflow.runtime import AsyncLocalRuntime

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        module = AsyncLocalRuntime().module(workflow(f"http://127.0.0.1:{port}"))
        await module.run_many([{"n": n} for n in range(200)], max_concurrency=50)  # warm-up

        rows = []
        before = await settle(port)
        for number in range(1, args.passes + 1):
            started, cpu = time.perf_counter(), time.process_time()
            envelopes = await module.run_many([{"n": n} for n in range(args.runs)],
                                              max_concurrency=args.concurrency)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            failed = sum(e["status"] != "success" for e in envelopes)
            expected = sum(1 for n in range(args.runs) if n % 100 == 99)
            assert failed == expected, f"{failed} failed runs, expected {expected}"
            del envelopes
            after = await settle(port)
            rows.append((number, before, after, wall, cpu))
            before = after
    finally:
        server.terminate()
        server.wait(10)

    print(f"soak: {args.runs} runs x {args.passes} passes, concurrency {args.concurrency}, "
          f"python {sys.version.split()[0]}")
    print(f"{'pass':>4} {'fds':>11} {'tasks':>9} {'conns':>9} {'RSS MiB':>15} "
          f"{'wall s':>7} {'cpu s':>7} {'runs/s':>8}")
    for number, b, a, wall, cpu in rows:
        print(f"{number:>4} {b['fds']:>5}->{a['fds']:<5} {b['tasks']:>4}->{a['tasks']:<4} "
              f"{b['connections']:>4}->{a['connections']:<4} "
              f"{b['rss_mib']:>7.1f}->{a['rss_mib']:<7.1f} {wall:>7.2f} {cpu:>7.2f} "
              f"{args.runs / wall:>8.0f}")
    if len(rows) < 2:
        return 0
    _, first, second, *_ = rows[-2]
    _, _, last, *_ = rows[-1]
    grew = [key for key in ("fds", "tasks", "connections") if last[key] > second[key]]
    rss_growth = last["rss_mib"] - second["rss_mib"]
    if rss_growth > args.rss_slack:
        grew.append(f"rss (+{rss_growth:.1f} MiB)")
    print(f"last pass vs the one before: {'grew: ' + ', '.join(grew) if grew else 'no growth'}"
          f" (RSS {rss_growth:+.1f} MiB, slack {args.rss_slack} MiB)")
    return 1 if grew else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--rss-slack", type=float, default=8.0,
                        help="MiB the last pass may add to RSS (allocator noise)")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
