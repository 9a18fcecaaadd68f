"""`casebridge`: the one command for every operation (a thin wrapper around manage.py).

`casebridge help` lists CaseBridge's own commands first, one line each, then the few Django
commands an operator may need; the rest of Django's list (createsuperuser, runserver, allauth's
commands...) does not apply to CaseBridge and is shown only by `casebridge help --all`.
`casebridge help COMMAND` (or `casebridge COMMAND --help`) gives a command's options.
"""

from __future__ import annotations

import os
import sys

# Django's commands that make sense next to ours, with why an operator would run them.
DJANGO_COMMANDS_THAT_APPLY = {
    "check": "Django's checks; `check --deploy` is the deployment checklist (clean by default).",
    "migrate": "Apply database migrations (serve does it at start; run it when hosts share a database).",
    "showmigrations": "Which database migrations are applied.",
    "sendtestemail": "Send a test message through the configured SMTP server.",
    "clearsessions": "Remove expired sessions from the database.",
    "dbshell": "The database's own shell.",
    "shell": "A Python shell with CaseBridge loaded (nothing done there is audited: maintainers only).",
}
# What is hidden, and what to use instead, so nobody takes the hiding for an omission.
INSTEAD = (
    "createsuperuser (use createadmin: every person belongs to an organization and enrolls MFA), "
    "runserver (plain HTTP: use serve), db_worker (use worker)"
)


def _first_sentence(text: str) -> str:
    words = " ".join(text.split())
    end = words.find(". ")
    return words if end < 0 else words[: end + 1]


def command_overview() -> str:
    """The text of `casebridge help`: our commands (by Django app under casebridge/), one line each."""
    import django
    from django.core.management import get_commands, load_command_class

    django.setup()
    commands = get_commands()
    ours = sorted(name for name, app in commands.items() if app.startswith("casebridge."))
    width = max(len(name) for name in [*ours, *DJANGO_COMMANDS_THAT_APPLY]) + 2
    lines = ["Usage: casebridge COMMAND [options]   (casebridge help COMMAND: its options)", "", "CaseBridge:"]
    for name in ours:
        lines.append(f"  {name.ljust(width)}{_first_sentence(load_command_class(commands[name], name).help)}")
    lines += ["", "Django, for maintenance:"]
    for name, purpose in DJANGO_COMMANDS_THAT_APPLY.items():
        if name in commands:
            lines.append(f"  {name.ljust(width)}{purpose}")
    lines += ["", f"Not listed, as they do not apply: {INSTEAD}.", "`casebridge help --all` lists every command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casebridge.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else argv)
    args[0] = "casebridge"
    if args[1:] in ([], ["-h"], ["--help"], ["help"]):
        print(command_overview())
        return
    if args[1:] == ["help", "--all"]:
        args = [args[0], "help"]  # Django's own, complete list
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
