"""Breach notification deadlines, computed from discovery with fixed dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from casebridge.compliance.clocks import days_left, deadlines

DISCOVERED = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def _due(**kwargs: object) -> dict[str, datetime]:
    options: dict = {
        "individuals": 12,
        "most_in_one_state": 12,
        "business_associate": False,
        "contract_deadline_days": None,
        "under_gdpr": False,
    }
    options.update(kwargs)
    return {d.key: d.due for d in deadlines(DISCOVERED, **options)}


def test_a_small_breach_individuals_in_60_days_hhs_after_the_year() -> None:
    due = _due()
    assert due == {
        "individuals": datetime(2026, 5, 9, 15, 30, tzinfo=UTC),
        # 60 days after December 31 of the year of discovery.
        "hhs": datetime(2027, 3, 1, 23, 59, 59, tzinfo=UTC),
    }


def test_a_small_breach_found_in_a_leap_year_end_reports_by_february_29() -> None:
    late_2027 = datetime(2027, 11, 2, tzinfo=UTC)
    due = {
        d.key: d.due
        for d in deadlines(
            late_2027,
            individuals=3,
            most_in_one_state=3,
            business_associate=False,
            contract_deadline_days=None,
            under_gdpr=False,
        )
    }
    assert due["hhs"] == datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(("individuals", "hhs_with_individuals"), [(499, False), (500, True), (5000, True)])
def test_500_or_more_individuals_tell_hhs_with_them(individuals: int, hhs_with_individuals: bool) -> None:
    due = _due(individuals=individuals, most_in_one_state=0)
    assert (due["hhs"] == due["individuals"]) is hhs_with_individuals


@pytest.mark.parametrize(("in_state", "media"), [(500, False), (501, True)])
def test_media_when_more_than_500_in_one_state(in_state: int, media: bool) -> None:
    due = _due(individuals=900, most_in_one_state=in_state)
    assert ("media" in due) is media
    if media:
        assert due["media"] == datetime(2026, 5, 9, 15, 30, tzinfo=UTC)


def test_a_business_associate_tells_the_covered_entity_by_the_contract_or_60_days() -> None:
    assert _due(business_associate=True) == {"covered_entity": datetime(2026, 5, 9, 15, 30, tzinfo=UTC)}
    assert _due(business_associate=True, contract_deadline_days=10) == {
        "covered_entity": datetime(2026, 3, 20, 15, 30, tzinfo=UTC)
    }
    # A contract cannot give more than the rule's 60 days.
    assert _due(business_associate=True, contract_deadline_days=90)["covered_entity"] == datetime(
        2026, 5, 9, 15, 30, tzinfo=UTC
    )


def test_gdpr_72_hours_first() -> None:
    found = deadlines(
        DISCOVERED,
        individuals=2,
        most_in_one_state=2,
        business_associate=False,
        contract_deadline_days=None,
        under_gdpr=True,
    )
    assert found[0].key == "authority" and found[0].due == datetime(2026, 3, 13, 15, 30, tzinfo=UTC)
    assert days_left(found[0], datetime(2026, 3, 12, tzinfo=UTC).date()) == 1
    assert days_left(found[0], datetime(2026, 3, 20, tzinfo=UTC).date()) == -7
