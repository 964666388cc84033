"""The web tier's guard: Host, token, Origin and body-size checks, and the security headers.

Every HTTP request passes here before any route runs:

    Host not this server's own          -> 403 (DNS rebinding)
    no valid token (cookie or Bearer)   -> 401; GET /?token=T sets the cookie, redirects to /
    unsafe method from another Origin   -> 403 (CSRF); a cookie alone needs a matching Origin
    body over the route's limit         -> 413, from Content-Length before reading, or as
                                           soon as the streamed bytes pass it

Every response carries a Content-Security-Policy that allows scripts, styles and
connections from this server only (no inline script, nothing remote).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # the first URL carries the token
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def host_names(host: str, port: int) -> set[str]:
    """The Host header values of a server on host:port (localhost too on 127.0.0.1)."""
    names = {f"[{host}]:{port}" if ":" in host else f"{host}:{port}"}
    if host in ("127.0.0.1", "::1"):
        names |= {f"localhost:{port}", f"127.0.0.1:{port}"}
    return names


class Guard:
    """ASGI middleware: lets a request through only when it passes every check above."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: set[str], cookie_name: str,
                 body_limits: Mapping[str, int], default_body_limit: int) -> None:
        self.app = app
        self.token = token
        self.hosts = {host.lower() for host in hosts}  # "127.0.0.1:8765", "localhost:8765"
        self.origins = {f"http://{host}" for host in self.hosts}
        self.cookie_name = cookie_name
        self.body_limits = dict(body_limits)
        self.default_body_limit = default_body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _send_error(send, refusal)
            return
        if self._query_token_ok(scope):
            await self._send_cookie_and_redirect(send)
            return
        limit = self.body_limits.get(scope["path"], self.default_body_limit)
        await self.app(scope, _limited(receive, limit), send)

    def _refusal(self, scope: Scope, headers: Headers) -> ApiError | None:
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            return ApiError(403, "forbidden", f"this server answers only to the host(s) "
                                              f"{', '.join(sorted(self.hosts))}, not {host!r}")
        by = self._authenticated_by(scope, headers)
        if by is None:
            return ApiError(401, "unauthorized",
                            "this server needs its token: open the URL that "
                            "'python -m client web' printed, or send 'Authorization: "
                            "Bearer TOKEN'")
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin.lower() not in self.origins:
                return ApiError(403, "forbidden", f"requests from {origin!r} may not change "
                                                  f"anything here (cross-site request)")
            if origin is None and by == "cookie":
                return ApiError(403, "forbidden", "a browser request that changes something "
                                                  "must carry this server's Origin")
            limit = self.body_limits.get(scope["path"], self.default_body_limit)
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                return too_large(limit)
        return None

    def _authenticated_by(self, scope: Scope, headers: Headers) -> str | None:
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            return "bearer" if self._matches(authorization[7:].strip()) else None
        cookies = cookie_parser(headers.get("cookie", ""))
        if self._matches(cookies.get(self.cookie_name, "")):
            return "cookie"
        if self._query_token_ok(scope):
            return "query"
        return None

    def _query_token_ok(self, scope: Scope) -> bool:
        """GET / with ?token=T: the one request that may carry the token in its URL."""
        if scope["path"] != "/" or scope["method"] != "GET":
            return False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return self._matches((query.get("token") or [""])[0])

    def _matches(self, candidate: str) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def _send_cookie_and_redirect(self, send: Send) -> None:
        cookie = f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is over this server's limit of "
                                      f"{limit / 1024 / 1024:g} MiB")


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive` that raises a 413 ApiError once the body passes `limit` bytes."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(limit)
        return message

    return limited


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {name for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _send_error(send: Send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
