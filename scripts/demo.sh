#!/usr/bin/env bash
# The main job, from a fresh machine: install kflow, compile the shipped example
# with kflowc and run the generated module. Needs no external service.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."

# kflow-runtime first, from the checkout: kflow depends on that release, which an index may not have.
python3 -m pip install --quiet --disable-pip-version-check -e runtime_lib -e .
out="${TMPDIR:-/tmp}/kflow-orders.py"
kflowc build examples/orders/workflow.py -o "$out"
python3 "$out" --inputs-file examples/orders/inputs.json
