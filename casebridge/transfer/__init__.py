"""The transfer server: a small process that moves file bytes, and nothing else.

The application decides (who is asking, may they have this file, which range, the audit event);
the transfer server only carries out a decision it is handed in a sealed, short-lived ticket. It
imports no Django, no ORM and no database driver, so a process serving a 4 GiB download stays
near 45 MiB, where a worker carrying the whole application starts at ~90 (docs/performance.md).

Nothing in this package may import Django: `tests/test_server.py` checks it.
"""
