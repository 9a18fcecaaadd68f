"""The byte-moving kernel: streaming encryption, storage backends, the sealing pipeline, upload
staging, TLS, download tickets. No Django, no database: the transfer server runs on it alone and
the Django apps build on it, never the reverse (casebridge/kernel/tests/test_boundary.py)."""
