"""Browser-test fixtures and steps shared by every app: Debian's chromium through Playwright,
pointed at pytest-django's live server on `localhost`, and a person signing in with MFA."""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.cache import cache
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connection
from django.test.testcases import LiveServerThread
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from casebridge.accounts.models import User
from casebridge.core.testing import PASSWORD, totp_code

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Argon2 hashing on a shared two-core machine is slow; generous, but every wait ends on a condition.
TIMEOUT_MS = 20_000
SCREENSHOTS = Path(os.environ.get("CASEBRIDGE_SCREENSHOTS", "/tmp/casebridge-screens"))  # noqa: S108
TOTP_PERIOD = 30


@pytest.fixture(scope="module")
def browser(browser_executable: str) -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread; Django would then refuse every ORM
    # call made by the test itself (fixtures, assertions) as if it came from async code. Only while
    # the browser lives: left set, it would also fail `check --deploy` in later tests.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=browser_executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class _LiveApplication:
    """The live server's application, counting the requests in progress so that a test ends only
    once its pages' last requests are done (`settle`). Under SQLite it is also entered by one
    request at a time: the test database is in memory and the server's threads share its one
    connection, so two requests at once (a page's pictures load in parallel) would interleave their
    transactions on it and fail with "database table is locked". PostgreSQL gives each thread its
    own connection and needs no gate."""

    def __init__(self, app: Any, *, serialize: bool) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.serialize = serialize
        self.in_progress = 0
        self.changed = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # Counted (and, under SQLite, gated) until the server closes the response, not only until
        # the application returns: work runs at close too (the audit sealer, after the response is
        # sent: core/middleware.py).
        with self.changed:
            self.in_progress += 1
        if self.serialize:
            self.lock.acquire()
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return _DoneOnClose(result, self._done)

    def _done(self) -> None:
        if self.serialize:
            self.lock.release()
        with self.changed:
            self.in_progress -= 1
            self.changed.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.in_progress == 0, timeout=timeout):
                raise AssertionError(
                    f"the live server still serves {self.in_progress} request(s) after {timeout:.0f} s"
                )


class _DoneOnClose:
    """A response body that reports its request done once the server has closed it."""

    def __init__(self, result: Any, done: Callable[[], None]) -> None:
        self.result = result
        self.done: Callable[[], None] | None = done

    def __iter__(self) -> Any:
        return iter(self.result)

    def close(self) -> None:
        try:
            if hasattr(self.result, "close"):
                self.result.close()
        finally:
            done, self.done = self.done, None
            if done is not None:
                done()


def _live_application(live_server: object) -> _LiveApplication | None:
    httpd = getattr(getattr(live_server, "thread", None), "httpd", None)
    if httpd is None:
        return None
    if not isinstance(httpd.get_app(), _LiveApplication):
        httpd.set_app(_LiveApplication(httpd.get_app(), serialize=connection.vendor == "sqlite"))
    return cast(_LiveApplication, httpd.get_app())


# What a browser test leaves running: its contexts (pages) and the live server they talk to.
_open_contexts: list[BrowserContext] = []
_serving: list[_LiveApplication] = []


def settle() -> None:
    """Close the test's pages and wait for the requests they started, before any fixture is torn
    down (conftest's pytest_runtest_teardown): a page still loading thumbnails must not be served
    after the test's vault or settings are gone, nor write while the database is flushed."""
    while _open_contexts:
        _open_contexts.pop().close()
    while _serving:
        _serving.pop().wait_idle()


@pytest.fixture
def site(transactional_db: None, live_server: object, settings: object) -> str:
    """The live server's URL. Set up after the test database, whose flush then comes after the
    browser contexts are closed and the requests they started are done (`settle`, run by
    conftest's pytest_runtest_teardown before any fixture is torn down)."""
    app = _live_application(live_server)
    if app is not None:
        _serving.append(app)
    url: str = live_server.url  # type: ignore[attr-defined]
    # `localhost` (not 127.0.0.1) is a secure context: WebAuthn and `__Host-` cookies work there.
    url = url.replace("127.0.0.1", "localhost")
    assert url.startswith("http://localhost:")
    settings.PUBLIC_URL = url  # type: ignore[attr-defined]
    # Rate-limit counters and used TOTP codes live in the database cache, which outlives a test.
    cache.clear()
    return url


@pytest.fixture
def server_idle(site: str, live_server: object) -> Callable[[], AbstractContextManager[object]]:
    """`with server_idle():` around a test's own writes while pages may still be loading (a
    page's poll or pictures). Under SQLite they share the server's one connection: the write
    waits until no request is in progress and holds the next ones off ("database table is
    locked" otherwise). Under PostgreSQL it does nothing."""
    app = _live_application(live_server)
    return (lambda: app.lock) if app is not None and app.serialize else nullcontext


class _TLSServer(ThreadedWSGIServer):
    """Django's live server, speaking TLS: pages on an https origin, as under serve."""

    tls: ssl.SSLContext

    def server_bind(self) -> None:
        super().server_bind()
        self.socket = self.tls.wrap_socket(self.socket, server_side=True)


class _HTTPSStaticFilesHandler(StaticFilesHandler):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.url_scheme"] = "https"  # the TLS is this thread's, not a proxy's
        return super().__call__(environ, start_response)


@pytest.fixture
def https_site(transactional_db: None, settings: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The application over TLS on https://localhost:<port>, in this process (the test database),
    with the self-signed certificate from `transfer.testing.certificate(tmp_path)`: (url, tmp)."""
    from pytest_django.live_server_helper import LiveServer

    from casebridge.transfer.testing import certificate

    cert, key = certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = LiveServer("localhost:0", start=False)
    thread = type("TLSLiveServerThread", (LiveServerThread,), {"server_class": type("S", (_TLSServer,), {"tls": tls})})
    server.thread = thread("localhost", _HTTPSStaticFilesHandler, server.thread.connections_override, 0)
    server.thread.daemon = True
    server.start()
    url = f"https://localhost:{server.thread.port}"
    settings.PUBLIC_URL = url
    settings.CSRF_TRUSTED_ORIGINS = [url]
    cache.clear()
    yield url, tmp_path
    server.stop()


@pytest.fixture
def new_context(browser: Browser, site: str) -> Callable[[], BrowserContext]:

    def make() -> BrowserContext:
        context = browser.new_context(base_url=site, viewport={"width": 1100, "height": 850})
        context.set_default_timeout(TIMEOUT_MS)
        _open_contexts.append(context)  # closed by settle()
        return context

    return make


@pytest.fixture
def page(new_context: Callable[[], BrowserContext]) -> Page:
    return new_context().new_page()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def assert_no_inline_scripts(page: Page) -> None:
    """CSP forbids inline script; JSON data blocks are data, not script."""
    inline = page.eval_on_selector_all(
        "script:not([src])",
        "els => els.filter(e => e.type !== 'application/json').map(e => e.outerHTML.slice(0, 80))",
    )
    assert inline == []


def wait_for_room_in_totp_window(after_counter: int | None = None) -> int:
    """The current 30 s window's counter, after waiting for the next window when this one is about
    to end (the server must check the code in the same window) or was already used (replayed codes
    are refused)."""
    while True:
        now = time.time()
        counter = int(now) // TOTP_PERIOD
        left = TOTP_PERIOD - now % TOTP_PERIOD
        if left > 5 and (after_counter is None or counter > after_counter):
            return counter
        time.sleep(left + 0.05)


def sign_in_with_password(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def enter_mfa_code(page: Page, code: str) -> None:
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    page.get_by_label("Authenticator code").fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_in(page: Page, user: User) -> None:
    sign_in_with_password(page, user.email)
    wait_for_room_in_totp_window()
    enter_mfa_code(page, totp_code(user))


AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"


def accessibility_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core (npm, frontend/package.json) run on the page as it stands: one line per rule
    broken with an impact in `impacts`, naming the first few offending elements."""
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: run `make install` (npm ci installs axe-core)")
    # Evaluated through the DevTools protocol, which the page's CSP (script-src 'self', no inline
    # scripts) does not govern: an injected <script> tag would be refused, as it should be.
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;true")
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> " + ", ".join(n["target"][0] for n in v["nodes"][:3])
        for v in results["violations"]
        if v["impact"] in impacts
    ]


def overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: nothing scrolls sideways)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))
