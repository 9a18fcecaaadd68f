"""TOTP clock drift: one 30 s step either side is accepted, two are not, and no code works twice."""

from __future__ import annotations

import types

import pytest
from allauth.mfa.totp.internal import auth as totp_auth
from django.test import Client
from django.urls import reverse

from casebridge.core.testing import PASSWORD, Personas, totp_code_at_counter

pytestmark = pytest.mark.django_db

# A fixed instant in the middle of a 30 s step, so that no test depends on where the real clock is.
NOW = 1_800_000_015.0
STEP = 30


@pytest.fixture
def frozen_totp_clock(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """allauth reads `time.time()` through its module's `time`: replace only that one, so the
    cache (which remembers used codes) keeps the real clock."""
    clock = types.SimpleNamespace(time=lambda: NOW)
    monkeypatch.setattr(totp_auth, "time", clock)
    return clock


def _code_at_step(personas: Personas, steps_from_now: int) -> str:
    return totp_code_at_counter(personas.members["staff"], int(NOW) // STEP + steps_from_now)


def _password_then_code(code: str) -> Client:
    client = Client()
    response = client.post(reverse("account_login"), {"login": "staff@smile.test", "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate")
    client.post(reverse("mfa_authenticate"), {"code": code})
    return client


def _signed_in(client: Client) -> bool:
    return client.get(reverse("org_home", args=["smile-dental"])).status_code == 200


@pytest.mark.parametrize("steps", [-1, 1], ids=["previous-30s-step", "next-30s-step"])
def test_a_code_one_step_away_signs_in(personas: Personas, frozen_totp_clock: object, steps: int) -> None:
    assert _signed_in(_password_then_code(_code_at_step(personas, steps)))


@pytest.mark.parametrize("steps", [-2, 2], ids=["two-steps-old", "two-steps-ahead"])
def test_a_code_two_steps_away_is_refused(personas: Personas, frozen_totp_clock: object, steps: int) -> None:
    code = _code_at_step(personas, steps)
    assert code not in {_code_at_step(personas, s) for s in (-1, 0, 1)}  # a coincidence would prove nothing
    assert not _signed_in(_password_then_code(code))


def test_a_code_from_the_previous_step_is_refused_the_second_time(
    personas: Personas, frozen_totp_clock: object
) -> None:
    code = _code_at_step(personas, -1)
    assert _signed_in(_password_then_code(code))
    assert not _signed_in(_password_then_code(code))


def test_a_code_used_early_is_refused_when_its_own_step_comes(
    personas: Personas, frozen_totp_clock: types.SimpleNamespace
) -> None:
    """The next step's code, used now, is still inside the window for the next 60 s: the used-code
    marker must outlive it."""
    code = _code_at_step(personas, 1)
    assert _signed_in(_password_then_code(code))
    frozen_totp_clock.time = lambda: NOW + STEP  # the code's own step: the one a thief would try in
    assert not _signed_in(_password_then_code(code))
