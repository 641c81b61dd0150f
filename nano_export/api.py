"""The HTTP API under ``/api/``: Starlette routes served by the dashboard's own server.

``app.py`` mounts :func:`routes` (and :func:`middleware`) on Streamlit's ``st.App``. A caller is
identified by ``Authorization: Bearer TOKEN`` (see :mod:`nano_export.tokens`) or by the dashboard's
login cookie (streamlit-authenticator's HS256 JWT, signed with ``settings.resolved_secret()``,
whose session must still be open server-side); the role always comes from the users table.
Domain errors become ``{"error": reason}`` with their ``http_status``; no traceback reaches a
client. Database work runs in a worker thread so the event
loop that also serves the dashboard never waits on it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nano_export import auth, health, jobs, logs, metrics, sessions, throttle, tokens, views
from nano_export.api_docs import openapi_document
from nano_export.db import get_engine
from nano_export.errors import AuthenticationFailed, BadInput, NanoExportError
from nano_export.formats import FORMATS
from nano_export.models import ExportRecord, ExportRequest, Role
from nano_export.settings import Settings, get_settings
from nano_export.storage import Storage, get_storage

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1_000_000
#: The download's Content-Type per export format.
CONTENT_TYPES: Final = {name: f.content_type for name, f in FORMATS.items()}
#: Arrays and objects inside each other; a real export request needs three.
MAX_JSON_DEPTH: Final = 16
#: Sent with every response of the server: no page may frame the dashboard or the API.
SECURITY_HEADERS: Final = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
#: Streamlit components (the login cookie's manager among them) are iframes of the dashboard's
#: own pages: those may be framed by the same origin, and by nothing else.
COMPONENT_HEADERS: Final = (
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
COMPONENT_PATH: Final = "/component/"
#: Streamlit's own metrics route answers without a login and has no setting to turn it off.
BLOCKED_PATHS: Final = ("/_stcore/metrics",)

_Body = TypeVar("_Body", bound=BaseModel)


@dataclass(frozen=True)
class Caller:
    """Who is calling, with the role read from the credentials file."""

    user: str
    role: Role
    via: Literal["token", "cookie"]
    credential: str = ""  # what the request rate is counted against


class ApiError(NanoExportError):
    """An HTTP-level refusal that is not a domain error (bad JSON, body too large, …)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.http_status = status


def user_from_login_cookie(value: str, *, secret: str, now: float | None = None) -> str | None:
    """The user a login cookie claims, or None if forged, malformed or expired.

    Only the signature and ``exp_date`` are checked here; :meth:`_Context.authenticate` also
    requires the cookie's session to be open.
    """
    claims = sessions.decode_cookie(value, secret=secret, now=now)
    return claims.username if claims else None


class _Context:
    """Settings and engine, built once per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rate = RateLimiter()

    @cached_property
    def engine(self) -> Engine:
        return get_engine(self.settings.db_url)

    @cached_property
    def storage(self) -> Storage:
        return get_storage(self.settings)

    def authenticate(
        self, authorization: str | None, cookies: dict[str, str], address: str | None = None
    ) -> Caller:
        """The caller of a request; AuthenticationFailed unless the credentials are valid.

        Failed credentials count against the client address with the login throttle's back-off:
        while an address is blocked its failures get 429 instead of 401. (Valid credentials still
        pass: a token cannot be guessed, and one bad client must not lock out a shared address.)
        Each credential may make ``API_REQUESTS_PER_MINUTE`` requests a minute.
        """
        try:
            caller = self._check(authorization, cookies)
        except AuthenticationFailed:
            key = throttle.address_key(address, kind="api")
            wait = throttle.wait_seconds(self.engine, [key])
            if wait > 0:
                raise TooManyRequests(
                    f"too many failed authentications: try again in {math.ceil(wait)} s", wait
                ) from None
            throttle.record_failure(
                self.engine,
                [key],
                free=self.settings.login_free_failures,
                base_s=self.settings.login_backoff_s,
            )
            raise
        self.rate.hit(caller.credential, self.settings.api_requests_per_minute)
        return caller

    def _check(self, authorization: str | None, cookies: dict[str, str]) -> Caller:
        settings = self.settings
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise AuthenticationFailed("use the header 'Authorization: Bearer TOKEN'")
            found = tokens.user_for_token(self.engine, credential.strip())
            if found is None:
                raise AuthenticationFailed("invalid, expired or revoked API token")
            return Caller(
                user=found.username,
                role=found.role,
                via="token",
                credential="token:" + tokens.hash_token(credential.strip()),
            )
        cookie = cookies.get(auth.COOKIE_NAME)
        if cookie is None:
            raise AuthenticationFailed(
                "authentication required: send 'Authorization: Bearer TOKEN' "
                "(nano-export tokens create NAME) or log in to the dashboard"
            )
        claims = sessions.decode_cookie(cookie, secret=settings.resolved_secret())
        if claims is None:
            raise AuthenticationFailed("the login cookie is invalid or expired; log in again")
        sid = claims.sid
        user = None
        if sid is not None:
            user = sessions.check_session(
                self.engine,
                sid,
                idle_timeout_min=settings.session_idle_timeout_min,
                username=claims.username,
            )
        if user is None or sid is None:
            raise AuthenticationFailed("the login session has ended; log in again")
        return Caller(user=user.username, role=user.role, via="cookie", credential="sid:" + sid)


class TooManyRequests(NanoExportError):
    """Too many requests for one credential, or too many failures from one address (429)."""

    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class RateLimiter:
    """Requests per credential per minute, counted in this process (a fixed one-minute window)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    def hit(self, credential: str, limit: int, now: float | None = None) -> None:
        """Count one request; TooManyRequests past ``limit`` in the current minute."""
        now = time.time() if now is None else now
        window = int(now // 60)
        with self._lock:
            if len(self._counts) > 10_000:  # old windows of idle credentials
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
            start, count = self._counts.get(credential, (window, 0))
            count = count + 1 if start == window else 1
            self._counts[credential] = (window, count)
        if count > limit:
            raise TooManyRequests(
                f"more than {limit} requests a minute for this credential; slow down",
                60 - now % 60,
            )


Handler = Callable[[Request, Caller, _Context], Awaitable[Response]]


def _error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="nano-export"'} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
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
                    ctx.authenticate,
                    request.headers.get("authorization"),
                    dict(request.cookies),
                    request.client.host if request.client else None,
                )
                user = caller.user
            with logs.bind(user=user):
                response = await handler(request, caller, ctx)
        except TooManyRequests as exc:
            response = _error(429, str(exc), exc.retry_after)
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


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, counted as it streams in: 413 past ``limit`` whatever the headers say.

    ``Content-Length`` is only a hint (a chunked body has none); the bytes are what count.
    """
    too_large = ApiError(f"the request body is larger than {limit} bytes", 413)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def check_nesting(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """BadInput (422) when the JSON nests arrays and objects deeper than ``limit``.

    Checked on the raw bytes before parsing, so a body of 100,000 ``[`` never reaches the parser.
    """
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise BadInput(f"the request body nests deeper than {limit} levels")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1


async def _read_body(request: Request, caller: Caller, model: type[_Body]) -> _Body:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if caller.via == "cookie" and content_type != "application/json":
        # A cross-site form cannot send application/json without a CORS preflight.
        raise ApiError("send the request body as application/json", 415)
    body = await read_body(request)
    check_nesting(body)
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise BadInput(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object with at least 'dataset'")
    try:
        # Strict JSON: true/false for booleans (not "yes" or 0), arrays for lists.
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        message, _ = _validation_message(exc)
        raise BadInput(message) from None


async def _create(request: Request, caller: Caller, ctx: _Context) -> Response:
    export_request = await _read_body(request, caller, ExportRequest)
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


async def _views_list(request: Request, caller: Caller, ctx: _Context) -> Response:
    found = await run_in_threadpool(views.list_views, ctx.engine, user=caller.user)
    return JSONResponse([v.public() for v in found])


async def _views_save(request: Request, caller: Caller, ctx: _Context) -> Response:
    body = await _read_body(request, caller, views.ViewRequest)
    view = await run_in_threadpool(
        views.save_view,
        ctx.engine,
        name=body.name,
        owner=caller.user,
        dataset=body.dataset,
        spec=body.filters,
        columns=body.columns,
        shared=body.shared,
    )
    return JSONResponse(view.public(), status_code=201)


async def _views_get(request: Request, caller: Caller, ctx: _Context) -> Response:
    view = await run_in_threadpool(
        views.get_view,
        ctx.engine,
        name=request.path_params["name"],
        user=caller.user,
        role=caller.role,
    )
    return JSONResponse(view.public())


async def _views_delete(request: Request, caller: Caller, ctx: _Context) -> Response:
    view = await run_in_threadpool(
        views.delete_view,
        ctx.engine,
        name=request.path_params["name"],
        user=caller.user,
        role=caller.role,
    )
    return JSONResponse({"deleted": view.ref})


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
        Route("/api/views", _endpoint(ctx, _views_list), methods=["GET"]),
        Route("/api/views", _endpoint(ctx, _views_save), methods=["POST"]),
        Route("/api/views/{name:path}", _endpoint(ctx, _views_get), methods=["GET"]),
        Route("/api/views/{name:path}", _endpoint(ctx, _views_delete), methods=["DELETE"]),
        Route("/api/{rest:path}", _endpoint(ctx, _not_found, public=True), methods=any_method),
    ]


class IdentityDownloads:
    """Serve export files as stored: keep Streamlit's gzip middleware off ``/download``.

    Re-compressing a large CSV on the fly would cost seconds of CPU per download and drop the
    ``Content-Length``; a ``.gz``, ``.xlsx`` or ``.parquet`` export is already compressed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and "/api/" in path and path.endswith("/download"):
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Forbid framing (components: same origin only); answer 404 on Streamlit's metrics route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        headers = COMPONENT_HEADERS if COMPONENT_PATH in path else SECURITY_HEADERS
        if any(path.endswith(blocked) for blocked in BLOCKED_PATHS):
            response = JSONResponse({"error": "not found"}, status_code=404)
            await response(scope, receive, self._with_headers(send, headers))
            return
        await self.app(scope, receive, self._with_headers(send, headers))

    @staticmethod
    def _with_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...]) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _v in message.get("headers", [])}
                extra = [(k, v) for k, v in headers if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return send_with_headers


def middleware() -> list[Middleware]:
    """Middleware for ``st.App(..., middleware=middleware())``."""
    return [Middleware(SecurityHeaders), Middleware(IdentityDownloads)]
