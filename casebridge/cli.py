"""`casebridge`: the one command for every operation (a thin wrapper around manage.py).

casebridge serve                     HTTPS server + background worker (the embedded default)
casebridge createadmin --email E --org "Name" --kind practice|lab|imaging
casebridge serviceaccount create --org SLUG --name NAME --role ROLE --scope cases:read
casebridge audit verify              check the whole audit chain (exit 1 on tampering)
casebridge check --deploy            Django's deployment checklist
casebridge help                      every command
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casebridge.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else argv)
    args[0] = "casebridge"
    if len(args) == 1 or args[1] in {"-h", "--help"}:
        print(__doc__)
        args = [args[0], "help"]
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
