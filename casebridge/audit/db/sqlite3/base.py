"""Django's SQLite backend, plus: a transaction that recorded audit events chains them (seals
them) just before it commits, in the same transaction.

SQLite has one write lock, and CaseBridge's transactions take it at BEGIN (IMMEDIATE): while a
transaction is open nobody else writes, so every committed event is older than its own and
the chain head it reads is the latest. Sealing inside it gives the same order the separate
sealer pass gives (id order), and the events and their seals reach the disk in one commit
(one WAL fsync under synchronous=FULL) instead of two, with one fewer wait for the write lock
(docs/audit.md, "Sealing inside the writer's commit"). PostgreSQL keeps the sealer pass after
the commit: there, sealing inside every writer's transaction would serialize all writers on
the sealer's lock.

A transaction the seal cannot complete in (an unexpected error) still commits its events: the
pass runs in a savepoint that is rolled back, the events stay queued, and the after-commit pass
(record()'s on-commit hook) or the worker's periodic one chains them, as without this backend.
"""

from __future__ import annotations

import logging

from django.db.backends.sqlite3 import base

logger = logging.getLogger("casebridge.audit")


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by record()/record_many() when the open transaction queued events for sealing.
    audit_unsealed = False

    def commit(self) -> None:
        if self.audit_unsealed and self.connection is not None:
            self.audit_unsealed = False
            self._seal_before_commit()
        super().commit()

    def rollback(self) -> None:
        self.audit_unsealed = False
        super().rollback()

    def _seal_before_commit(self) -> None:
        # Django has left the atomic block but the transaction is open, so seal_pending's own
        # atomic block becomes a savepoint inside it, and its on-commit hooks (the checkpoint
        # witnesses) run once this commit is done.
        from casebridge.audit.api import seal_soon
        from casebridge.audit.chain import seal_pending

        try:
            seal_pending()
        except Exception:  # rolled back to the savepoint: the events stay queued, nothing lost
            logger.exception("audit sealing deferred to the after-commit pass")
            return
        # Everything queued is chained: the after-commit pass record() asked for has nothing to do.
        self.run_on_commit = [hook for hook in self.run_on_commit if hook[1] is not seal_soon]
