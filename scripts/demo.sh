#!/usr/bin/env bash
# The main job, from a fresh machine: install kflow, compile the shipped example
# with kflowc and run the generated module. Needs no external service.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e .
out="${TMPDIR:-/tmp}/kflow-orders.py"
kflowc build examples/orders/workflow.py -o "$out"
python3 "$out" --inputs-file examples/orders/inputs.json
