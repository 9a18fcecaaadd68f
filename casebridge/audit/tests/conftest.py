"""The vault tests' moto server (real HTTP on a loopback port), for the S3 witness tests."""

from casebridge.vault.tests.conftest import moto_endpoint

__all__ = ["moto_endpoint"]
