#!/usr/bin/env bash
# Proves the GPU path and prints every figure of issue 19 (benchmarks/README.md, "gpu.sh"):
#   bash benchmarks/gpu.sh              # on a machine with a CUDA GPU: under 8 minutes on one H100
#   bash benchmarks/gpu.sh --dry-run    # the same code on the CPU at the smallest sizes (the tests run it)
# Other options (--out FILE, --sections a,b): bash benchmarks/gpu.sh --help
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$repo/.venv/bin/python"
if [ ! -x "$python" ]; then
    python="$(command -v python3)"
fi
cd "$repo"
# Not installed (a lent GPU machine runs the checkout with its own torch): import it from here.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" benchmarks/gpu_check.py "$@"
