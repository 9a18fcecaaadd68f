"""External links: expiring shares with recipient verification, and the accounting of disclosures."""
