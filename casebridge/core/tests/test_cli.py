"""`casebridge help`: CaseBridge's commands first, one line each; Django's internals that do not
apply are not offered, but remain reachable through `help --all`."""

from __future__ import annotations

import pytest
from django.core.management import get_commands

from casebridge import cli


def _listed(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("argv", [["casebridge"], ["casebridge", "help"], ["casebridge", "-h"]])
def test_help_lists_our_commands_first_then_a_few_of_djangos(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(argv)
    text = capsys.readouterr().out
    ours = sorted(name for name, app in get_commands().items() if app.startswith("casebridge."))
    assert {"serve", "createadmin", "demo", "audit", "keys", "serviceaccount", "worker"} <= set(ours)
    listed = _listed(text)
    assert listed[: len(ours)] == ours  # every one of ours, before anything of Django's
    assert listed[len(ours) :] == list(cli.DJANGO_COMMANDS_THAT_APPLY)
    for line in text.splitlines():
        if line.startswith("  "):
            assert len(line) <= 120 and line.rstrip().endswith(".")  # one line each


def test_commands_that_do_not_apply_are_not_offered(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["casebridge", "help"])
    listed = set(_listed(capsys.readouterr().out))
    for hidden in ("createsuperuser", "runserver", "account_unsetmultipleprimaryemails", "flush", "db_worker"):
        assert hidden in get_commands() and hidden not in listed


def test_help_all_is_djangos_complete_list(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["casebridge", "help", "--all"])
    text = capsys.readouterr().out
    assert "createsuperuser" in text and "runserver" in text and "createadmin" in text
