"""The notification clocks after a breach, as the rules set them (pure functions, tested with
frozen dates). All run from discovery: the first day the breach is known, or by exercising
reasonable diligence would have been known, to the organization (45 CFR 164.404(a)(2)).

- individuals: without unreasonable delay and at the latest 60 calendar days after discovery
  (164.404(b));
- HHS: 500 or more individuals, at the same time as the individuals (164.408(b)); fewer than
  500, logged and reported within 60 days after the end of the calendar year of discovery
  (164.408(c));
- media: more than 500 residents of one State or jurisdiction, within 60 days (164.406);
- a business associate to the covered entity: within the contract's deadline, at most 60 days
  (164.410(b));
- GDPR: the supervisory authority within 72 hours of becoming aware (Art. 33(1)).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class Deadline:
    key: str
    who: str
    due: datetime
    citation: str


SIXTY_DAYS = timedelta(days=60)


def deadlines(
    discovered_at: datetime,
    *,
    individuals: int,
    most_in_one_state: int,
    business_associate: bool,
    contract_deadline_days: int | None,
    under_gdpr: bool,
) -> list[Deadline]:
    """Every notice a breach decided as such requires, earliest first."""
    found: list[Deadline] = []
    if business_associate:
        days = min(60, contract_deadline_days) if contract_deadline_days else 60
        found.append(
            Deadline(
                "covered_entity",
                "The covered entity (the practice) you act for",
                discovered_at + timedelta(days=days),
                "45 CFR 164.410(b)" + (f"; your BAA's {days}-day deadline" if contract_deadline_days else ""),
            )
        )
    else:
        found.append(
            Deadline("individuals", "Each affected individual", discovered_at + SIXTY_DAYS, "45 CFR 164.404(b)")
        )
        if individuals >= 500:
            found.append(Deadline("hhs", "HHS (breach portal)", discovered_at + SIXTY_DAYS, "45 CFR 164.408(b)"))
        else:
            year_end = datetime(discovered_at.year, 12, 31, 23, 59, 59, tzinfo=discovered_at.tzinfo)
            found.append(
                Deadline("hhs", "HHS (annual log of small breaches)", year_end + SIXTY_DAYS, "45 CFR 164.408(c)")
            )
        if most_in_one_state > 500:
            found.append(
                Deadline("media", "Prominent media in the State", discovered_at + SIXTY_DAYS, "45 CFR 164.406")
            )
    if under_gdpr:
        found.append(
            Deadline(
                "authority", "The supervisory authority (GDPR)", discovered_at + timedelta(hours=72), "GDPR Art. 33(1)"
            )
        )
    return sorted(found, key=lambda d: d.due)


def days_left(deadline: Deadline, today: date) -> int:
    return (deadline.due.date() - today).days
