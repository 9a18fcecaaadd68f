"""casebridge serviceaccount create|list|deactivate: integration identities, managed on the server.

The command acts as the server operator (access/operator.py): the actions check the operator's
SERVICE_ACCOUNTS_MANAGE like anyone else's, and every change is audited as the operator's.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from casebridge.access.operator import Operator, operator_access
from casebridge.access.roles import Perm
from casebridge.accounts import actions
from casebridge.accounts.models import ServiceAccount, TokenScope
from casebridge.orgs.models import Organization


class Command(BaseCommand):
    help = "Manage service accounts; `create` prints the account's token once."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="operation", required=True)
        create = sub.add_parser("create", help="create a service account and print its token")
        create.add_argument("--org", required=True, help="organization slug (its CaseBridge ID)")
        create.add_argument("--name", required=True)
        create.add_argument("--role", required=True)
        create.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=TokenScope.values,
            help="repeat for several scopes (default: org:read)",
        )
        create.add_argument("--days", type=int, default=90, help="token lifetime in days (default 90)")
        listing = sub.add_parser("list", help="list service accounts of an organization")
        listing.add_argument("--org", required=True)
        deactivate = sub.add_parser("deactivate", help="deactivate a service account and revoke its tokens")
        deactivate.add_argument("--org", required=True)
        deactivate.add_argument("--name", required=True)

    def _org(self, slug: str) -> Organization:
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            raise CommandError(f"no organization with CaseBridge ID {slug!r}")
        return org

    def handle(self, *args: Any, **options: Any) -> None:
        org = self._org(options["org"])
        operation = options["operation"]
        access = operator_access(Operator.running(f"serviceaccount {operation}"), org, Perm.SERVICE_ACCOUNTS_MANAGE)
        if operation == "create":
            try:
                account, raw = actions.create_service_account(
                    access,
                    name=options["name"],
                    role=options["role"],
                    scopes=options["scopes"] or [TokenScope.ORG_READ],
                    days=options["days"],
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            self.stderr.write(f"Service account {account.name} ({account.role}) created in {org.name}.")
            self.stderr.write("Its token follows; it is shown only this once:")
            self.stdout.write(raw)
        elif operation == "list":
            for account in ServiceAccount.objects.filter(organization=org).order_by("name"):
                state = "active" if account.is_active else "deactivated"
                self.stdout.write(f"{account.name}\t{account.role}\t{state}")
        else:
            found = ServiceAccount.objects.filter(organization=org, name=options["name"]).first()
            if found is None:
                raise CommandError(f"no service account {options['name']!r} in {org.name}")
            actions.deactivate_service_account(access, found)
            self.stdout.write(f"Service account {found.name} deactivated; its tokens no longer work.")
