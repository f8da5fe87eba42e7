"""The benchmark driver: bench/driver.c compiled at run time, or bench/driver.py when there is no C
compiler. Either way the result is one executable path, which every server runs the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .servers import which_cc

HERE = Path(__file__).resolve().parent
C_SOURCE = HERE / "driver.c"
PY_SOURCE = HERE / "driver.py"


def build_driver(directory: Path, prefer: str = "c") -> tuple[str, str]:
    """(path of an executable driver, "C" or "Python")."""
    cc = which_cc()
    if prefer == "c" and cc:
        exe = directory / "indi_bench_driver"
        result = subprocess.run([cc, "-O2", "-o", str(exe), str(C_SOURCE)], capture_output=True, text=True)
        if result.returncode == 0:
            return str(exe), "C"
        print(f"bench: cannot compile {C_SOURCE} ({result.stderr.strip()[:200]}); using the Python driver",
              file=sys.stderr)
    # Servers run a driver as one executable with no arguments: a script that starts ours.
    exe = directory / "indi_bench_driver_py"
    exe.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(PY_SOURCE)!r}, run_name='__main__')\n")
    os.chmod(exe, 0o755)
    return str(exe), "Python"
