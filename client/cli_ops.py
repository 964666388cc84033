"""The CLI's operations commands: status (once, or --watch), logs, cleanup."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from . import api
from .cli_jobs import connect
from .cli_output import emit_json
from .status import StatusReader, recent_log_lines

PAUSE = time.sleep  # between two screens of a watch


def run_status(args: argparse.Namespace) -> int:
    if args.watch and args.json:
        raise api.UsageError("--watch redraws a screen for people and --json prints one "
                             "document for scripts: pick one (a script can run "
                             "'status --json' in its own loop)")
    if args.interval <= 0:
        raise api.UsageError(f"--interval must be more than 0 seconds, got {args.interval:g}")
    with connect(args) as client:
        reader = StatusReader(client)
        if args.watch:
            return watch(reader, args.interval)
        status = reader.read()
    if args.json:
        emit_json(status)
    else:
        print("\n".join(status_lines(status)))
    return 0


def status_lines(status: dict[str, Any]) -> list[str]:
    """The `status` screen."""
    lines = [f"stack         {status['stack']}",
             f"requests      {status['waiting']} waiting, {status['in_flight']} in flight"
             + (f", {status['running']} running" if "running" in status else "")]
    if status["waiting"]:
        if status["oldest_waiting_age_s"] is not None:
            as_of = status["oldest_waiting_as_of"]
            stamp = time.strftime("%H:%M", time.localtime(
                datetime.fromisoformat(as_of).timestamp()))
            lines.append(f"oldest job    waiting {duration(status['oldest_waiting_age_s'])} "
                         f"(CloudWatch, as of {stamp})")
        else:
            lines.append(f"oldest job    unknown: {status['oldest_waiting_note']}")
    dead = f"dead letters  {status['dead_letters']}"
    if status["oldest_dead_letter_age_s"] is not None:
        dead += f", the oldest sent {duration(status['oldest_dead_letter_age_s'])} ago"
    lines.append(dead + (" (python -m client dlq list)" if status["dead_letters"] else ""))
    workers = status["workers"]
    lines.append(f"workers       {len(workers)}" + (":" if workers else ""))
    lines += [f"  {w['id']}  {w['state']}  {w['health']}" for w in workers]
    if status["dashboard_url"]:
        lines.append(f"dashboard     {status['dashboard_url']}")
    return lines


def watch(reader: StatusReader, interval: float, stream: TextIO | None = None,
          sleep: Callable[[float], None] | None = None) -> int:
    """Redraw the status every `interval` seconds until Ctrl-C, which ends it with exit 0.

    A failure after the first screen is shown on the screen and retried at the next refresh.
    On a terminal the screen is cleared each time; elsewhere the screens follow each other.
    """
    stream = stream or sys.stdout
    sleep = sleep or PAUSE
    clear = "\033[H\033[2J" if stream.isatty() else "\n"
    first = True
    try:
        while True:
            try:
                lines = status_lines(reader.read())
            except api.ClientFailure as exc:
                if first:
                    raise
                lines = [f"error: {exc} (retrying)"]
            header = (f"every {interval:g} s, {time.strftime('%H:%M:%S')}, "
                      f"until Ctrl-C")
            stream.write(("" if first and not stream.isatty() else clear)
                         + "\n".join([header, "", *lines]) + "\n")
            stream.flush()
            first = False
            sleep(interval)
    except KeyboardInterrupt:
        return 0


def duration(seconds: float) -> str:
    """12 s, 5 min, 3 h 2 min, 2 d 4 h."""
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 2:
        return f"{minutes} min"
    if days < 2:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


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
