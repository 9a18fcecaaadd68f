"""Read-side helpers for case pages and the API: who can be chosen as lab or doctor, and what a
search finds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db.models import Q

from casebridge.accounts.models import User
from casebridge.orgs.models import Membership, Organization, OrgKind
from casebridge.orgs.queries import connections_of


@dataclass(frozen=True)
class LabChoice:
    lab: Organization
    can_receive: bool  # an agreement basis is recorded: the lab may receive patient data


def connected(practice: Organization, kind: str) -> list[LabChoice]:
    """Organizations of `kind` (labs, imaging centers) with an accepted connection to `practice`,
    by name, each with whether it may receive patient data; never any other."""
    choices = {}
    for connection in connections_of(practice, active=True).order_by("pk"):
        other = connection.other(practice)
        if other.kind == kind:
            choices[other.pk] = LabChoice(other, connection.can_carry_phi)
    return sorted(choices.values(), key=lambda c: c.lab.name.lower())


def connected_labs(practice: Organization) -> list[LabChoice]:
    return connected(practice, OrgKind.LAB)


def prescribers(practice: Organization) -> list[User]:
    """The practice's active members marked as prescribers: the people a case can be prescribed
    by, whatever their role (an owner-dentist as much as a clinician)."""
    return list(
        User.objects.filter(
            memberships__organization=practice,
            memberships__is_active=True,
            memberships__is_prescriber=True,
            is_active=True,
        ).order_by("full_name", "email")
    )


def prescriber_membership(practice: Organization, user: User) -> Membership | None:
    """``user``'s membership in ``practice`` if they may prescribe there now, else None."""
    return Membership.objects.filter(
        organization=practice, user=user, is_active=True, is_prescriber=True, user__is_active=True
    ).first()


# --- search ---------------------------------------------------------------------------------
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%m-%d-%Y", "%d-%m-%Y", "%Y/%m/%d")


def dates_in(term: str) -> set[date]:
    """Every date `term` can be read as, in the notations dental teams type: 1985-03-14,
    03/14/1985 (US), 14/03/1985 and 14.03.1985. An ambiguous 03/04/1985 is both 4 March and
    3 April: the search widens a little instead of guessing the wrong one."""
    found = set()
    for fmt in _DATE_FORMATS:
        try:
            found.add(datetime.strptime(term, fmt).replace(tzinfo=UTC).date())
        except ValueError:
            continue
    return found


def case_search(term: str) -> Q:
    """The cases a search term finds, whatever tab they are in: part of the case number, every
    word of the term at the start of a word of the patient's name (in any order: "carter rosa"
    finds Rosa Carter), the chart number exactly, the date of birth in any usual notation, part of
    the doctor's, the lab's or the practice's name. Combine with the caller's visible cases."""
    term = " ".join(term.split())
    if not term:
        return Q()
    by_name = Q()
    for word in term.split(" "):
        by_name &= Q(patient__name__istartswith=word) | Q(patient__name__icontains=f" {word}")
    found = (
        Q(number__icontains=term)
        | by_name
        | Q(patient__chart_number__iexact=term)
        | Q(doctor__full_name__icontains=term)
        | Q(lab__name__icontains=term)
        | Q(practice__name__icontains=term)
    )
    born = dates_in(term)
    if born:
        found |= Q(patient__date_of_birth__in=born)
    return found
