"""The package's layout holds: no import cycle, no stage importing another, a bounded number of top-level
modules, no file name in two folders (scripts/check_layout.py, run here so CI fails on a regression)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layout_check_passes():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_layout.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "import cycles: 0" in done.stdout and "stage-to-stage imports: 0" in done.stdout


def test_layout_check_finds_a_cycle_and_a_stage_import(tmp_path):
    """The check itself can fail: a package with a cycle and a stage importing another is refused."""
    pkg = tmp_path / "pkg"
    (pkg / "stages").mkdir(parents=True)
    for path, text in {"__init__.py": "", "a.py": "from . import b\n", "b.py": "from .a import x\n",
                       "stages/__init__.py": "", "stages/one.py": "from .two import run\n",
                       "stages/two.py": "def run(): pass\n"}.items():
        (pkg / path).write_text(text)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_layout.py"), "--root", str(pkg)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "pkg.a <-> pkg.b" in done.stdout and "pkg.stages.one -> pkg.stages.two" in done.stdout
