"""Search terms kept out of URLs. A term is usually a patient's name: pages post it, keep it in
the person's session under an opaque id, and redirect to results that carry only that id (in
browser history, proxies and the access log there is nothing to read; in another session the id
finds nothing)."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

SESSION_KEY = "cb_searches"
KEPT = 20  # a person's recent searches; older ids simply find nothing
MAX_TERM = 100
PARAM = "search"


def remember(request: HttpRequest, term: str) -> str:
    searches: dict[str, str] = dict(request.session.get(SESSION_KEY, {}))
    search_id = secrets.token_urlsafe(9)
    searches[search_id] = term
    request.session[SESSION_KEY] = dict(list(searches.items())[-KEPT:])
    return search_id


def recall(request: HttpRequest) -> tuple[str, str]:
    """(id, term) of the search this GET names, or ("", "") for none or an unknown id."""
    search_id = request.GET.get(PARAM, "")
    term = request.session.get(SESSION_KEY, {}).get(search_id, "") if search_id else ""
    return (search_id, term) if term else ("", "")


def redirect_to_results(request: HttpRequest, field: str, keep: tuple[str, ...] = ()) -> HttpResponse:
    """After a search form's POST: the same page, with the kept (harmless) fields and the id."""
    term = request.POST.get(field, "").strip()[:MAX_TERM]
    params = {name: request.POST[name] for name in keep if request.POST.get(name)}
    if term:
        params[PARAM] = remember(request, term)
    return redirect(f"{request.path}?{urlencode(params)}" if params else request.path)
