"""The kernel and the transfer server stand without Django: every module of both imports in a
process where Django, the database drivers and every Django app of CaseBridge cannot be imported.
The Django apps build on the kernel; this test fails the moment the kernel builds on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import casebridge

ROOT = Path(casebridge.__file__).parent
# What the kernel and the transfer server may import of CaseBridge: themselves and nothing else.
ALLOWED = ("casebridge.kernel", "casebridge.transfer")
FORBIDDEN_THIRD_PARTY = ("django", "psycopg", "ninja", "allauth")

PROBE = """
import importlib, importlib.abc, sys

allowed, forbidden, modules = {allowed!r}, {forbidden!r}, {modules!r}

class Boundary(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in forbidden:
            raise ImportError(f"{{name}} is outside the kernel's boundary")
        if top == "casebridge" and name != "casebridge" and not name.startswith(allowed):
            raise ImportError(f"{{name}} is outside the kernel's boundary")
        return None

sys.meta_path.insert(0, Boundary())
for module in modules:
    importlib.import_module(module)
print("ok", len(modules))
"""


def _modules() -> list[str]:
    found = []
    for package in ("kernel", "transfer"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT.parent).with_suffix("")
            if "tests" in relative.parts or relative.name == "__main__":
                continue  # the tests drive the kernel from Django's test runner; __main__ runs the server
            found.append(".".join(relative.parts).removesuffix(".__init__"))
    return found


def test_every_kernel_and_transfer_module_imports_without_django_or_the_apps() -> None:
    modules = _modules()
    assert "casebridge.kernel.appending" in modules and "casebridge.transfer.server" in modules
    probe = PROBE.format(allowed=ALLOWED, forbidden=FORBIDDEN_THIRD_PARTY, modules=modules)

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {len(modules)}"


def test_the_boundary_probe_catches_a_kernel_module_that_imports_an_app() -> None:
    probe = PROBE.format(allowed=ALLOWED, forbidden=FORBIDDEN_THIRD_PARTY, modules=["casebridge.vault.models"])

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)

    assert result.returncode != 0 and "outside the kernel's boundary" in result.stderr
