"""Django settings: every value comes from the environment, with secure embedded defaults."""

from __future__ import annotations

import os
from email.utils import getaddresses
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from casebridge.core.env import (
    ConfigurationError,
    ensure_private_dir,
    env,
    envbool,
    envint,
    envlist,
    envsecret,
    read_or_create_secret,
)

BASE_DIR = Path(__file__).resolve().parent
# Everything CaseBridge writes under its home (database, mail, uploads, keys) is this user's
# alone, whichever entry point runs: serve, the worker, a command, another WSGI server.
os.umask(0o077)
HOME = ensure_private_dir(Path(env("CASEBRIDGE_HOME", "var")).resolve())

SECRET_KEY = envsecret("CASEBRIDGE_SECRET_KEY") or read_or_create_secret(HOME / "secret_key")
DEBUG = envbool("CASEBRIDGE_DEBUG", False)
ALLOWED_HOSTS = envlist("CASEBRIDGE_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# The public origin, used in links sent by e-mail and as the WebAuthn relying party.
PUBLIC_URL = env("CASEBRIDGE_PUBLIC_URL", f"https://localhost:{envint('CASEBRIDGE_PORT', 8443)}")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "casebridge.core",
    "casebridge.audit",
    "casebridge.accounts",
    "casebridge.orgs",
    "casebridge.access",
    "casebridge.vault",
    "casebridge.cases",
    "casebridge.sharing",
    "casebridge.notifications",
    "casebridge.imaging",
    "casebridge.retention",
    "casebridge.compliance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "casebridge.vault.transfer.TransferServerMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "casebridge.core.middleware.RequestContextMiddleware",
    "casebridge.core.middleware.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "casebridge.vault.transfer.TransferOriginCSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "casebridge.core.csrf.FetchMetadataOriginMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "casebridge.accounts.middleware.ApiTokenMiddleware",
    "casebridge.accounts.middleware.SessionLifetimeMiddleware",
    "casebridge.accounts.middleware.UserSessionsMiddleware",  # allauth's, without a write per viewer frame
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "casebridge.accounts.middleware.RequireMFAMiddleware",
    # Problem documents for whatever a view under /api/ raises (after the one below mapped
    # policy.Forbidden): never Django's HTML error pages for API clients.
    "casebridge.api.errors.ApiErrorMiddleware",
    # Innermost, so it sees the actor the middleware above resolved and every view's refusal.
    "casebridge.access.middleware.AccessRefusalMiddleware",
]

ROOT_URLCONF = "casebridge.urls"
WSGI_APPLICATION = "casebridge.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "casebridge.orgs.context.current_organization",
                "casebridge.notifications.context.navigation_counts",
            ],
            "builtins": ["django.contrib.humanize.templatetags.humanize"],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        envsecret("DATABASE_URL") or f"sqlite:///{HOME / 'casebridge.sqlite3'}",
        conn_max_age=envint("CASEBRIDGE_DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend, plus: a transaction that recorded audit events chains them before
    # its one commit (casebridge/audit/db/sqlite3/base.py).
    DATABASES["default"]["ENGINE"] = "casebridge.audit.db.sqlite3"
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN: concurrent writers queue instead of failing
        # with "database is locked" halfway through a transaction.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits) ------------------------------------------------------------------
# Shared across app servers: Redis when configured, else the database. Never per-process memory,
# or throttling would reset with every worker.
REDIS_URL = envsecret("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "casebridge_cache",
        }
    }

# --- Background tasks ---------------------------------------------------------------------
TASKS = {
    "default": {
        # Tasks outlive the request that queued them; settings_test.py runs them inline instead.
        "BACKEND": env("CASEBRIDGE_TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
    }
}

# --- Identity -----------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# NIST SP 800-63B: length and a breached/common list, no composition rules.
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

ACCOUNT_ADAPTER = "casebridge.accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"  # addresses are verified by the invitation link
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
# Confirming identity before a sensitive action (removing a factor, new recovery codes) takes the
# password or a second factor. allauth 65.22 adds "code", an e-mailed one-time code: that would let
# whoever reads the mailbox of a signed-in session stand in for both factors, so it stays off and
# its two views answer 403 (tested in accounts/tests/test_reauthentication.py).
ACCOUNT_REAUTHENTICATION_METHODS = ("password", "mfa")
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "reauthenticate": "10/m/user",
    "reset_password": "20/m/ip,5/m/key",
    "change_password": "5/m/user",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[CaseBridge] "
MFA_ADAPTER = "casebridge.accounts.adapters.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_RECOVERY_CODE_COUNT = 10
MFA_TOTP_ISSUER = "CaseBridge"
# One 30 s step either side: a code typed as the window turns, or on a phone whose clock is a few
# seconds off, still works. allauth remembers a used code for the whole window (3 steps), so a
# code is still accepted only once (accounts/tests/test_totp_tolerance.py).
MFA_TOTP_TOLERANCE = 1
MFA_TRUST_ENABLED = False
# Passkeys only over HTTPS (settings_test.py allows the browser tests' http://localhost live server).
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = False
USERSESSIONS_TRACK_ACTIVITY = True

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = envint("CASEBRIDGE_SESSION_ABSOLUTE_SECONDS", 12 * 3600)
SESSION_ABSOLUTE_SECONDS = SESSION_COOKIE_AGE
SESSION_IDLE_DEFAULT_SECONDS = envint("CASEBRIDGE_IDLE_SECONDS", 15 * 60)
# How often an open page asks for news: the case page's status, the bell's count. Neither poll
# counts as activity for idle logoff (accounts.middleware.PASSIVE_URL_NAMES).
CASE_LIVE_POLL_SECONDS = 15
NOTIFICATION_POLL_SECONDS = 30
SESSION_COOKIE_NAME = "__Host-cb_session"
CSRF_COOKIE_NAME = "__Host-cb_csrf"
CSRF_FAILURE_VIEW = "casebridge.core.error_pages.csrf_failure"  # a page that says what to do

# --- Transport and browser security -------------------------------------------------------
SECURE_SSL_REDIRECT = envbool("CASEBRIDGE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("CASEBRIDGE_BEHIND_PROXY", False) else None
SECURE_HSTS_SECONDS = envint("CASEBRIDGE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# The preload directive only takes effect once the domain is submitted to the browsers list.
SECURE_HSTS_PRELOAD = envbool("CASEBRIDGE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Nothing leaves the site in a Referer header, not even to our own pages (see core/csrf.py for
# how CSRF origin checks still work without it).
SECURE_REFERRER_POLICY = "no-referrer"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
# A problem document under /api/, Django's page elsewhere.
CSRF_FAILURE_VIEW = "casebridge.api.errors.csrf_failure"
CSRF_TRUSTED_ORIGINS = envlist("CASEBRIDGE_CSRF_TRUSTED_ORIGINS", PUBLIC_URL)
X_FRAME_OPTIONS = "DENY"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # blob: for upload previews the browser makes from a chosen photo; it never leaves the page.
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Mail ---------------------------------------------------------------------------------
EMAIL_HOST = env("CASEBRIDGE_SMTP_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = envint("CASEBRIDGE_SMTP_PORT", 587)
    EMAIL_HOST_USER = env("CASEBRIDGE_SMTP_USER")
    EMAIL_HOST_PASSWORD = envsecret("CASEBRIDGE_SMTP_PASSWORD") or ""
    EMAIL_USE_TLS = envbool("CASEBRIDGE_SMTP_STARTTLS", True)
else:
    # Embedded default: messages are written to CASEBRIDGE_HOME/mail for the operator to read.
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(HOME / "mail")
DEFAULT_FROM_EMAIL = env("CASEBRIDGE_FROM_EMAIL", "CaseBridge <no-reply@localhost>")

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = HOME / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- CaseBridge ---------------------------------------------------------------------------
# Chain audit events right after each commit (default), or leave it to the worker's sealer loop
# (higher write throughput, events chained within a fraction of a second): see docs/audit.md.
AUDIT_SEAL_ON_COMMIT = envbool("CASEBRIDGE_AUDIT_SEAL_ON_COMMIT", True)
# Refused requests (403/404) are recorded once per actor and reason in this window; the repeats
# are counted into the next event instead of each writing one (access/refusals.py).
AUDIT_REFUSAL_WINDOW_SECONDS = envint("CASEBRIDGE_AUDIT_REFUSAL_WINDOW_SECONDS", 60)
# Processes `audit verify` checks the hot table with (0: one per CPU this process may use; 1: in
# its own process only): audit/chunks.py.
AUDIT_VERIFY_PROCESSES = envint("CASEBRIDGE_AUDIT_VERIFY_PROCESSES", 0)
# Every signed checkpoint is also written here, outside the database (audit/witness.py): put it
# on another disk or a mounted share so that restoring an old database copy shows as a rollback.
AUDIT_WITNESS_DIR = Path(env("CASEBRIDGE_AUDIT_WITNESS_DIR", str(HOME / "audit-witness")))
# And, when set, to an S3-compatible bucket (`s3://bucket/prefix`; endpoint empty: AWS; credentials
# from boto3's usual places). In a bucket with object lock enabled each copy is locked for
# AUDIT_WITNESS_S3_LOCK_DAYS (default six years, as long as the events; 0: no lock) in
# AUDIT_WITNESS_S3_LOCK_MODE (COMPLIANCE: no one can delete it before then; GOVERNANCE: only with
# a special permission).
AUDIT_WITNESS_S3 = env("CASEBRIDGE_AUDIT_WITNESS_S3")
AUDIT_WITNESS_S3_ENDPOINT = env("CASEBRIDGE_AUDIT_WITNESS_S3_ENDPOINT")
AUDIT_WITNESS_S3_REGION = env("CASEBRIDGE_AUDIT_WITNESS_S3_REGION")
AUDIT_WITNESS_S3_LOCK_MODE = env("CASEBRIDGE_AUDIT_WITNESS_S3_LOCK_MODE", "COMPLIANCE")
AUDIT_WITNESS_S3_LOCK_DAYS = envint("CASEBRIDGE_AUDIT_WITNESS_S3_LOCK_DAYS", 6 * 365 + 2)
# Optionally e-mail each organization's compliance officers a daily digest of the new signed
# checkpoint heads (hashes and signatures only): copies no database restore can reach.
AUDIT_CHECKPOINT_DIGEST = envbool("CASEBRIDGE_AUDIT_CHECKPOINT_DIGEST", False)
# Sealed events older than this many days leave the hot tables for compressed, signed, encrypted
# archive segments in the blob store (audit/archive.py), still verified, proved and searchable
# (`casebridge audit search --archived`). 396 days: 13 months. 0: never. Not deletion: audit
# events are kept at least six years (retention policies refuse less), segments for ever.
AUDIT_ARCHIVE_AFTER_DAYS = envint("CASEBRIDGE_AUDIT_ARCHIVE_AFTER_DAYS", 396)
KEYRING_PATH = Path(env("CASEBRIDGE_KEYRING", str(HOME / "keys" / "keyring.json")))
# Envelope encryption: the provider holding key-encryption keys, and where ciphertext is stored.
VAULT_KEY_PROVIDER = env("CASEBRIDGE_KEY_PROVIDER", "local:")
VAULT_STORAGE_URL = env("CASEBRIDGE_STORAGE_URL", f"file://{HOME / 'blobs'}")
VAULT_MAX_UPLOAD_BYTES = envint("CASEBRIDGE_MAX_UPLOAD_BYTES", 5 * 1024**3)
VAULT_UPLOAD_EXPIRY_SECONDS = envint("CASEBRIDGE_UPLOAD_EXPIRY_SECONDS", 24 * 3600)
# Uploads begun and not finished (nor expired), per person or service account and per
# organization: a busy day's CBCTs fit; announcing terabytes of uploads that never come does not.
VAULT_UPLOADS_IN_FLIGHT_PER_PERSON = envint("CASEBRIDGE_UPLOADS_IN_FLIGHT_PER_PERSON", 100)
VAULT_UPLOAD_BYTES_IN_FLIGHT_PER_PERSON = envint("CASEBRIDGE_UPLOAD_BYTES_IN_FLIGHT_PER_PERSON", 20 * 1024**3)
VAULT_UPLOADS_IN_FLIGHT_PER_ORGANIZATION = envint("CASEBRIDGE_UPLOADS_IN_FLIGHT_PER_ORGANIZATION", 1000)
VAULT_UPLOAD_BYTES_IN_FLIGHT_PER_ORGANIZATION = envint(
    "CASEBRIDGE_UPLOAD_BYTES_IN_FLIGHT_PER_ORGANIZATION", 200 * 1024**3
)
# DICOMweb STOW-RS: the most one request body may carry (its instances are stored as they
# arrive; past either limit reading stops and the rest is refused). A 1,000-slice CBCT fits.
DICOMWEB_STOW_MAX_INSTANCES = envint("CASEBRIDGE_STOW_MAX_INSTANCES", 2000)
DICOMWEB_STOW_MAX_BYTES = envint("CASEBRIDGE_STOW_MAX_BYTES", 5 * 1024**3)
# Processes the worker reads and seals a big archive's DICOM files with (imaging/studies.py):
# 0 is one per CPU, 1 the worker's own only.
IMAGING_INGEST_PROCESSES = envint("CASEBRIDGE_INGEST_PROCESSES", 0)
# Where clients reach the transfer server that moves download and upload bytes (casebridge/transfer/); empty:
# https://<PUBLIC_URL's host>:<its port>, as `casebridge serve` starts it. Set it behind a proxy.
TRANSFER_URL = env("CASEBRIDGE_TRANSFER_URL")
VAULT_CLAMD = env("CASEBRIDGE_CLAMD")  # e.g. unix:///run/clamav/clamd.ctl; scanning is off when empty
INVITATION_TTL_SECONDS = envint("CASEBRIDGE_INVITATION_TTL_SECONDS", 7 * 24 * 3600)
SETUP_LINK_TTL_SECONDS = 3600
EMERGENCY_ACCESS_MAX_HOURS = envint("CASEBRIDGE_EMERGENCY_ACCESS_MAX_HOURS", 24)
API_TOKEN_MAX_DAYS = envint("CASEBRIDGE_API_TOKEN_MAX_DAYS", 365)
# Scheduled backups (docs/backups.md): off until a destination is set. The worker writes a set
# every BACKUP_EVERY_HOURS and, given the key export and its passphrase file, runs a restore test
# every RESTORE_TEST_EVERY_HOURS. Failures are mailed to ADMINS ("Name <address>,...").
BACKUP_DESTINATION = env("CASEBRIDGE_BACKUP_DESTINATION")
BACKUP_EVERY_HOURS = envint("CASEBRIDGE_BACKUP_EVERY_HOURS", 24)
BACKUP_KEYS_FILE = env("CASEBRIDGE_BACKUP_KEYS_FILE")
BACKUP_KEYS_PASSPHRASE_FILE = env("CASEBRIDGE_BACKUP_KEYS_PASSPHRASE_FILE")
RESTORE_TEST_EVERY_HOURS = envint("CASEBRIDGE_RESTORE_TEST_EVERY_HOURS", 7 * 24)
# A folder destination: after each backup, sets older than this many days are removed (never the
# newest) with the blobs no remaining set names; 0 keeps every set. See "Crypto-shredding and
# backups" in docs/backups.md: this is how long a shredded file stays recoverable from backups.
BACKUP_FOLDER_KEEP_DAYS = envint("CASEBRIDGE_BACKUP_KEEP_DAYS", 0)
# restic repositories (CASEBRIDGE_BACKUP_DESTINATION=restic:<repository>): the password from a
# 0600 file (or CASEBRIDGE_RESTIC_PASSWORD in the environment), never a command line; after each
# backup `restic forget --prune` keeps this many daily and weekly snapshots (0 and 0: keep all).
BACKUP_RESTIC_PASSWORD_FILE = env("CASEBRIDGE_RESTIC_PASSWORD_FILE")
BACKUP_RESTIC_KEEP_DAILY = envint("CASEBRIDGE_RESTIC_KEEP_DAILY", 7)
BACKUP_RESTIC_KEEP_WEEKLY = envint("CASEBRIDGE_RESTIC_KEEP_WEEKLY", 5)
# How much of the repository's data a restore test's `restic check` reads back ("100%", "10%",
# "1/5"; empty: the structure only). The restore that follows reads the chosen snapshot anyway.
BACKUP_RESTIC_CHECK_READ_DATA = env("CASEBRIDGE_RESTIC_CHECK_READ_DATA", "100%")
# S3-compatible buckets (CASEBRIDGE_BACKUP_DESTINATION=s3://bucket/prefix): the endpoint (empty:
# AWS) and region here, credentials from boto3's usual places (AWS_ACCESS_KEY_ID/..., a profile,
# an instance role). In a bucket with object lock enabled, every object is locked for
# BACKUP_S3_LOCK_DAYS in BACKUP_S3_LOCK_MODE (COMPLIANCE or GOVERNANCE; 0 days: no lock).
BACKUP_S3_ENDPOINT = env("CASEBRIDGE_BACKUP_S3_ENDPOINT")
BACKUP_S3_REGION = env("CASEBRIDGE_BACKUP_S3_REGION")
BACKUP_S3_LOCK_MODE = env("CASEBRIDGE_BACKUP_S3_LOCK_MODE", "COMPLIANCE")
BACKUP_S3_LOCK_DAYS = envint("CASEBRIDGE_BACKUP_S3_LOCK_DAYS", 35)
# After how many days the bucket's lifecycle rule expires a set's objects (CaseBridge deletes
# nothing in a bucket). Only read to state, on destruction certificates, until when a shredded
# file can remain in backups; 0: no expiry is set, and certificates say there is no end.
BACKUP_S3_EXPIRE_DAYS = envint("CASEBRIDGE_BACKUP_S3_EXPIRE_DAYS", 0)
ADMINS = [(name, address) for name, address in getaddresses([env("CASEBRIDGE_ADMINS")]) if address]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Application logs never carry PHI: they name requests by id and objects by internal id only.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("CASEBRIDGE_LOG_LEVEL", "INFO")},
    "filters": {"requests": {"()": "casebridge.core.redaction.RequestLogFilter"}},
    "loggers": {
        "django.security.DisallowedHost": {"level": "ERROR"},
        # One line per refusal, no traceback, no secret path segment (core/redaction.py).
        "django.request": {"filters": ["requests"]},
        # pydicom's warnings name the file they read, and names inside an uploaded archive often
        # carry the patient's name: none of it reaches the log.
        "pydicom": {"level": "CRITICAL", "propagate": False},
    },
}

if not ALLOWED_HOSTS:
    raise ConfigurationError("CASEBRIDGE_ALLOWED_HOSTS must name at least one host")
