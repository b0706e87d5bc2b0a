#!/usr/bin/env bash
# The whole suite on CuPy, on a machine with an NVIDIA GPU: the same tests, NPFORMER_BACKEND=cupy,
# plus the tests marked `gpu`. Needs CuPy: pip install -e ".[gpu,dev]" (or ".[cuda12,dev]").
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "from npformer.backend import get_backend; get_backend('cupy')"
NPFORMER_BACKEND=cupy python -m pytest -q "$@"
NPFORMER_BACKEND=cupy python -m npformer gradcheck
