"""`casebridge backup` starts without Django's system checks: they import every URL and view
(about 2 s of a 3 s incremental backup, bench/backup_incremental.py) and a backup uses none."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import BaseCommand

from casebridge.retention.management.commands.backup import Command


def test_backup_commands_start_without_the_system_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the system checks ran")

    monkeypatch.setattr(BaseCommand, "check", refuse)
    (tmp_path / "sets" / "20261204T120000Z-abcdef").mkdir(parents=True)
    out = io.StringIO()
    Command(stdout=out).run_from_argv(["casebridge", "backup", "list", str(tmp_path)])
    assert out.getvalue().split() == ["20261204T120000Z-abcdef"]
