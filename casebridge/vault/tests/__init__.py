"""Tests for the vault core: streaming format, key providers, storage backends."""
