"""Typed readers for settings that come from environment variables (healthchecks style)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class ConfigurationError(RuntimeError):
    """A setting is present but unusable; raised at start so nothing runs half-configured."""


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def envsecret(name: str) -> str | None:
    """Read NAME, or the file named by NAME_FILE (Docker/Kubernetes secrets).

    An unreadable *_FILE is a configuration error, never a silent fallback.
    """
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"{name}_FILE={path} cannot be read: {exc}") from exc
    return os.environ.get(name) or None


def ensure_private_dir(path: Path) -> Path:
    """Create PATH (and parents) readable only by this user: it holds keys and patient data."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def tighten_home(home: Path, skip: tuple[str, ...] = ("blobs",)) -> int:
    """Make every file under `home` 0600 and every folder 0700 (what an older version or another
    tool left 0644/0755); `skip` holds trees that are written with those modes already and may
    be huge. Returns how many modes were changed."""
    changed = 0
    for root, dirs, files in os.walk(home):
        if Path(root) == home:
            dirs[:] = [d for d in dirs if d not in skip]
        for name, mode in [(d, 0o700) for d in dirs] + [(f, 0o600) for f in files]:
            path = Path(root, name)
            if path.is_symlink():
                continue
            if path.stat().st_mode & 0o777 != mode:
                path.chmod(mode)
                changed += 1
    return changed


def read_or_create_secret(path: Path, nbytes: int = 48) -> str:
    """Return the secret stored at PATH, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    ensure_private_dir(path.parent)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
