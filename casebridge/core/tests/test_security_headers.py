"""Every response carries the security headers; cookies are Secure, HttpOnly, SameSite."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


@override_settings(SECURE_SSL_REDIRECT=False)
def test_pages_carry_the_security_headers() -> None:
    response = Client().get(reverse("account_login"), secure=True)
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "camera=()" in response["Permissions-Policy"] and "geolocation=()" in response["Permissions-Policy"]
    assert "no-store" in response["Cache-Control"]
    cookie = response.cookies["__Host-cb_csrf"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"


def test_pages_have_no_inline_scripts() -> None:
    html = Client().get(reverse("account_login"), secure=True).content.decode()
    for chunk in html.split("<script")[1:]:
        tag = chunk.split(">", 1)[0]
        body = chunk.split(">", 1)[1].split("</script>", 1)[0]
        assert "src=" in tag or 'type="application/json"' in tag or not body.strip(), tag


@override_settings(SECURE_SSL_REDIRECT=True)
def test_plain_http_is_redirected_to_https() -> None:
    response = Client().get(reverse("account_login"))
    assert response.status_code == 301 and response["Location"].startswith("https://")


def test_healthz_answers_without_authentication_or_data() -> None:
    response = Client().get(reverse("healthz"), secure=True)
    assert response.status_code == 200 and response.content == b"ok\n"


@override_settings(SECURE_SSL_REDIRECT=True)
def test_deploy_check_is_clean() -> None:
    out = StringIO()
    call_command("check", "--deploy", "--fail-level", "WARNING", stdout=out)
    assert "no issues" in out.getvalue()


@override_settings(SECURE_SSL_REDIRECT=False)
@pytest.mark.parametrize(
    ("origin", "fetch_site", "accepted"),
    [
        ("null", "same-origin", True),  # what browsers send under Referrer-Policy: no-referrer
        ("null", "cross-site", False),
        ("null", None, False),
        ("https://evil.test", "cross-site", False),
        ("https://testserver", None, True),
    ],
)
def test_csrf_origin_check_under_no_referrer(origin: str, fetch_site: str | None, accepted: bool) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("account_login"), secure=True)
    token = client.cookies["__Host-cb_csrf"].value
    headers = {"HTTP_ORIGIN": origin, "HTTP_X_CSRFTOKEN": token}
    if fetch_site:
        headers["HTTP_SEC_FETCH_SITE"] = fetch_site
    response = client.post(reverse("account_login"), {"login": "a@b.test", "password": "x"}, secure=True, **headers)
    assert (response.status_code != 403) is accepted


@override_settings(SECURE_SSL_REDIRECT=False)
def test_same_origin_fetch_metadata_does_not_replace_the_token() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("account_login"),
        {"login": "a@b.test", "password": "x"},
        secure=True,
        HTTP_ORIGIN="null",
        HTTP_SEC_FETCH_SITE="same-origin",
    )
    assert response.status_code == 403
