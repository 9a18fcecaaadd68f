"""Background work of the audit app that a page waits for (periodic work is in apps.py)."""

from __future__ import annotations

from django_tasks import task

from casebridge.audit import archive_reads


@task()
def read_archive(read_id: str, limit: int) -> None:
    """One page of the review screen's archive search (audit/archive_reads.py)."""
    archive_reads.read(read_id, limit=limit)
