"""kflow's release, and the runtime interface the modules it generates are written for.

`RUNTIME_INTERFACE` must be one the installed kflow-runtime provides
(`kflow_runtime.INTERFACE`); `kflowc` writes it into every module it builds.
"""

__version__ = "0.2.0"
RUNTIME_INTERFACE = 2
