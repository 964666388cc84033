"""The CLI's operations commands: status, logs, cleanup."""

from __future__ import annotations

import argparse
import sys

from . import api
from .cli_jobs import connect
from .cli_output import emit_json
from .status import recent_log_lines, stack_status


def run_status(args: argparse.Namespace) -> int:
    with connect(args) as client:
        status = stack_status(client)
    if args.json:
        emit_json(status)
        return 0
    print(f"stack         {status['stack']}")
    print(f"requests      {status['waiting']} waiting, {status['in_flight']} in flight")
    print(f"dead letters  {status['dead_letters']}")
    workers = status["workers"]
    print(f"workers       {len(workers)}" + (":" if workers else ""))
    for worker in workers:
        print(f"  {worker['id']}  {worker['state']}  {worker['health']}")
    if status["dashboard_url"]:
        print(f"dashboard     {status['dashboard_url']}")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if not client.stack.log_group:
            raise api.ClientFailure(f"stack {client.stack.name!r} has no LogGroupName output")
        lines = recent_log_lines(client, args.since * 60, args.limit)
    if args.json:
        emit_json({"log_group": client.stack.log_group, "lines": lines})
        return 0
    if not lines:
        print(f"no log lines in {client.stack.log_group} in the last {args.since:g} minutes "
              f"(the local stack's workers log to the terminal of 'python -m client local')",
              file=sys.stderr)
    for line in lines:
        print(f"{line['time']}  {line['stream']}  {line['message']}")
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    with connect(args) as client:
        removed = client.remove_stale_reply_queues(args.older_than * 3600)
    if args.json:
        emit_json({"removed": removed})
    else:
        print(f"removed {len(removed)} stale reply queue(s)")
        for url in removed:
            print(f"  {url}")
    return 0
