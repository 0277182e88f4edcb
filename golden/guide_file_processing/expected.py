"""Workflow "file_processor", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "file_processor"
NODES = ("scan_files", "process_files", "store_results")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "scan_files": ("05bff52194849308", ()),
    "process_files": ("abf68682c2d329fc", ("scan_files",)),
    "store_results": ("42b08aaa99ca3405", ("process_files",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "scan_files": ("code", "workflow.py:22"),
    "process_files": ("parallel_map", "workflow.py:45"),
    "store_results": ("code", "workflow.py:84"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"input_directory": ("scan_files",)}


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {
    "db": rt.Database("db", {}),
}


# Node "scan_files": workflow.py:22
async def node_scan_files(*, input_directory):
    import os
    from pathlib import Path

    directory = Path(input_directory)
    files = []

    for file_path in directory.rglob("*.csv"):
        if file_path.is_file():
            files.append(
                {
                    "path": str(file_path),
                    "name": file_path.name,
                    "size": file_path.stat().st_size,
                    "modified": file_path.stat().st_mtime,
                }
            )

    result = {"files": files, "total_files": len(files)}
    return result


# Node "process_files", defines process_item: workflow.py:45
async def functions_process_files():
    async def process_item(file_info):
        import pandas as pd
        import asyncio

        # Read CSV file
        df = pd.read_csv(file_info["path"])

        # Simulate processing time
        await asyncio.sleep(0.1)

        # Basic validation and stats
        stats = {
            "file": file_info["name"],
            "rows": len(df),
            "columns": len(df.columns),
            "missing_values": df.isnull().sum().sum(),
            "memory_usage": df.memory_usage(deep=True).sum(),
        }

        # Store processed data reference
        processed_path = f"/processed/{file_info['name']}"
        df.to_parquet(processed_path)

        return {
            "original_file": file_info["path"],
            "processed_file": processed_path,
            "stats": stats,
            "success": True,
        }

    return process_item


async def node_process_files(*, items):
    process_item = await functions_process_files()
    return await rt.parallel_map(
        process_item,
        items,
        max_workers=5,
        timeout_per_item=300.0,
        continue_on_error=True,
    )


# Node "store_results": workflow.py:84
async def node_store_results(*, results, errors, db):
    import json

    # Separate successful and failed processing
    successful_files = [r for r in results if r.get("success")]
    failed_files = [r for r in errors if r.get("error")]

    # Store processing results
    async with db.acquire() as conn:
        for file_result in successful_files:
            await conn.execute(
                '''
            INSERT INTO file_processing_log
            (file_path, processed_path, stats, processed_at)
            VALUES ($1, $2, $3, NOW())
        ''',
                file_result["original_file"],
                file_result["processed_file"],
                json.dumps(file_result["stats"]),
            )

    result = {
        "processed_count": len(successful_files),
        "failed_count": len(failed_files),
        "total_rows": sum(f["stats"]["rows"] for f in successful_files),
        "processing_summary": {
            "successful_files": [f["original_file"] for f in successful_files],
            "failed_files": [f["item"] for f in failed_files],
        },
    }
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call(
        "scan_files",
        node_scan_files,
        inputs=("input_directory",),
        timeout=None,
    )
    await ctx.call(
        "process_files",
        node_process_files,
        wires=(("items", "scan_files", ("files",)),),
        timeout=None,
    )
    await ctx.call(
        "store_results",
        node_store_results,
        wires=(
            ("results", "process_files", ("results",)),
            ("errors", "process_files", ("errors",)),
        ),
        resources=("db",),
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_scan_files": "39-58 40:25 41:26 43:28 44:29 46:31 47:32 48:33 49:33 50:34 51:35 52:36 53:37 57:40 58:40",
        "functions_process_files": "62-93 63:48 64:49 65:50 68:53 71:56 74:59 75:60 76:61 77:62 78:63 79:64 83:68 84:69 86:71 87:72 88:73 89:74 90:75 93:76",
        "node_store_results": "108-138 109:87 112:90 113:91 116:94 117:95 118:96 119:96 124:101 125:102 126:103 129:106 130:107 131:108 132:109 133:110 134:111 135:112 138:114",
    },
)

# run(), run_many(), open_resources() and the command line: the same in every module.
PROGRAM = rt.Program(
    WORKFLOW,
    NODES,
    run_nodes,
    info=NODE_INFO,
    source_map=SOURCE_MAP,
    module_file=__file__,
    module=__name__,
    resources=RESOURCES,
    required_inputs=REQUIRED_INPUTS,
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
