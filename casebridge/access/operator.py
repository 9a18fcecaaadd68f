"""The server operator: whoever runs a `casebridge` command on the machine, as an audited actor.

Commands such as `casebridge serviceaccount` and `createadmin` act for nobody signed in. Rather
than calling actions with no actor (which would skip their permission checks and log the change
as "system"), they build an `OrgAccess` for the operator that holds only the permissions the
command needs, and the events name the operator, the command and the operating-system account.
Whoever can run these commands already holds the database and the keys, so this does not limit
them; it makes their changes attributable and keeps the actions' checks in one place.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.audit.models import ActorType
from casebridge.orgs.models import Organization


@dataclass(frozen=True)
class Operator:
    command: str
    os_user: str

    audit_actor_type = ActorType.OPERATOR
    is_authenticated = True
    # Operators have no row of their own; the audit event's actor id stays empty.
    pk = ""

    @property
    def audit_label(self) -> str:
        return f"operator:{self.os_user} (casebridge {self.command})"

    @classmethod
    def running(cls, command: str) -> Operator:
        """The operator running `command` in this process, named by their OS account."""
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):  # a container user without a passwd entry or login name
            os_user = f"uid {os.getuid()}"
        return cls(command=command, os_user=os_user)


def operator_access(operator: Operator, organization: Organization, *perms: Perm) -> OrgAccess:
    """The operator's access to one organization, limited to `perms` (what the command does)."""
    return OrgAccess(organization, operator, role="operator", permissions=frozenset(perms))
