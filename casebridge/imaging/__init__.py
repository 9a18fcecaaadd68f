"""Imaging: what CaseBridge does to photos, scans and medical images beyond storing them."""
