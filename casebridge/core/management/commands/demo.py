"""casebridge demo: a demo practice, lab and imaging center with people, connections and cases."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from casebridge.access.roles import Role
from casebridge.cases import demo
from casebridge.core.running_server import link_base


class Command(BaseCommand):
    help = (
        "Create a demo practice, lab and imaging center with people and a dozen cases. Passwords and TOTP "
        "secrets are printed once; the organizations are connected under a BAA and the cases carry "
        "generated scans, CBCT and photos."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="add the demo even though the database holds other (real) organizations",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if demo.present():
            self.stdout.write("demo data already present: sign in with the details printed when it was created.")
            return
        others = demo.other_organizations()
        if others and not options["force"]:
            raise CommandError(
                f"this database holds {others} organization(s) that are not demo data; demo people and "
                "fictional patients do not belong beside real ones. Use a separate CASEBRIDGE_HOME, "
                "or --force if you really mean it."
            )
        try:
            people = demo.build(on_progress=lambda text: self.stdout.write(f"  created {text}"))
        except demo.DemoRefused as exc:
            self.stdout.write(f"{exc}.")
            return
        links = link_base()  # the running server's address, not always the default port
        self.stdout.write(self.style.SUCCESS(f"\nDemo data created. Sign in at {links.url}{reverse('account_login')}"))
        if links.note:
            self.stdout.write(self.style.WARNING(links.note))
        self.stdout.write(
            "Each person signs in with the e-mail and password below, then a code from an authenticator app:\n"
            "add the TOTP secret by hand, or paste the otpauth:// URI into a QR generator and scan it.\n"
            "These passwords and secrets are shown only now.\n"
        )
        current = ""
        for person in people:
            if person.organization != current:
                current = person.organization
                self.stdout.write(self.style.MIGRATE_HEADING(current))
            self.stdout.write(f"  {Role(person.role).label}: {person.full_name}")
            self.stdout.write(f"    e-mail:   {person.email}")
            self.stdout.write(f"    password: {person.password}")
            self.stdout.write(f"    TOTP:     {person.totp_secret}")
            self.stdout.write(f"    otpauth:  {person.otpauth_uri}")
