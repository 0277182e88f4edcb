"""Workflow "health_alerts", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "health_alerts"
NODES = ("health_monitor", "alert_processor")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "health_monitor": ("49696711a2c63740", ()),
    "alert_processor": ("ee0ab0532699f488", ("health_monitor",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "health_monitor": ("code", "workflow.py:8"),
    "alert_processor": ("code", "workflow.py:17"),
}


# Node "health_monitor": workflow.py:8
async def node_health_monitor():
    result = {
        "alerts": ["CPU High", "Memory Warning"],
        "needs_alerting": True,
        "metrics": {"cpu": 95, "memory": 88},
        "status": "critical",
    }
    return result


# Node "alert_processor": workflow.py:17
async def node_alert_processor(
    *, alerts=rt.MISSING, needs_alerting=False, metrics=rt.MISSING
):
    # All connected variables are available
    alerts = alerts if alerts is not rt.MISSING else []
    needs_alerting = needs_alerting
    metrics = metrics if metrics is not rt.MISSING else {}

    result = {
        "processed_alerts": len(alerts),
        "alerting_enabled": needs_alerting,
        "critical_metrics": [k for k, v in metrics.items() if v > 90],
    }
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("health_monitor", node_health_monitor, timeout=None)
    await ctx.call(
        "alert_processor",
        node_alert_processor,
        wires=(
            ("alerts", "health_monitor", ("alerts",)),
            ("needs_alerting", "health_monitor", ("needs_alerting",)),
            ("metrics", "health_monitor", ("metrics",)),
        ),
        timeout=None,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_health_monitor": "28-35 29:9 30:10 31:11 32:12 33:13 35:14",
        "node_alert_processor": "39-52 43:19 44:20 45:21 47:23 48:24 49:25 50:26 52:27",
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
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
