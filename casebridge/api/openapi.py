"""The REST API's frame: the django-ninja instance, who may call it, RFC 9457 errors, and the
OpenAPI 3 document (typed endpoints plus the hand-written tus and file endpoints) with its docs.

Handlers live per domain (api/cases.py); everything here is shared plumbing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import URLPattern, URLResolver, path
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as SchemaError
from ninja.security.http import HttpAuthBase
from ninja.utils import check_csrf

from casebridge.access.guards import ACCESS_ATTR, public
from casebridge.access.policy import Forbidden
from casebridge.api import cases, imaging_orders, organization
from casebridge.api.auth import problem
from casebridge.api.errors import log_unexpected, server_error_problem
from casebridge.cases.teeth import ToothError

PREFIX = "/api/v1/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class CaseBridgeAuth(HttpAuthBase):
    """A bearer token (checked by ApiTokenMiddleware, which sets request.actor) or a signed-in
    person past MFA. Session callers are CSRF-checked on writes; token callers need not be."""

    openapi_scheme = "bearer"
    openapi_bearerFormat = "cb_<prefix>_<secret>"
    openapi_description = "An API token from Account > Security, sent as `Authorization: Bearer cb_...`."

    def __call__(self, request: HttpRequest) -> Any:
        actor = getattr(request, "actor", None)
        if actor is None:
            return None
        session_write = getattr(request, "api_token", None) is None and request.method not in SAFE_METHODS
        if session_write and check_csrf(request) is not None:
            raise HttpError(403, "CSRF check failed: send the page's CSRF token as the X-CSRFToken header.")
        return actor


api = NinjaAPI(
    title="CaseBridge API",
    version="1",
    description=(
        "Cases, their files and their conversation, for practices, labs and imaging centers. Every call acts for one "
        "organization: the API token's, or for a signed-in person the organization last opened. "
        "Objects outside it answer 404, missing permissions or token scopes 403; errors are RFC 9457 "
        "problem documents (`application/problem+json`)."
    ),
    auth=CaseBridgeAuth(),
    openapi_url=None,
    docs_url=None,
    urls_namespace="api-v1",
)
api.add_router("/", cases.router)
api.add_router("/", organization.router)
api.add_router("/", imaging_orders.router)


# --- errors: RFC 9457 everywhere -----------------------------------------------------------
def _problem(status: int, detail: str, **extra: Any) -> HttpResponse:
    return problem(status, TITLES.get(status, "Error"), detail, **extra)


def _schema_error(request: HttpRequest, exc: Any) -> HttpResponse:
    errors = []
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc[:1] == ["body"] and len(loc) > 1:
            del loc[1]  # ninja puts the handler's parameter name here: "body.body.items.0"
        detail = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append({"field": ".".join(loc), "detail": detail})
    return _problem(422, "The request does not match the schema; see `errors`.", errors=errors)


def _action_error(request: HttpRequest, exc: Any) -> HttpResponse:
    errors: list[dict[str, str | None]]
    if hasattr(exc, "error_dict"):
        errors = [{"field": f"body.{field}", "detail": m} for field, ms in exc.message_dict.items() for m in ms]
    else:
        errors = [{"field": None, "detail": m} for m in exc.messages]
    return _problem(422, " ".join(str(e["detail"]) for e in errors), errors=errors)


def _tooth_error(request: HttpRequest, exc: Any) -> HttpResponse:
    return _problem(422, str(exc), errors=[{"field": "body.items", "detail": str(exc)}])


def _unauthenticated(request: HttpRequest, exc: Any) -> HttpResponse:
    response = _problem(401, "Sign in, or send an API token as 'Authorization: Bearer <token>'.")
    response["WWW-Authenticate"] = 'Bearer realm="casebridge"'
    return response


def _forbidden(request: HttpRequest, exc: Any) -> HttpResponse:
    if exc.reason:  # not the role: the caller's side of the case does not do this
        return _problem(403, exc.reason, permission=exc.perm.value)
    scope = getattr(request, "api_token", None) is not None
    why = "Your role (or this token's scopes) does not allow" if scope else "Your role does not allow"
    return _problem(403, f"{why}: {exc.perm.label}.", permission=exc.perm.value)


def _not_found(request: HttpRequest, exc: Any) -> HttpResponse:
    return _problem(404, "No such object, or not yours to see.")


def _http_error(request: HttpRequest, exc: Any) -> HttpResponse:
    return _problem(exc.status_code, str(exc))


def _unexpected(request: HttpRequest, exc: Any) -> HttpResponse:
    log_unexpected(request, exc)
    return server_error_problem()


api.add_exception_handler(SchemaError, _schema_error)
api.add_exception_handler(DjangoValidationError, _action_error)
api.add_exception_handler(ToothError, _tooth_error)
api.add_exception_handler(AuthenticationError, _unauthenticated)
api.add_exception_handler(Forbidden, _forbidden)
api.add_exception_handler(Http404, _not_found)
api.add_exception_handler(HttpError, _http_error)
api.add_exception_handler(Exception, _unexpected)


# --- the document -------------------------------------------------------------------------
_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation errors, one per field (`field` null when the whole request is at fault)",
            "items": {
                "type": "object",
                "properties": {"field": {"type": ["string", "null"]}, "detail": {"type": "string"}},
                "required": ["detail"],
            },
        },
        "permission": {"type": "string"},
    },
    "required": ["title", "status", "detail"],
}
_ERROR_RESPONSES = {
    "400": "Malformed request (unparsable JSON, a foreign cursor)",
    "401": "No, unknown, expired or revoked credentials",
    "403": "Your role or the token's scopes do not allow this (or a session write without its CSRF token)",
    "404": "No such object, or not visible to your organization",
    "405": "Method not allowed",
    "422": "Invalid input; `errors` lists the fields; nothing was changed",
    "412": "tus: the Tus-Resumable header is missing or names another protocol version",
}


def _problems(*codes: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        c: {"description": _ERROR_RESPONSES[c], "content": {"application/problem+json": {"schema": ref}}} for c in codes
    }


_SECURITY: list[dict[str, list[str]]] = [{"CaseBridgeAuth": []}]
_FILE_ID = {"name": "file_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_UPLOAD_ID = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_TUS_RESUMABLE = {"name": "Tus-Resumable", "in": "header", "required": True, "schema": {"const": "1.0.0"}}
_VERSION = {
    "type": "object",
    "properties": {
        "version": {"type": "integer"},
        "size": {"type": "integer"},
        "sha256": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {"type": "string"},
    },
}
_FILE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string", "description": "Neutral name, never the uploaded one"},
        "type": {"type": "string"},
        "mime_type": {"type": "string"},
        "current_version": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "versions": {"type": "array", "items": {"$ref": "#/components/schemas/FileVersion"}},
    },
}

# The tus and file endpoints predate the typed API (they stream, and speak tus headers): their
# description is written by hand and tagged `x-casebridge-streaming` where a body is not JSON.
_HAND_WRITTEN_PATHS: dict[str, Any] = {
    "/api/v1/me": {
        "get": {
            "operationId": "api_me",
            "tags": ["account"],
            "summary": "Who this call acts as: a token, or the signed-in person",
            "description": (
                "`credential` is `token` or `session`. A token answers with its organization, role, "
                "scopes and expiry; a session with the organization last opened in the browser (null "
                "when the person belongs to several and opened none), the role there, `scopes: null` "
                "(a session is limited by role alone) and when the session ends at the latest."
            ),
            "security": _SECURITY,
            "responses": {
                "200": {
                    "description": "The credential, organization, principal, role, scopes and expiry",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_problems("401", "403"),
            },
        }
    },
    "/api/v1/uploads/": {
        "options": {
            "operationId": "tus_options",
            "tags": ["uploads"],
            "summary": "tus discovery: version, extensions, maximum size, checksum algorithms",
            "security": [],
            "responses": {"204": {"description": "Capabilities in Tus-* headers"}},
        },
        "post": {
            "operationId": "tus_create",
            "tags": ["uploads"],
            "summary": "Create an upload (tus creation, creation-with-upload)",
            "description": "Upload-Length and base64 Upload-Metadata (`filename`, optional `organization` for "
            "session callers). The Location header names the upload; when complete its responses carry "
            "`CaseBridge-File-Id`, which `POST /api/v1/cases/{number}/attachments` takes as `file_id`.",
            "x-casebridge-streaming": True,
            "security": _SECURITY,
            "parameters": [
                _TUS_RESUMABLE,
                {"name": "Upload-Length", "in": "header", "required": True, "schema": {"type": "integer"}},
                {"name": "Upload-Metadata", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": {
                "required": False,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {"201": {"description": "Created; see Location"}, **_problems("400", "401", "403", "404")},
        },
    },
    "/api/v1/uploads/{upload_id}": {
        "head": {
            "operationId": "tus_offset",
            "tags": ["uploads"],
            "summary": "Current offset of an upload (resume point)",
            "security": _SECURITY,
            "parameters": [_UPLOAD_ID],
            "responses": {
                "200": {"description": "Upload-Offset, Upload-Length, Upload-Expires headers"},
                **_problems("401", "403", "404"),
            },
        },
        "patch": {
            "operationId": "tus_append",
            "tags": ["uploads"],
            "summary": "Append bytes at Upload-Offset (optional Upload-Checksum: sha256)",
            "x-casebridge-streaming": True,
            "security": _SECURITY,
            "parameters": [
                _UPLOAD_ID,
                _TUS_RESUMABLE,
                {"name": "Upload-Offset", "in": "header", "required": True, "schema": {"type": "integer"}},
                {"name": "Upload-Checksum", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": {
                "required": True,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {"204": {"description": "Appended; new Upload-Offset"}, **_problems("400", "401", "404")},
        },
        "delete": {
            "operationId": "tus_terminate",
            "tags": ["uploads"],
            "summary": "Cancel an unfinished upload (tus termination)",
            "security": _SECURITY,
            "parameters": [_UPLOAD_ID, _TUS_RESUMABLE],
            "responses": {"204": {"description": "Cancelled"}, **_problems("401", "403", "404", "412")},
        },
    },
    "/api/v1/files/": {
        "get": {
            "operationId": "file_list",
            "tags": ["files"],
            "summary": "Files you may read: your unattached uploads and the files of visible cases",
            "security": _SECURITY,
            "parameters": [
                {
                    "name": "before",
                    "in": "query",
                    "description": "The previous page's `next_before`: files created before this time",
                    "schema": {"type": "string", "format": "date-time"},
                }
            ],
            "responses": {
                "200": {
                    "description": "A page of files",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_problems("400", "401"),
            },
        }
    },
    "/api/v1/files/{file_id}": {
        "get": {
            "operationId": "file_detail",
            "tags": ["files"],
            "summary": "A file and its versions",
            "security": _SECURITY,
            "parameters": [_FILE_ID],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/File"}}},
                },
                **_problems("401", "404"),
            },
        },
        "delete": {
            "operationId": "file_destroy",
            "tags": ["files"],
            "summary": 'Destroy a file beyond recovery (crypto-shredding); body {"reason": "..."}',
            "security": _SECURITY,
            "parameters": [_FILE_ID],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {"reason": {"type": "string", "minLength": 5}}}
                    }
                }
            },
            "responses": {"204": {"description": "Destroyed"}, **_problems("400", "401", "403", "404")},
        },
    },
    "/api/v1/files/{file_id}/content": {
        "get": {
            "operationId": "file_content",
            "tags": ["files"],
            "summary": "Download a file (single byte ranges supported)",
            "x-casebridge-streaming": True,
            "security": _SECURITY,
            "parameters": [
                _FILE_ID,
                {"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "Range", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                # The file's own type (model/stl, application/dicom, image/jpeg, ...).
                "200": {
                    "description": "The whole file",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "206": {
                    "description": "The requested range",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                **_problems("400", "401", "404"),
                "416": {
                    "description": "Range outside the file",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                },
            },
        }
    },
}


def build_document() -> dict[str, Any]:
    """The OpenAPI document: ninja's from the typed endpoints, errors made problem+json, and the
    hand-written endpoints added."""
    document = copy.deepcopy(dict(api.get_openapi_schema(path_prefix=PREFIX)))
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = _PROBLEM
    schemas["FileVersion"] = _VERSION
    schemas["File"] = _FILE
    components["securitySchemes"]["CaseBridgeAuth"]["bearerFormat"] = CaseBridgeAuth.openapi_bearerFormat
    for item in document["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            has_body = "requestBody" in operation or any(
                p.get("in") in ("query", "path") for p in operation.get("parameters", [])
            )
            codes = ["400", "401", "403", "404", "405", "422"] if has_body else ["400", "401", "403", "404", "405"]
            responses.update(_problems(*codes))
    document["paths"].update(copy.deepcopy(_HAND_WRITTEN_PATHS))
    document["servers"] = [{"url": "/"}]
    document["security"] = _SECURITY
    document["tags"] = [
        {"name": "cases", "description": "Cases, their workflow, attachments and messages"},
        {"name": "uploads", "description": "Resumable uploads (tus 1.0.0)"},
        {"name": "files", "description": "Downloads, versions, destruction"},
        {"name": "account", "description": "The calling token"},
        {"name": "organization", "description": "Your organization and its members (scope org:read)"},
        {"name": "audit", "description": "Your organization's audit log, read-only (scope audit:read)"},
    ]
    return document


@public
def openapi_json(request: HttpRequest) -> HttpResponseBase:
    """The document describes the API's shape only: no data, so it is public."""
    return JsonResponse(build_document(), json_dumps_params={"indent": 1})


@public
def docs(request: HttpRequest) -> HttpResponseBase:
    return render(request, "api/docs.html", {"openapi_url": f"{PREFIX}openapi.json"})


def _problem_405(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Ninja answers an unsupported method with plain text; make it a problem document too."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "problem" not in response.get("Content-Type", ""):
            allowed = response.get("Allow", "")
            response = _problem(405, f"Use {allowed}." if allowed else "Method not allowed.")
            if allowed:
                response["Allow"] = allowed
        return response

    return wrapper


def urlpatterns() -> tuple[list[URLPattern | URLResolver], str, str]:
    """Ninja's URL patterns, each marked for the URL coverage test: authentication is the
    CaseBridgeAuth above, authorization the policy inside each handler."""
    patterns, app_name, namespace = api.urls
    marked: list[URLPattern | URLResolver] = [
        path("openapi.json", openapi_json, name="openapi_json"),
        path("docs", docs, name="api_docs"),
    ]
    for pattern in patterns:
        assert isinstance(pattern, URLPattern)
        if pattern.name == "api-root":
            # Ninja needs this name to place its operations; the view itself only raises 404.
            setattr(pattern.callback, ACCESS_ATTR, "public")
            marked.append(pattern)
            continue
        callback = _problem_405(pattern.callback)
        setattr(callback, ACCESS_ATTR, "api")
        callback.csrf_exempt = True  # type: ignore[attr-defined]  # session writes: CaseBridgeAuth checks CSRF
        assert pattern.name is not None
        marked.append(path(str(pattern.pattern), callback, name=pattern.name))
    return marked, app_name, namespace
