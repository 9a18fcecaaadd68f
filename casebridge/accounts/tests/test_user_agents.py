"""Devices on "Where you are signed in": browser, version and system from real User-Agent headers,
and the page shows them instead of the raw header."""

from __future__ import annotations

import re

import pytest
from allauth.usersessions.models import UserSession
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Page, expect

from casebridge.accounts.user_agents import describe_user_agent
from casebridge.core.browser_testing import sign_in
from casebridge.core.testing import PASSWORD, Personas, make_user, totp_code

# Headers as the browsers send them (2024-2025 releases).
REAL_HEADERS = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36": "Chrome 131 on Windows",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86": "Edge 131 on Windows",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15": "Safari 18 on macOS",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1.2 Mobile/15E148 Safari/604.1": "Safari 17 on iPhone (iOS 17.1)",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1": "Chrome 120 on iPad (iOS 16.6)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "FxiOS/129.0 Mobile/15E148 Safari/605.1.15": "Firefox 129 on iPhone (iOS 17.5)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0": "Firefox 133 on Linux",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.104 Mobile Safari/537.36": "Chrome 131 on Android 14",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36": "Samsung Internet 25 on Android 13",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0": "Opera 115 on Windows",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36": "Chrome 131 on ChromeOS",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.6778.85 Safari/537.36": "Chrome 131 on Linux",
    "curl/8.5.0": "curl 8",
    "python-requests/2.32.3": "Python script",
}


@pytest.mark.parametrize(("header", "expected"), REAL_HEADERS.items(), ids=list(REAL_HEADERS.values()))
def test_real_headers_name_the_browser_and_system(header: str, expected: str) -> None:
    assert str(describe_user_agent(header)) == expected


@pytest.mark.parametrize("header", ["", "   ", "SomethingNew/1.0", "Mozilla/5.0 (compatible)"])
def test_an_unknown_header_is_said_to_be_unknown(header: str) -> None:
    assert describe_user_agent(header).browser == "Unknown browser"


@pytest.mark.django_db
def test_the_security_page_names_devices_and_times_not_raw_headers(personas: Personas) -> None:
    header = next(iter(REAL_HEADERS))
    client = Client(HTTP_USER_AGENT=header)
    client.post(reverse("account_login"), {"login": "staff@smile.test", "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": totp_code(personas.members["staff"])})
    assert UserSession.objects.filter(user=personas.members["staff"]).count() == 1
    page = client.get(reverse("security")).content.decode()
    assert "Chrome 131 on Windows" in page and "this device" in page
    assert f">{header}" not in page  # only in the tooltip, not as the text people read
    assert "Last active" in page and "Signed in" in page and "now" in page


@pytest.mark.browser
def test_a_real_browser_sees_itself_named(page: Page, transactional_db: None) -> None:
    user = make_user("devices@smile.test")
    sign_in(page, user)
    page.goto("/account/security/")
    sessions = page.get_by_role("region", name="Where you are signed in")
    expect(sessions.get_by_role("row").filter(has_text="this device")).to_contain_text(
        re.compile(r"Chrome \d+ on Linux")
    )
    expect(sessions).not_to_contain_text("Mozilla/5.0")
