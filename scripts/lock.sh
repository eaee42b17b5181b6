#!/usr/bin/env bash
# Regenerate requirements.lock: every dependency (the package's, its tests' and PostgreSQL's),
# pinned to one version with the hashes of its published files, so an install for the night
# (docs/operations.md) and CI get exactly what was tested. Run after changing pyproject.toml's
# dependencies, and commit the result; tests/test_lock.py fails while the two disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3.11 -m venv "$tools"
"$tools/bin/pip" install --quiet 'pip-tools>=7.4,<8'
"$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --extra test --extra postgres \
  --output-file requirements.lock pyproject.toml
