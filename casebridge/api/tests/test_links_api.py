"""External links over the API: the practice shares chosen files, lists and revokes links."""

from __future__ import annotations

from django.core import mail

from casebridge.api.tests.conftest import World, ready_case
from casebridge.audit.models import Event
from casebridge.sharing.models import Disclosure, ExternalLink


def _submitted(world: World) -> tuple[str, list[str]]:
    api = world.api()
    number = ready_case(world, api)
    assert api.post(f"cases/{number}/submit").status_code == 200
    files = [a["file_id"] for a in api.get(f"cases/{number}/attachments").json()]
    return number, files


def test_a_practice_shares_lists_and_revokes_a_link(world: World, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    number, files = _submitted(world)
    api = world.api()
    with django_capture_on_commit_callbacks(execute=True):
        made = api.post(
            f"cases/{number}/links",
            {"files": files[:2], "recipient_email": "Dr.Oral@Surgeon.test", "purpose": "referral for implant planning"},
        )
    assert made.status_code == 201, made.content
    link = made.json()
    assert link["state"] == "active" and len(link["files"]) == 2 and link["recipient_email"] == "dr.oral@surgeon.test"
    assert all("Jane" not in name for name in link["files"])
    sent = [m for m in mail.outbox if "dr.oral@surgeon.test" in m.to]
    assert sent and all("Jane" not in m.body and "Jane" not in m.subject for m in sent)
    assert Disclosure.objects.filter(link_id=link["id"]).exists()
    listed = api.get(f"cases/{number}/links").json()
    assert [row["id"] for row in listed] == [link["id"]]
    revoked = api.post(f"cases/{number}/links/{link['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert Event.objects.filter(action__startswith="share.link", target_id=link["id"]).count() >= 2


def test_only_this_cases_files_can_be_shared_and_bad_input_changes_nothing(world: World) -> None:
    number, files = _submitted(world)
    api = world.api()
    other_file = world.upload()
    for body in (
        {"files": [other_file], "recipient_email": "x@y.test", "purpose": "referral"},
        {"files": files[:1], "recipient_email": "not-an-address", "purpose": "referral"},
        {"files": files[:1], "recipient_email": "x@y.test", "purpose": "referral", "expires_in_days": 90},
        {"files": [], "recipient_email": "x@y.test", "purpose": "referral"},
    ):
        response = api.post(f"cases/{number}/links", body)
        assert response.status_code in (400, 422), (body, response.content)
        assert response["Content-Type"] == "application/problem+json"
    assert not ExternalLink.objects.exists()


def test_labs_and_read_only_tokens_cannot_share(world: World) -> None:
    number, files = _submitted(world)
    body = {"files": files[:1], "recipient_email": "x@y.test", "purpose": "referral"}
    assert world.api("technician").post(f"cases/{number}/links", body).status_code == 403
    assert world.api(scopes=["cases:read"]).post(f"cases/{number}/links", body).status_code == 403
    assert world.api("outsider").post(f"cases/{number}/links", body).status_code == 404
    assert not ExternalLink.objects.exists()
