"""The viewers' own JavaScript modules under Node's test runner (frontend/tests/*.test.mjs): what
a browser test reaches only by chance, such as a series stream broken into chunks at every byte."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[3] / "frontend"


def test_the_viewer_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    assert node, "Node.js is a prerequisite (README): it builds the viewers and tests their modules"
    tests = sorted(str(path) for path in (FRONTEND / "tests").glob("*.test.mjs"))
    assert tests
    result = subprocess.run([node, "--test", *tests], cwd=FRONTEND, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
