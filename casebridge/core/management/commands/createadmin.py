"""casebridge createadmin: first administrator and organization, with a one-hour setup link.

Run by the server operator (access/operator.py): the account, the organization and the link are
each audited as the operator's, in the transaction that creates them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse

from casebridge.access.operator import Operator
from casebridge.accounts.actions import create_setup_link
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.core.running_server import link_base
from casebridge.orgs.actions import create_organization
from casebridge.orgs.models import Membership, Organization, OrgKind


class Command(BaseCommand):
    help = "Create an organization with its owner and print a single-use setup link (valid 1 hour)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="the administrator's e-mail address")
        parser.add_argument("--org", required=True, help='organization name, e.g. "Smile Dental"')
        parser.add_argument("--kind", required=True, choices=OrgKind.values, help="practice, lab or imaging")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not an e-mail address") from None
        operator = Operator.running("createadmin")
        links = link_base()  # the running server's address, not always the default port
        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                user = User.objects.create_user(email)
                record("auth.user.created", actor=operator, target=user)
            org = Organization.objects.filter(name__iexact=options["org"].strip()).first()
            if org is None:
                try:
                    org = create_organization(name=options["org"], kind=options["kind"], owner=user, actor=operator)
                except ValidationError as exc:
                    raise CommandError("; ".join(exc.messages)) from exc
            elif not Membership.objects.filter(organization=org, user=user, role="owner").exists():
                raise CommandError(f"{org.name} already exists and {email} is not its owner")
            if user.has_usable_password():
                self.stdout.write(f"{email} already has a password; sign in at {links.url}{reverse('account_login')}")
                self._note(links.note)
                return
            raw = create_setup_link(user, actor=operator)
        self.stdout.write(self.style.SUCCESS(f"Organization: {org.name} ({org.get_kind_display()}), owner {email}"))
        self.stdout.write("Open this link within 1 hour to set the password (it works once):")
        self.stdout.write(f"  {links.url}{reverse('setup_password', args=[raw])}")
        self._note(links.note)

    def _note(self, note: str) -> None:
        if note:
            self.stdout.write(self.style.WARNING(note))
