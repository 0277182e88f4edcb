"""The guide's "3. File Processing Pipeline".

Fixed from the guide: `store_results` had a triple-quoted SQL string inside the
triple-quoted code string, which ended the code early; the SQL uses single-quote
triple quotes here. It needs pandas (with pyarrow for to_parquet), PostgreSQL and
Redis to run; the golden test compiles it.
"""

import os
from pathlib import Path

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("file_processor")

# Configure resources
builder = (builder
    .with_database("db")
    .with_cache("cache"))

# Scan directory for files
builder.add_async_code(
    "scan_files",
    """
    import os
    from pathlib import Path

    directory = Path(input_directory)
    files = []

    for file_path in directory.rglob("*.csv"):
        if file_path.is_file():
            files.append({
                "path": str(file_path),
                "name": file_path.name,
                "size": file_path.stat().st_size,
                "modified": file_path.stat().st_mtime
            })

    result = {"files": files, "total_files": len(files)}
    """
)

# Process files in parallel with progress tracking
builder.add_parallel_map(
    "process_files",
    """
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
            "memory_usage": df.memory_usage(deep=True).sum()
        }

        # Store processed data reference
        processed_path = f"/processed/{file_info['name']}"
        df.to_parquet(processed_path)

        return {
            "original_file": file_info["path"],
            "processed_file": processed_path,
            "stats": stats,
            "success": True
        }
    """,
    max_workers=5,
    continue_on_error=True,
    timeout_per_item=300  # 5 minutes per file
)

# Store results with error handling
builder.add_async_code(
    "store_results",
    """
    import json

    # Separate successful and failed processing
    successful_files = [r for r in results if r.get("success")]
    failed_files = [r for r in errors if r.get("error")]

    # Store processing results
    async with db.acquire() as conn:
        for file_result in successful_files:
            await conn.execute('''
                INSERT INTO file_processing_log
                (file_path, processed_path, stats, processed_at)
                VALUES ($1, $2, $3, NOW())
            ''',
            file_result["original_file"],
            file_result["processed_file"],
            json.dumps(file_result["stats"])
        )

    result = {
        "processed_count": len(successful_files),
        "failed_count": len(failed_files),
        "total_rows": sum(f["stats"]["rows"] for f in successful_files),
        "processing_summary": {
            "successful_files": [f["original_file"] for f in successful_files],
            "failed_files": [f["item"] for f in failed_files]
        }
    }
    """
)

# Connect the pipeline
builder.add_connection("scan_files", "files", "process_files", "items")
builder.add_connection("process_files", "results", "store_results", "results")
builder.add_connection("process_files", "errors", "store_results", "errors")

workflow = builder.build()

NEEDS_SERVICES = True
