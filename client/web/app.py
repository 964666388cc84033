"""The web app: the page, its static files and the JSON API under /api/ (Starlette)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from worker_src import wire

from .. import api
from . import backend
from . import lifecycle as web_lifecycle
from .errors import ApiError, bad_input, not_found
from .security import Guard, host_names
from .session import DONE, WebSession


class JSONResponse(StarletteJSONResponse):
    """JSON with every digit: a result's Decimals are written as JSON numbers in full."""

    def render(self, content: object) -> bytes:
        return wire.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# One image upload (the file and the form around it); the worker's own limit may be lower.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# Any other body, e.g. POST /api/stats: about 1.5 million integers. The CLI takes any size.
MAX_JSON_BYTES = 16 * 1024 * 1024
DEFAULT_KIND = "equalize"


def create_app(session: WebSession, *, token: str, host: str, port: int,
               max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_json_bytes: int = MAX_JSON_BYTES) -> Starlette:
    """The app for one session, answering to requests for host:port only."""
    api_routes = _Api(session, max_upload_bytes)
    routes = [
        Route("/", page),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/info", api_routes.info),
        Route("/api/kinds", api_routes.kinds),
        Route("/api/status", api_routes.status),
        Route("/api/dlq", api_routes.dead_letters),
        Route("/api/dlq/redrive", api_routes.redrive, methods=["POST"]),
        Route("/api/stats", api_routes.stats, methods=["POST"]),
        Route("/api/images", api_routes.images, methods=["POST"]),
        *web_lifecycle.routes(session, lambda document, status: JSONResponse(
            document, status_code=status)),
        Route("/api/jobs", api_routes.jobs),
        Route("/api/jobs/{job_id}", api_routes.job),
        Route("/api/jobs/{job_id}/output", api_routes.output),
        Route("/api/jobs/{job_id}/input", api_routes.input),
    ]
    # Cookies ignore the port: each server's cookie is named after its own.
    guard = Middleware(Guard, token=token, hosts=host_names(host, port),
                       cookie_name=f"wqw_token_{port}",
                       body_limits={"/api/images": max_upload_bytes},
                       default_body_limit=max_json_bytes)
    return Starlette(routes=routes, middleware=[guard], exception_handlers={
        ApiError: _api_error, HTTPException: _http_error,
        api.ClientFailure: _client_failure, Exception: _internal_error})


async def page(_request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


async def favicon(_request: Request) -> Response:
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon")


class _Api:
    def __init__(self, session: WebSession, max_upload_bytes: int) -> None:
        self.session = session
        self.max_upload_bytes = max_upload_bytes

    async def info(self, _request: Request) -> Response:
        return JSONResponse({"stack": self.session.client.stack.name,
                             "max_upload_bytes": self.max_upload_bytes,
                             "default_kind": DEFAULT_KIND,
                             "dead_letters": backend.dlq_available()})

    async def kinds(self, _request: Request) -> Response:
        return JSONResponse({"kinds": backend.describe_kinds()})

    async def status(self, _request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(backend.stack_status, self.session.client))

    async def dead_letters(self, _request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(backend.dead_letters, self.session.client))

    async def redrive(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise bad_input('the body must be JSON: {"ids": ["<job id>"]} or {"all": true}') \
                from None
        ids, every, force = _redrive_request(body)
        return JSONResponse(await run_in_threadpool(backend.redrive, self.session.client, ids,
                                                    every, force))

    async def stats(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise bad_input("the body must be JSON: {\"numbers\": [1, 2, 3]}") from None
        if not isinstance(body, dict) or len(body) != 1 or not {"numbers", "text"} >= body.keys():
            raise bad_input('the body must be {"numbers": [integers]} or {"text": "1 2 3"}')
        if "text" in body:
            if not isinstance(body["text"], str):
                raise bad_input("text must be a string of integers")
            numbers = backend.parse_numbers(body["text"])
        else:
            numbers = backend.check_numbers(body["numbers"])
        job_id = await run_in_threadpool(self.session.submit_stats, numbers)
        return JSONResponse({"job_id": job_id}, status_code=202)

    async def images(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise bad_input("send the image as multipart/form-data, in the field 'file'")
        try:
            form = await request.form(max_files=8, max_fields=64)
        except MultiPartException as exc:
            raise bad_input(f"the form cannot be read: {exc.message}") from None
        try:
            uploads = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
            if len(uploads) != 1:
                raise bad_input(f"send exactly one file in the field 'file' (got "
                                f"{len(uploads)}); one job per image")
            kind = form.get("kind") or DEFAULT_KIND
            if not isinstance(kind, str):
                raise bad_input("kind must be a text field naming the operation")
            texts: dict[str, str] = {}
            extra: dict[str, Any] = {}
            for name, value in form.multi_items():
                if name in ("file", "kind"):
                    continue
                if isinstance(value, UploadFile):
                    extra[name] = (value.filename or name, value.file)
                else:
                    texts[name] = value
            file = uploads[0]
            job_id = await run_in_threadpool(self.session.submit_image, kind,
                                             file.filename or "image", file.file, texts, extra)
        finally:
            await form.close()
        return JSONResponse({"job_id": job_id}, status_code=202)

    async def jobs(self, _request: Request) -> Response:
        return JSONResponse({"jobs": self.session.jobs()})

    async def job(self, request: Request) -> Response:
        return JSONResponse(self.session.job(request.path_params["job_id"]).view())

    async def output(self, request: Request) -> Response:
        job = self.session.job(request.path_params["job_id"])
        if job.input_key is None:
            raise not_found(f"job {job.job_id} ({job.kind}) has no output file")
        if job.state != DONE or job.output_key is None:
            message = (f"job {job.job_id} failed: {job.result.error_message}"
                       if job.result is not None else f"job {job.job_id} is still {job.state}")
            raise ApiError(409, "not_ready", message)
        download = None
        if request.query_params.get("download"):
            download = job.view()["download_name"]
        return await self._object(job.output_key, download)

    async def input(self, request: Request) -> Response:
        job = self.session.job(request.path_params["job_id"])
        if job.input_key is None:
            raise not_found(f"job {job.job_id} ({job.kind}) has no input file")
        return await self._object(job.input_key, None)

    async def _object(self, key: str, download: str | None) -> Response:
        chunks, content_type, length = await run_in_threadpool(
            backend.open_object, self.session.client, key)
        headers = {"content-length": str(length)}
        if download is not None:
            ascii_name = download.encode("ascii", "replace").decode().replace("?", "_")
            headers["content-disposition"] = (f'attachment; filename="{ascii_name}"; '
                                              f"filename*=UTF-8''{quote(download)}")
        return StreamingResponse(chunks, media_type=content_type, headers=headers)


def _redrive_request(body: Any) -> tuple[list[str], bool, bool]:
    """(ids, every, force) from {"ids": [...]} or {"all": true}, optional "force": true."""
    shape = 'the body must be {"ids": ["<job or message id>", ...]} or {"all": true}'
    if not isinstance(body, dict):
        raise bad_input(shape)
    unknown = sorted(set(body) - {"ids", "all", "force"})
    if unknown:
        raise bad_input(f"unknown field(s) {', '.join(unknown)}: {shape}")
    ids, every, force = body.get("ids"), body.get("all", False), body.get("force", False)
    if not isinstance(every, bool) or not isinstance(force, bool):
        raise bad_input("all and force must be true or false")
    if (ids is None) == (not every):
        raise bad_input(f"name the dead letters or ask for all, not both: {shape}")
    if ids is None:
        return [], True, force
    if not isinstance(ids, list) or not ids:
        raise bad_input("ids must be a non-empty list of job or message ids")
    for position, ident in enumerate(ids, start=1):
        if not isinstance(ident, str) or not ident.strip():
            raise bad_input(f"item {position} of ids ({json.dumps(ident)[:40]}) is not an id")
    return ids, False, force


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    message = exc.detail if exc.status_code != 404 else f"no such path: {request.url.path}"
    return JSONResponse({"error": {"code": code, "message": message}},
                        status_code=exc.status_code, headers=exc.headers)


async def _client_failure(_request: Request, exc: Exception) -> Response:
    code = "aws_unavailable" if isinstance(exc, api.AwsUnavailable) else "client_failure"
    return JSONResponse({"error": {"code": code, "message": str(exc)}}, status_code=502)


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.exception("web: unexpected error", exc_info=exc)
    return JSONResponse({"error": {"code": "internal", "message": "unexpected error in the "
                                   "web server; see its terminal"}}, status_code=500)
