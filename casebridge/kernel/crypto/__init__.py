"""Content encryption for the vault: the streaming AEAD format every stored object is written in."""
