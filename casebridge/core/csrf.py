"""Same-origin posts under `Referrer-Policy: no-referrer`, for Django's CSRF origin check.

Under no-referrer, browsers send `Origin: null` (and no Referer) even on same-origin form posts,
which Django's CsrfViewMiddleware refuses. Fetch Metadata settles it: `Sec-Fetch-Site` is set by
the browser itself and cannot be written by page script, so `same-origin` there proves the post
came from our own pages; only then is the null origin replaced by our own before Django's
unchanged CSRF middleware runs. The CSRF token is still required, exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class FetchMetadataOriginMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if meta.get("HTTP_ORIGIN") == "null" and meta.get("HTTP_SEC_FETCH_SITE") == "same-origin":
            meta["HTTP_ORIGIN"] = f"{request.scheme}://{request.get_host()}"
        return self.get_response(request)
