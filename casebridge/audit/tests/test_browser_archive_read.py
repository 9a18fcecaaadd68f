"""In the browser: an auditor who includes the archive watches the progress bar follow the worker
through the segments, and the page shows the archived events by itself once the read is done."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from playwright.sync_api import BrowserContext, expect

from casebridge.audit import archive_reads
from casebridge.audit.api import record
from casebridge.audit.models import ArchiveRead, ArchiveReadState
from casebridge.audit.testing import archive_everything_so_far
from casebridge.core.browser_testing import accessibility_violations, assert_no_inline_scripts, sign_in
from casebridge.core.testing import build_personas

pytestmark = pytest.mark.browser


def test_the_progress_bar_follows_the_worker_then_the_archive_shows(
    transactional_db: None,
    new_context: Callable[[], BrowserContext],
    server_idle: Callable[[], AbstractContextManager[object]],
) -> None:
    personas = build_personas()
    auditor = personas.members["auditor"]
    for i in range(3):
        record("case.viewed", actor=personas.members["clinician"], organization=personas.practice, details={"i": i})
    archive_everything_so_far()
    # The read as the page queues it; the worker (run by this test below) has not taken it yet.
    job = ArchiveRead.objects.create(organization=personas.practice, user=auditor, query="archive=1")
    page = new_context().new_page()
    sign_in(page, auditor)
    page.goto(f"/o/{personas.practice.slug}/audit/?archive=1&read={job.pk}")
    status = page.locator("#archive-read")
    expect(status).to_contain_text("Waiting for the background worker")
    expect(page.get_by_text("(archived)")).to_have_count(0)

    with server_idle():
        ArchiveRead.objects.filter(pk=job.pk).update(state=ArchiveReadState.READING, segments_done=1, segments_total=2)
    expect(status).to_contain_text("Reading the archive: 1 of 2 segments")
    expect(page.locator("#archive-read-progress")).to_have_attribute("value", "50")
    assert accessibility_violations(page) == []

    with server_idle():
        archive_reads.read(str(job.pk), limit=51)
    expect(page.get_by_text("(archived)").first).to_be_visible()
    expect(page.locator("[data-archive-note]")).to_contain_text("archived events from")
    expect(status).to_have_count(0)
    assert f"read={job.pk}" in page.url
    assert_no_inline_scripts(page)
