"""The guide's "Multiple Connections Between Same Nodes"."""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("health_alerts")

# Multiple outputs from health monitoring
builder.add_async_code("health_monitor", """
result = {
    "alerts": ["CPU High", "Memory Warning"],
    "needs_alerting": True,
    "metrics": {"cpu": 95, "memory": 88},
    "status": "critical"
}
""")

builder.add_async_code("alert_processor", """
# All connected variables are available
alerts = globals().get('alerts', [])
needs_alerting = globals().get('needs_alerting', False)
metrics = globals().get('metrics', {})

result = {
    "processed_alerts": len(alerts),
    "alerting_enabled": needs_alerting,
    "critical_metrics": [k for k, v in metrics.items() if v > 90]
}
""")

# Multiple connections to same target node - automatically merged
builder.add_connection("health_monitor", "result.alerts", "alert_processor", "alerts")
builder.add_connection("health_monitor", "result.needs_alerting", "alert_processor", "needs_alerting")
builder.add_connection("health_monitor", "result.metrics", "alert_processor", "metrics")

workflow = builder.build()
