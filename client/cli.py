"""The command line: `python -m client COMMAND [options]`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, NoRegionError

from worker_src.contract import Env

from . import api, cli_dlq, cli_lifecycle
from .cli_jobs import connect, run_equalize, run_kind, run_kinds, run_result, run_stats
from .cli_ops import run_cleanup, run_logs, run_status
from .cli_output import printable
from .web import options as web_options

EXIT_CODES = """exit codes:
  0  success
  1  a job failed (its error is printed), or no stored result
  2  bad usage or bad input (e.g. a token that is not an integer)
  3  the stack was not found
  4  timed out waiting for results
  5  AWS unreachable, no credentials or region, or an AWS error
  130 interrupted (Ctrl-C); the run's reply queue is removed"""
# Commands that take files (or numbers) and options in any order.
INTERMIXED = ("stats", "equalize", "run")
FORCE_HELP = ("replace existing output files (default: write the next free numbered name, "
              "e.g. photo-equalized-1.jpg)")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The CLI's parser, and each command's own parser by name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", default=os.environ.get(Env.STACK, api.DEFAULT_STACK),
                        help="CloudFormation stack name (default: %(default)s, or $WQW_STACK)")
    common.add_argument("--region", help="AWS region (default: $AWS_REGION / your profile)")
    common.add_argument("--profile", help="AWS profile (default: $AWS_PROFILE)")
    common.add_argument("--endpoint-url", default=None,
                        help="AWS endpoint, e.g. a local stack (default: $AWS_ENDPOINT_URL)")
    common.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout and nothing else there")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                         help="give up waiting after this long (default: %(default)g)")
    waiting.add_argument("--no-wait", action="store_true",
                         help="submit only and print the job ids; read results with 'result'")
    cli_lifecycle.add_interrupt_option(waiting)

    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="Submit jobs to a web-queue-worker stack and wait for their results.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    stats = commands.add_parser(
        "stats", parents=[common, waiting], help="statistics of a list of integers",
        description="Print count, min, max, sum, average and median of integers given as "
                    "arguments, in --file, or on stdin (separated by spaces, commas or lines).")
    stats.add_argument("numbers", nargs="*", metavar="N")
    stats.add_argument("--file", type=Path, help="read the integers from this file")

    equalize = commands.add_parser(
        "equalize", parents=[common, waiting], help="histogram-equalize images",
        description="Upload images, equalize them on the workers, download the results "
                    "as DIR/<stem>-equalized<ext>.")
    equalize.add_argument("images", nargs="+", metavar="IMAGE",
                          help="image files; wildcards such as photos/*.jpg also work where "
                               "the shell does not expand them")
    equalize.add_argument("-o", "--output-dir", type=Path, default=Path("."), metavar="DIR",
                          help="where to write the results (default: current directory)")
    equalize.add_argument("--force", action="store_true", help=FORCE_HELP)

    run = commands.add_parser(
        "run", parents=[common, waiting], help="run any job kind (see 'kinds')",
        description="Submit jobs of any registered kind: one job per FILE for kinds that take "
                    "an input file, else one job. Outputs go to DIR/<stem>-<kind><ext>.",
        epilog="examples:\n  python -m client run gamma photo.jpg -a gamma=0.5 -o out/\n"
               "  python -m client run match photo.jpg -a reference=@ref.jpg\n"
               "  python -m client run stats -a numbers=3,1,2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("kind", metavar="KIND", help="a job kind from 'python -m client kinds'")
    run.add_argument("files", nargs="*", metavar="FILE",
                     help="input files (wildcards such as photos/*.jpg work in any shell)")
    run.add_argument("-a", "--arg", action="append", default=[], metavar="NAME=VALUE",
                     help="an argument of the kind; NAME=@PATH uploads a file (repeatable)")
    run.add_argument("-o", "--output-dir", type=Path, default=Path("."), metavar="DIR",
                     help="where to write output files (default: current directory)")
    run.add_argument("--force", action="store_true", help=FORCE_HELP)

    kinds = commands.add_parser(
        "kinds", help="the job kinds the workers run, with their arguments",
        description="List the registered job kinds, their arguments, types, ranges and "
                    "defaults (from the job registry; no AWS call).")
    kinds.add_argument("--json", action="store_true", help="print one JSON document")

    result = commands.add_parser("result", parents=[common],
                                 help="a job's stored result, or whether it is queued or running",
                                 description="Print the result that a job stored in S3 "
                                             "(jobs sent with --no-wait, or undeliverable); "
                                             "for an unfinished job, whether it is queued or "
                                             "running (since when, on which worker, how far).")
    result.add_argument("job_id", metavar="JOB_ID")
    result.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                        help="for an image job, download its output here")
    result.add_argument("--force", action="store_true", help=FORCE_HELP)

    status = commands.add_parser(
        "status", parents=[common], help="queue depths, oldest ages, dead letters, workers",
        description="Show waiting and in-flight jobs, the age of the oldest waiting job and "
                    "of the oldest dead letter, the workers and the dashboard's URL.")
    status.add_argument("--watch", action="store_true",
                        help="redraw every --interval seconds until Ctrl-C (exit 0)")
    status.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="with --watch: seconds between refreshes (default: %(default)g)")

    cli_dlq.add_parser(commands, common)
    cli_lifecycle.add_parser(commands, common)

    logs = commands.add_parser(
        "logs", parents=[common], help="recent lines of the workers' logs",
        description="Print the workers' recent log lines from the stack's CloudWatch Logs "
                    "group (each instance's worker and install logs).")
    logs.add_argument("--since", type=float, default=30.0, metavar="MINUTES",
                      help="how far back to look (default: %(default)g minutes)")
    logs.add_argument("--limit", type=int, default=200, metavar="N",
                      help="at most this many lines, the newest (default: %(default)s)")

    cleanup = commands.add_parser(
        "cleanup", parents=[common], help="delete reply queues left behind by crashed runs",
        description="Delete this stack's reply queues (tagged as its own) that no client has "
                    "polled for --older-than hours. A run deletes its own queue on exit; a "
                    "killed run leaves one behind. A live client's queue is never deleted.")
    cleanup.add_argument("--older-than", type=float, default=1.0, metavar="HOURS",
                         help="only queues last polled this long ago (default: %(default)g; "
                              "at least 0.25: a live client tags its queue every 5 minutes)")

    local = commands.add_parser(
        "local", help="run the whole stack on this machine (emulator + workers)",
        description="Start the AWS emulator on 127.0.0.1, deploy the CDK app's own template "
                    "into it, start workers, and stay in the foreground until Ctrl-C.")
    local.add_argument("--stack", default=api.DEFAULT_STACK, help="stack name")
    local.add_argument("--port", type=int, default=5000, help="emulator port (0: any free one)")
    local.add_argument("--workers", type=int, default=1,
                       help="a fixed number of worker processes (default: 1)")
    local.add_argument("--max-workers", type=int, metavar="N",
                       help="follow the stack's Auto Scaling group instead: it may grow to N "
                            "workers (-c max_workers=N), as many as its desired capacity says")
    local.add_argument("--min-workers", type=int, metavar="N",
                       help="with --max-workers: the group's minimum (-c min_workers=N)")
    local.add_argument("--start-delay", type=float, default=5.0, metavar="SECONDS",
                       help="with --max-workers: a new worker starts this long after its "
                            "instance appears, a warm start's stand-in (default: %(default)g)")
    local.add_argument("--idle-seconds", type=float, default=60.0, metavar="SECONDS",
                       help="with --max-workers: back to the minimum after this long with no "
                            "job waiting, the idle alarm's stand-in (default: %(default)g)")
    local.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                       help="CDK context for the stack, e.g. -c visibility_timeout=30")
    local.add_argument("--json", action="store_true",
                       help="print the endpoint and outputs as one JSON line when ready")
    local.add_argument("--web", action="store_true",
                       help="also serve the web page for the local stack (see 'web')")
    web_options.add_arguments(local, prefix="web-")

    web = commands.add_parser(
        "web", parents=[common], help="the browser front end for a stack, on this machine",
        description="Serve a web page for the stack on 127.0.0.1 until Ctrl-C: drop images, "
                    "paste numbers, watch the queues and dead letters. Prints one line "
                    "'web: http://127.0.0.1:PORT/?token=TOKEN' when ready (docs/web.md).")
    web_options.add_arguments(web)

    demo = commands.add_parser(
        "demo", help="one-shot: a temporary local stack, one job of each kind",
        description="Start a temporary local stack, run one stats job and one equalize job, "
                    "print the results and write the images to DIR.")
    demo.add_argument("-o", "--output-dir", type=Path, default=Path("demo-output"),
                      metavar="DIR", help="where to write the images (default: %(default)s)")
    return parser, commands.choices


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the files and options of stats, equalize and run in any order.

    argparse matches positionals greedily: after `run gamma`, FILE... has already matched
    nothing, so `run gamma -a gamma=0.5 photo.jpg` would be refused. Intermixed parsing
    (parse_intermixed_args) takes the options first and then the positionals; it does not
    work through subcommands, so the command's own parser is given the rest.
    """
    parser, commands = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in INTERMIXED:
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except api.ClientFailure as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except NoRegionError:
        print("error: no AWS region: set AWS_REGION or pass --region", file=sys.stderr)
        return api.AwsUnavailable.exit_code
    except BotoCoreError as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return api.AwsUnavailable.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---- local and demo (import the emulator lazily: the client needs boto3 only) -----------

def run_local(args: argparse.Namespace) -> int:
    from .local import serve

    web = web_options.options_from_args(args, prefix="web-") if args.web else None
    context = parse_context(args.context)
    if args.min_workers is not None and args.max_workers is None:
        raise api.UsageError("--min-workers needs --max-workers (the group to follow)")
    for name in ("max_workers", "min_workers"):
        if getattr(args, name) is not None:
            context[name] = str(getattr(args, name))
    return serve(stack_name=args.stack, port=args.port, workers=args.workers, context=context,
                 as_json=args.json, web=web, follow_group=args.max_workers is not None,
                 start_delay=args.start_delay, idle_seconds=args.idle_seconds)


def run_web(args: argparse.Namespace) -> int:
    from .web.server import serve

    return serve(connect(args), **web_options.options_from_args(args))


def run_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    return demo(args.output_dir)


def parse_context(pairs: list[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise api.UsageError(f"-c expects KEY=VALUE, got {pair!r}")
        context[key] = value
    return context


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": run_stats,
    "equalize": run_equalize,
    "run": run_kind,
    "kinds": run_kinds,
    "result": run_result,
    "status": run_status,
    "dlq": cli_dlq.run_dlq,
    "cancel": cli_lifecycle.run_cancel,
    "logs": run_logs,
    "cleanup": run_cleanup,
    "local": run_local,
    "web": run_web,
    "demo": run_demo,
}
