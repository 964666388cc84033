"""The CLI's `dlq` commands: list, show, redrive and purge the dead-letter queue (client/dlq.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import api, dlq
from .cli_jobs import connect
from .cli_output import emit_json, printable

DESCRIPTION = """Dead letters are job messages that failed every allowed receive, or that the
worker could not read. List them, look at one, put them back on the request queue once the
cause is fixed, or delete them for good. Reading them consumes nothing. See
docs/dead-letters.md."""


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `dlq ACTION` under the CLI's subcommands."""
    parser = commands.add_parser("dlq", help="dead letters: list, show, redrive, purge",
                                 description=DESCRIPTION)
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="every dead letter and why it is there",
                       description="List every dead letter: job id, kind, when it was "
                                   "submitted, receives, and why it is there. Nothing is "
                                   "consumed.")
    show = actions.add_parser("show", parents=[common], help="one dead letter, whole",
                              description="Print one dead letter: its body and attributes.")
    show.add_argument("ident", metavar="ID", help="its job id (or message id, see 'dlq list')")
    redrive = actions.add_parser(
        "redrive", parents=[common], help="put dead letters back on the request queue",
        description="Send dead letters back to the request queue (first), then delete them "
                    "from the dead-letter queue. The result goes to the job's reply queue if "
                    "it still exists, and to S3 ('result JOB_ID').")
    redrive.add_argument("idents", nargs="*", metavar="ID",
                         help="job ids (or message ids of unreadable messages)")
    redrive.add_argument("--all", action="store_true", help="every dead letter")
    redrive.add_argument("--force", action="store_true",
                         help="also redrive messages that are not valid jobs")
    purge = actions.add_parser("purge", parents=[common], help="delete every dead letter",
                               description="Delete every dead letter for good (SQS PurgeQueue, "
                                           "at most once a minute).")
    purge.add_argument("--yes", action="store_true", help="really delete them")


def run_dlq(args: argparse.Namespace) -> int:
    if args.dlq_action == "redrive" and args.all == bool(args.idents):
        raise api.UsageError("dlq redrive: name the jobs (ID ...) or pass --all, not both")
    if args.dlq_action == "purge" and not args.yes:
        raise api.UsageError("dlq purge deletes every dead letter for good; pass --yes to "
                             "confirm (nothing was deleted)")
    with connect(args) as client:
        return ACTIONS[args.dlq_action](client, args)


def _list(client: api.Client, args: argparse.Namespace) -> int:
    listing = dlq.list_dead_letters(client)
    letters = listing.dead_letters
    if args.json:
        emit_json(listing.document())
        return 0
    if not letters:
        print("no dead letters")
        return 0
    rows = [("JOB ID", "KIND", "SUBMITTED", "RECEIVES", "WHY")]
    for letter in letters:
        rows.append((letter.job_id or f"- (message {letter.message_id})", letter.kind or "-",
                     _time(letter.submitted_at), _text(letter.receives), letter.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row, letter in zip(rows, [None, *letters], strict=True):
        print(printable("  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4]))
        if letter is not None and not letter.readable:
            print(printable(f"  unreadable, {letter.size:,} bytes: {letter.preview}"))
    if listing.truncated:
        print(f"(only the first {len(letters)} were read)")
    return 0


def _show(client: api.Client, args: argparse.Namespace) -> int:
    letter = dlq.show(client, args.ident)
    document = letter.document()
    if args.json:
        emit_json(document)
        return 0
    for label, value in (("message id", letter.message_id), ("job id", letter.job_id),
                         ("kind", letter.kind),
                         ("submitted", letter.submitted_at and _time(letter.submitted_at)),
                         ("sent", _time(letter.sent_at)), ("receives", letter.receives),
                         ("why", letter.reason), ("unreadable", letter.problem)):
        if value is not None:
            print(printable(f"{label:<12}{value}"))
    print(f"{'size':<12}{letter.size:,} bytes")
    for name, value in sorted(letter.attributes.items()):
        print(printable(f"{'attribute':<12}{name} = {value}"))
    print("body:")
    body = document["body"]
    # json.dumps escapes every control character; any other body is escaped line by line.
    if not isinstance(body, str):
        try:
            print(json.dumps(body, indent=2))
            return 0
        except ValueError:  # an integer past the interpreter's digit limit
            body = letter.body
    print("\n".join(printable(line) for line in body.splitlines()))
    return 0


def _redrive(client: api.Client, args: argparse.Namespace) -> int:
    report = dlq.redrive(client, args.idents, every=args.all, force=args.force)
    if args.json:
        emit_json(report.document())
    else:
        how = ("StartMessageMoveTask " + str(report.task_handle) if report.method == "move-task"
               else "sent one by one, then deleted")
        print(f"redriven {len(report.redriven)} dead letter(s) to the request queue ({how})")
        for name in report.redriven:
            print(f"  {name}")
        if report.fallback:
            print(f"({report.fallback})")
    for name, why in report.refused:
        print(printable(f"error: {name} not redriven: {why}"), file=sys.stderr)
    for name in report.missing:
        print(printable(f"error: no dead letter with job id or message id {name}"),
              file=sys.stderr)
    for name in report.left_behind:
        print(f"error: {name} was sent back but is still a dead letter too (its delete "
              f"failed); do not redrive it again", file=sys.stderr)
    return 1 if report.refused or report.missing or report.left_behind else 0


def _purge(client: api.Client, args: argparse.Namespace) -> int:
    count = dlq.purge(client)
    if args.json:
        emit_json({"purged": count})
    else:
        print(f"purged {count} dead letter(s)")
    return 0


ACTIONS = {"list": _list, "show": _show, "redrive": _redrive, "purge": _purge}


def _time(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
