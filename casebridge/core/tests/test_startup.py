"""Loading the URL map (what every web and worker process does) does not import fpdf2, which
adds ~28 MiB: only a process that prints a PDF pays for it (core/pdf.py, cases/slip.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_loading_the_urls_does_not_import_the_pdf_library(tmp_path: Path) -> None:
    code = "import django, sys; django.setup(); import casebridge.urls; print('fpdf' in sys.modules)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "casebridge.settings", "CASEBRIDGE_HOME": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
