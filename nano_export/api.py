"""The HTTP API under ``/api/``: Starlette routes served by the dashboard's own server.

``app.py`` mounts :func:`routes` (and :func:`middleware`) on Streamlit's ``st.App``. A caller is
identified by ``Authorization: Bearer TOKEN`` (see :mod:`nano_export.tokens`) or by the dashboard's
login cookie (streamlit-authenticator's HS256 JWT, signed with ``settings.resolved_secret()``); the
role always comes from the credentials file. Domain errors become ``{"error": reason}`` with their
``http_status``; no traceback reaches a client. Database work runs in a worker thread so the event
loop that also serves the dashboard never waits on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal
from urllib.parse import quote

import jwt
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nano_export import auth, health, jobs, logs, metrics, tokens
from nano_export.api_docs import openapi_document
from nano_export.db import get_engine
from nano_export.errors import AuthenticationFailed, BadInput, NanoExportError
from nano_export.models import ExportRecord, ExportRequest, Role
from nano_export.settings import Settings, get_settings
from nano_export.storage import Storage, get_storage

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1_000_000
CONTENT_TYPES: Final = {"csv": "text/csv; charset=utf-8", "csv.gz": "application/gzip"}


@dataclass(frozen=True)
class Caller:
    """Who is calling, with the role read from the credentials file."""

    user: str
    role: Role
    via: Literal["token", "cookie"]


class ApiError(NanoExportError):
    """An HTTP-level refusal that is not a domain error (bad JSON, body too large, …)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.http_status = status


def user_from_login_cookie(value: str, *, secret: str, now: float | None = None) -> str | None:
    """The user of a streamlit-authenticator login cookie, or None if forged, malformed or expired.

    streamlit-authenticator 0.4.2 signs ``{"username": ..., "exp_date": <unix time>}`` with HS256;
    both the signature and ``exp_date`` are checked here.
    """
    try:
        payload = jwt.decode(value, secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    username = payload.get("username")
    expires = payload.get("exp_date")
    if not isinstance(username, str) or not username.strip():
        return None
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return None
    if expires <= (time.time() if now is None else now):
        return None
    return username.strip().lower()


class _Context:
    """Settings and engine, built once per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return get_engine(self.settings.db_url)

    @cached_property
    def storage(self) -> Storage:
        return get_storage(self.settings)

    def authenticate(self, authorization: str | None, cookies: dict[str, str]) -> Caller:
        """The caller of a request; AuthenticationFailed unless the credentials are valid."""
        settings = self.settings
        via: Literal["token", "cookie"]
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise AuthenticationFailed("use the header 'Authorization: Bearer TOKEN'")
            user = tokens.user_for_token(self.engine, credential.strip())
            if user is None:
                raise AuthenticationFailed("invalid or revoked API token")
            via = "token"
        else:
            cookie = cookies.get(auth.cookie_name(settings.auth_file))
            if cookie is None:
                raise AuthenticationFailed(
                    "authentication required: send 'Authorization: Bearer TOKEN' "
                    "(nano-export tokens create NAME) or log in to the dashboard"
                )
            user = user_from_login_cookie(cookie, secret=settings.resolved_secret())
            if user is None:
                raise AuthenticationFailed("the login cookie is invalid or expired; log in again")
            via = "cookie"
        role = auth.role_of(settings.auth_file, user)
        if role is None:
            raise AuthenticationFailed(f"user {user!r} no longer exists")
        return Caller(user=user, role=role, via=via)


Handler = Callable[[Request, Caller, _Context], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="nano-export"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _endpoint(
    ctx: _Context, handler: Handler, *, public: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with authentication, error mapping and one structured log line."""

    async def endpoint(request: Request) -> Response:
        with logs.bind(interface="api"):
            return await _serve(request)

    async def _serve(request: Request) -> Response:
        started = time.perf_counter()
        user: str | None = None
        try:
            if public:
                caller = Caller(user="-", role="viewer", via="token")
            else:
                caller = await run_in_threadpool(
                    ctx.authenticate, request.headers.get("authorization"), dict(request.cookies)
                )
                user = caller.user
            with logs.bind(user=user):
                response = await handler(request, caller, ctx)
        except NanoExportError as exc:
            response = _error(exc.http_status, str(exc))
        except Exception:
            log.exception("api request failed", extra={"path": request.url.path, "user": user})
            response = _error(500, "internal error; the server log has the details")
        log.info(
            "api request",
            extra={
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "user": user,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return response

    return endpoint


def _validation_message(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = [{"loc": [str(p) for p in err["loc"]], "msg": err["msg"]} for err in exc.errors()]
    parts = [f"{'.'.join(d['loc']) or 'body'}: {d['msg']}" for d in details]
    return "invalid request: " + "; ".join(parts), details


async def _read_request(request: Request, caller: Caller) -> ExportRequest:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if caller.via == "cookie" and content_type != "application/json":
        # A cross-site form cannot send application/json without a CORS preflight.
        raise ApiError("send the request body as application/json", 415)
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise ApiError(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
    body = await request.body()
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise BadInput(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object with at least 'dataset'")
    try:
        # Strict JSON: true/false for booleans (not "yes" or 0), arrays for lists.
        return ExportRequest.model_validate_json(body, strict=True)
    except ValidationError as exc:
        message, _ = _validation_message(exc)
        raise BadInput(message) from None


async def _create(request: Request, caller: Caller, ctx: _Context) -> Response:
    export_request = await _read_request(request, caller)
    record = await run_in_threadpool(
        jobs.submit_export,
        ctx.engine,
        ctx.settings,
        user=caller.user,
        role=caller.role,
        request=export_request,
        interface="api",
    )
    return JSONResponse(
        {"id": record.id, "status": record.status},
        status_code=202,
        headers={"Location": f"/api/exports/{record.id}"},
    )


async def _list(request: Request, caller: Caller, ctx: _Context) -> Response:
    everyone = request.query_params.get("all", "").lower() in ("1", "true", "yes")
    if everyone and caller.role != "admin":
        raise ApiError("only admins may list everyone's exports (?all=1)", 403)
    records: list[ExportRecord] = await run_in_threadpool(
        jobs.list_exports,
        ctx.engine,
        user=None if everyone else caller.user,
        settings=ctx.settings,
    )
    if everyone:
        return JSONResponse([{**r.public(), "owner": r.owner} for r in records])
    return JSONResponse([r.public() for r in records])


async def _get(request: Request, caller: Caller, ctx: _Context) -> Response:
    record = await run_in_threadpool(
        jobs.get_export,
        ctx.engine,
        export_id=request.path_params["export_id"],
        user=caller.user,
        role=caller.role,
        settings=ctx.settings,
    )
    return JSONResponse(record.public())


def _attachment(filename: str) -> str:
    """The ``Content-Disposition`` that Starlette's FileResponse sends for ``filename``."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


async def _download(request: Request, caller: Caller, ctx: _Context) -> Response:
    stored, record = await run_in_threadpool(
        jobs.open_download,
        ctx.engine,
        export_id=request.path_params["export_id"],
        user=caller.user,
        role=caller.role,
        interface="api",
        storage=ctx.storage,
    )
    headers = {"X-Content-SHA256": record.sha256} if record.sha256 else {}
    media_type = CONTENT_TYPES[record.format]
    if stored.local_path is not None:
        return FileResponse(
            stored.local_path, media_type=media_type, filename=record.file_name, headers=headers
        )
    # From a remote store: the same headers FileResponse sends, the bytes read as they are sent.
    headers["Content-Disposition"] = _attachment(record.file_name)
    headers["Content-Length"] = str(stored.size)
    return StreamingResponse(
        iterate_in_threadpool(stored.iter_bytes()), media_type=media_type, headers=headers
    )


async def _health(request: Request, caller: Caller, ctx: _Context) -> Response:
    result = await run_in_threadpool(health.check, ctx.engine, ctx.settings, ctx.storage)
    return JSONResponse(result.public(), status_code=200 if result.ok else 503)


async def _metrics(request: Request, caller: Caller, ctx: _Context) -> Response:
    if not ctx.settings.metrics_public and caller.role != "admin":
        raise ApiError("only admins may read the metrics (or set NANO_EXPORT_METRICS_PUBLIC)", 403)
    body = await run_in_threadpool(metrics.render, ctx.engine)
    return Response(body, media_type=metrics.CONTENT_TYPE)


async def _openapi(request: Request, caller: Caller, ctx: _Context) -> Response:
    return JSONResponse(openapi_document())


async def _not_found(request: Request, caller: Caller, ctx: _Context) -> Response:
    raise ApiError(f"no API route {request.method} {request.url.path}", 404)


def routes(settings: Settings | None = None) -> list[BaseRoute]:
    """The API's routes, for ``st.App(..., routes=routes())``; settings default to the env.

    Settings are read here, so a bad ``NANO_EXPORT_*`` value stops the server at start.
    """
    ctx = _Context(settings or get_settings())
    logs.configure(ctx.settings.log_format)
    any_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/api/health", _endpoint(ctx, _health, public=True), methods=["GET"]),
        Route(
            "/api/metrics",
            _endpoint(ctx, _metrics, public=ctx.settings.metrics_public),
            methods=["GET"],
        ),
        Route("/api/openapi.json", _endpoint(ctx, _openapi, public=True), methods=["GET"]),
        Route("/api/exports", _endpoint(ctx, _create), methods=["POST"]),
        Route("/api/exports", _endpoint(ctx, _list), methods=["GET"]),
        Route("/api/exports/{export_id}", _endpoint(ctx, _get), methods=["GET"]),
        Route("/api/exports/{export_id}/download", _endpoint(ctx, _download), methods=["GET"]),
        Route("/api/{rest:path}", _endpoint(ctx, _not_found, public=True), methods=any_method),
    ]


class IdentityDownloads:
    """Serve export files as stored: keep Streamlit's gzip middleware off ``/download``.

    Re-compressing a large CSV on the fly would cost seconds of CPU per download and drop the
    ``Content-Length``; a ``.csv.gz`` export is already compressed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and "/api/" in path and path.endswith("/download"):
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
        await self.app(scope, receive, send)


def middleware() -> list[Middleware]:
    """Middleware for ``st.App(..., middleware=middleware())``."""
    return [Middleware(IdentityDownloads)]
