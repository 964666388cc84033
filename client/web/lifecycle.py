"""The page's view of a job's life: running words on its jobs, and its cancel buttons' API.

    POST /api/jobs/{job_id}/cancel      cancel one job of this session
    POST /api/jobs/cancel               cancel every unfinished job of this session

A cancel answers at once (202) with what is known; the job's `cancelled` result follows
through the session's reply queue like any result (docs/cancel.md).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker_src import wire
from worker_src import wire_lifecycle as lw

from .. import lifecycle


def running_view(running: lw.Running | None) -> dict[str, Any] | None:
    if running is None:
        return None
    return {"worker": running.worker, "started_at": running.started_at,
            "elapsed_s": running.elapsed_s, "fraction": running.fraction}


def result_state(result: wire.Result) -> str:
    return lifecycle.result_state(result)


def routes(session: Any, respond: Any) -> list[Route]:
    """The cancel routes of one session; `respond(document, status)` makes the response."""

    async def cancel_one(request: Request) -> Response:
        job = session.job(request.path_params["job_id"])
        return respond(await run_in_threadpool(session.cancel, [job.job_id]), 202)

    async def cancel_all(_request: Request) -> Response:
        return respond(await run_in_threadpool(session.cancel, None), 202)

    return [Route("/api/jobs/cancel", cancel_all, methods=["POST"]),
            Route("/api/jobs/{job_id}/cancel", cancel_one, methods=["POST"])]
