"""How long a crypto-shredded file stays recoverable from this installation's backups.

A file destroyed in the portal lives on in the backup sets taken before, because their database
copy carries its wrapped key; it is unrecoverable from backups too once the last such set is gone
(docs/backups.md, "Crypto-shredding and backups"). Sets leave by the scheduled destination's own
retention, so the window is read from the same settings that drive it:

- a folder: `CASEBRIDGE_BACKUP_KEEP_DAYS` (sets older than that are pruned after each backup);
- restic: `forget --keep-daily D --keep-weekly W --prune` after each backup. The last snapshot
  holding the key can be the one kept for its week, and it leaves once W newer weeks have one:
  at most 7 x (W + 1) days later (D days if only daily snapshots are kept);
- S3: CaseBridge deletes nothing; the bucket's lifecycle rule does, after
  `CASEBRIDGE_BACKUP_S3_EXPIRE_DAYS`, and never before the object lock's
  `CASEBRIDGE_BACKUP_S3_LOCK_DAYS`.

In each case one backup interval is added: pruning runs after a backup, not continuously. Zero
(keep everything) means no end: the statement says so rather than promise a date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings


@dataclass(frozen=True)
class BackupWindow:
    destination: str  # "folder", "restic", "s3" or "none"
    days: int | None  # None: sets are kept without end under the current settings
    rule: str  # the settings the window comes from, in plain words

    def until(self, destroyed_at: datetime) -> datetime | None:
        """The moment after which no backup set holds a file destroyed at `destroyed_at`."""
        if self.days is None:
            return None
        return destroyed_at + timedelta(days=self.days, hours=settings.BACKUP_EVERY_HOURS)

    def as_dict(self, destroyed_at: datetime) -> dict[str, object]:
        until = self.until(destroyed_at)
        return {
            "destination": self.destination,
            "window_days": self.days,
            "backup_every_hours": settings.BACKUP_EVERY_HOURS,
            "rule": self.rule,
            "copies_may_remain_until": until.isoformat() if until else None,
        }


def current() -> BackupWindow:
    """The window of the scheduled backup destination (CASEBRIDGE_BACKUP_DESTINATION)."""
    from casebridge.retention import restic, s3

    destination = settings.BACKUP_DESTINATION
    every = f"a backup every {settings.BACKUP_EVERY_HOURS} hours"
    if not destination:
        return BackupWindow(
            "none",
            None,
            "No scheduled backup destination is set (CASEBRIDGE_BACKUP_DESTINATION): CaseBridge knows of no "
            "backup copy and cannot speak for copies made by hand.",
        )
    if restic.is_restic(destination):
        daily, weekly = settings.BACKUP_RESTIC_KEEP_DAILY, settings.BACKUP_RESTIC_KEEP_WEEKLY
        if daily <= 0 and weekly <= 0:
            return BackupWindow(
                "restic", None, "restic keeps every snapshot (CASEBRIDGE_RESTIC_KEEP_DAILY and _WEEKLY are 0)."
            )
        days = max(daily, 7 * (weekly + 1) if weekly > 0 else 0)
        return BackupWindow(
            "restic",
            days,
            f"restic forget --keep-daily {daily} --keep-weekly {weekly} --prune after each backup ({every}).",
        )
    if s3.is_s3(destination):
        expire, lock = settings.BACKUP_S3_EXPIRE_DAYS, settings.BACKUP_S3_LOCK_DAYS
        if expire <= 0:
            return BackupWindow(
                "s3",
                None,
                "No expiry is set for the bucket's sets (CASEBRIDGE_BACKUP_S3_EXPIRE_DAYS is 0): they stay until "
                "removed by hand.",
            )
        return BackupWindow(
            "s3",
            max(expire, lock),
            f"The bucket's lifecycle rule expires sets after {expire} days; object lock keeps them at least "
            f"{lock} days ({every}).",
        )
    keep = settings.BACKUP_FOLDER_KEEP_DAYS
    if keep <= 0:
        return BackupWindow(
            "folder", None, "The backup folder keeps every set (CASEBRIDGE_BACKUP_KEEP_DAYS is 0): no end."
        )
    return BackupWindow("folder", keep, f"Sets older than {keep} days are pruned after each backup ({every}).")
