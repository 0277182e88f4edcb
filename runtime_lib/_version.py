"""The runtime's release and the interface generated modules are built against.

`INTERFACE` changes whenever a generated module could not run on the previous
runtime (a primitive renamed, a signature changed); `kflowc` writes the number it
builds for into every module, which checks it on import (`require_interface`).
"""

__version__ = "0.2.0"
INTERFACE = 2
