"""A parallel_map whose process is SIGKILLed halfway resumes from its stored item chunks.

The map is wired to an ItemRecorder the way the runtime will wire it (each finished block of
items handed over as it ends, workers waiting while the store is backlogged); the second
process runs only the indexes without a stored outcome. Issue 12's bound: 2,000 items killed
at item 1,000, at most 2,200 executions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

MAP = textwrap.dedent("""
    import asyncio, json, os, signal, sys
    from kflow_runtime.checkpoint import open_run
    from kflow_runtime.patterns import parallel_map

    url, log_path, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    TOTAL = 2000

    async def main():
        session = await open_run(url, run_id="map-run", workflow="w", inputs={},
                                 fingerprints={"m": "f1"}, upstream={})
        async with session:
            stored = await session.stored_items("m")
            todo = [i for gap in stored.pending(TOTAL) for i in gap]
            # At most 100 items finished but not stored, whatever the machine's load: the
            # bound the test asserts must not depend on how fast the store answers.
            recorder = session.item_recorder("m", every=50, max_pending=100)
            backlogged = [False]
            slots = [None] * TOTAL
            for index, value in stored.results():
                slots[index] = value
            log = open(log_path, "a")

            async def process_item(index):
                if backlogged[0]:  # the wiring waits like this before taking more items
                    backlogged[0] = False
                    await recorder.drain()
                log.write(f"{index}\\n")
                log.flush()
                if index == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                await asyncio.sleep(0)  # a real item awaits something
                slots[index] = {"square": index * index}
                return slots[index]

            def on_batch(started, ended, first, size):
                # Positions in `todo` -> item indexes, handed over in contiguous runs.
                indexes = todo[first:first + size]
                start = prev = indexes[0]
                for index in indexes[1:] + [None]:
                    if index != prev + 1:
                        if recorder.add(start, prev - start + 1, slots[start:prev + 1]):
                            backlogged[0] = True
                        start = index
                    prev = index

            await parallel_map(process_item, todo, max_workers=10, on_batch=on_batch)
            await recorder.flush()
            print(json.dumps({"restored": TOTAL - len(todo), "results": slots}))

    asyncio.run(main())
""")





def test_a_map_killed_halfway_resumes_with_every_result_in_order(
    store_url: str, tmp_path: Path
) -> None:
    script, log = tmp_path / "map.py", tmp_path / "executions.log"
    script.write_text(MAP)

    def run(kill_at: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), store_url, str(log), str(kill_at)],
                              capture_output=True, text=True, timeout=120)

    killed = run(kill_at=1000)
    assert killed.returncode == -9, killed.stderr
    resumed = run(kill_at=-1)
    assert resumed.returncode == 0, resumed.stderr
    answer = json.loads(resumed.stdout)
    assert answer["results"] == [{"square": i * i} for i in range(2000)]
    executions = log.read_text().split()
    assert len(set(executions)) == 2000
    assert len(executions) <= 2200, (len(executions), answer["restored"])
    assert answer["restored"] >= 800
