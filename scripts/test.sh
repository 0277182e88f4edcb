#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, bring up PostgreSQL and Redis,
# run pytest with services required, and lint. Exits non-zero on any failure.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."

# kflow-runtime first, from the checkout: kflow depends on that release, which an index may not have.
python3 -m pip install --quiet --disable-pip-version-check -e 'runtime_lib[all]' -e '.[dev]'
bash scripts/services.sh
# `kflowc graph --format svg` is tested for real: it needs Graphviz's dot.
if ! command -v dot >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq graphviz >/dev/null
fi
export KFLOW_REQUIRE_SERVICES=1

python3 -m pytest -q -p no:cacheprovider "$@"
python3 -m ruff check .
