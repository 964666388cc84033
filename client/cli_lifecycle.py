"""The CLI's side of a job's life: `cancel JOB_ID ...`, a run's Ctrl-C, unfinished `result`s."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import api, lifecycle
from .cli_output import emit_json

# How long a Ctrl-C's cancel waits to say what became of each job.
INTERRUPT_CANCEL_WAIT_SECONDS = 5.0


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    cancel = commands.add_parser(
        "cancel", parents=[common], help="cancel queued or running jobs",
        description="Cancel jobs by id: a queued job never runs, a running one is stopped "
                    "within seconds; both are answered with the error code 'cancelled'. A job "
                    "that had finished keeps its result (docs/cancel.md).")
    cancel.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    cancel.add_argument("--wait", type=float, default=lifecycle.CANCEL_WAIT_SECONDS,
                        metavar="SECONDS",
                        help="how long to wait to learn what became of each job "
                             "(default: %(default)g)")


def add_interrupt_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cancel-on-interrupt", action="store_true",
                        help="Ctrl-C cancels the run's unfinished jobs (default: ask when on "
                             "a terminal, else leave them running: their results stay "
                             "readable with 'result JOB_ID')")


def run_cancel(args: argparse.Namespace) -> int:
    with api.Client.connect(args.stack, profile=args.profile, region=args.region,
                            endpoint_url=args.endpoint_url) as client:
        outcomes = lifecycle.cancel(client, args.job_ids, args.wait)
    if args.json:
        emit_json({"cancels": [outcome.document() for outcome in outcomes]})
    else:
        for outcome in outcomes:
            print(f"{outcome.job_id}: {outcome.outcome}: {outcome.message}")
    return 0


def on_interrupt(client: api.Client, args: argparse.Namespace, job_ids: list[str]) -> None:
    """Ctrl-C while waiting: cancel the unfinished jobs if asked to (or if the user says so)."""
    count = len(job_ids)
    if not getattr(args, "cancel_on_interrupt", False):
        if not (sys.stdin.isatty() and sys.stderr.isatty()) or not _confirm(count):
            print(f"\n{count} job(s) keep running; their results stay readable with "
                  f"'python -m client result JOB_ID'; cancel them with 'python -m client "
                  f"cancel {' '.join(job_ids[:3])}{' ...' if count > 3 else ''}'",
                  file=sys.stderr)
            return
    print(f"\ncancelling {count} job(s) ...", file=sys.stderr)
    outcomes = lifecycle.cancel(client, job_ids, INTERRUPT_CANCEL_WAIT_SECONDS)
    for outcome in outcomes:
        print(f"{outcome.job_id}: {outcome.outcome}", file=sys.stderr)


def _confirm(count: int) -> bool:
    try:
        answer = input(f"\ncancel the {count} unfinished job(s) of this run? [y/N] ")
    except (KeyboardInterrupt, EOFError):
        return False
    return answer.strip().lower() in ("y", "yes")


def report_unfinished(args: argparse.Namespace, client: api.Client, job_id: str) -> int:
    """`result JOB_ID` for a job without a stored result: running (where, how far) or queued."""
    state = lifecycle.job_state(client, job_id)
    if state["state"] not in (lifecycle.RUNNING, lifecycle.QUEUED):
        raise api.ClientFailure(f"job {job_id}: its result could not be read")
    if args.json:
        document: dict[str, Any] = {"job_id": job_id, "state": state["state"]}
        if state["state"] == lifecycle.RUNNING:
            running = state["running"]
            document.update(worker=running.worker, started_at=running.started_at,
                            elapsed_s=running.elapsed_s, fraction=running.fraction)
        else:
            document["cancel_requested"] = state["cancel_requested"]
        emit_json(document)
    elif state["state"] == lifecycle.RUNNING:
        print(f"job {job_id}: {lifecycle.running_text(state['running'])}")
    else:
        note = ", cancel requested" if state["cancel_requested"] else ""
        print(f"job {job_id}: queued{note} (no worker has started it; an id that was never "
              f"submitted, or whose result went to its waiting client, looks the same)")
    return 1
