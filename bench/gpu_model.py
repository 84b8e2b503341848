"""The GPU performance model's command line: a thin entry point to bench/gpumodel.

    python bench/gpu_model.py                      # markdown table + bench/results/gpu-model-<date>.json
    python bench/gpu_model.py --resources          # also bench/results/sass-resources-<date>.json
    python bench/gpu_model.py --module path/to/_cuda.so --json out.json

What it models and from which sources: the package docstring (``bench/gpumodel/__init__.py``).
"""

from __future__ import annotations

import sys

from gpumodel import main  # bench/ is this script's directory, so on sys.path

if __name__ == "__main__":
    sys.exit(main())
