"""Run the benchmark: ``.venv/bin/python bench/run.py [--quick] [--only burst,blob,...]
[--servers ours,reference,indipyserver] [--json results.json] [--markdown]``. See bench/README.md."""

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
