"""The command line: `python -m client COMMAND [options]`."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, NoRegionError

from worker_src import wire

from . import api

EXIT_CODES = """exit codes:
  0  success
  1  a job failed (its error is printed), or no stored result
  2  bad usage or bad input (e.g. a token that is not an integer)
  3  the stack was not found
  4  timed out waiting for results
  5  AWS unreachable, no credentials or region, or an AWS error
  130 interrupted (Ctrl-C); the run's reply queue is removed"""

INTEGER = re.compile(r"[+-]?[0-9]+")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", default=os.environ.get("WQW_STACK", api.DEFAULT_STACK),
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

    result = commands.add_parser("result", parents=[common],
                                 help="print a finished job's stored result",
                                 description="Print the result that a job stored in S3 "
                                             "(jobs sent with --no-wait, or undeliverable).")
    result.add_argument("job_id", metavar="JOB_ID")
    result.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                        help="for an image job, download its output here")

    commands.add_parser("status", parents=[common], help="queue depths and workers",
                        description="Show waiting and in-flight jobs, dead letters and workers.")

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
        description="Delete this stack's reply queues older than --older-than hours. A run "
                    "deletes its own queue on exit; a killed run leaves one behind.")
    cleanup.add_argument("--older-than", type=float, default=1.0, metavar="HOURS",
                         help="only queues created this long ago (default: %(default)g)")

    local = commands.add_parser(
        "local", help="run the whole stack on this machine (emulator + workers)",
        description="Start the AWS emulator on 127.0.0.1, deploy the CDK app's own template "
                    "into it, start workers, and stay in the foreground until Ctrl-C.")
    local.add_argument("--stack", default=api.DEFAULT_STACK, help="stack name")
    local.add_argument("--port", type=int, default=5000, help="emulator port (0: any free one)")
    local.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    local.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                       help="CDK context for the stack, e.g. -c visibility_timeout=30")
    local.add_argument("--json", action="store_true",
                       help="print the endpoint and outputs as one JSON line when ready")

    demo = commands.add_parser(
        "demo", help="one-shot: a temporary local stack, one job of each kind",
        description="Start a temporary local stack, run one stats job and one equalize job, "
                    "print the results and write the images to DIR.")
    demo.add_argument("-o", "--output-dir", type=Path, default=Path("demo-output"),
                      metavar="DIR", help="where to write the images (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except api.ClientFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoRegionError:
        print("error: no AWS region: set AWS_REGION or pass --region", file=sys.stderr)
        return api.AwsUnavailable.exit_code
    except BotoCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return api.AwsUnavailable.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def connect(args: argparse.Namespace) -> api.Client:
    return api.Client.connect(args.stack, profile=args.profile, region=args.region,
                              endpoint_url=args.endpoint_url)


# ---- stats ---------------------------------------------------------------------

def read_integers(tokens: Iterable[str]) -> list[int]:
    numbers = []
    for position, token in enumerate(tokens, start=1):
        if not INTEGER.fullmatch(token):
            raise api.UsageError(f"{token!r} is not an integer (item {position})")
        numbers.append(int(token))
    if not numbers:
        raise api.UsageError("no integers given: pass them as arguments, with --file, "
                             "or on stdin")
    return numbers


def split_tokens(text: str) -> list[str]:
    return [token for token in re.split(r"[\s,]+", text) if token]


def run_stats(args: argparse.Namespace) -> int:
    if args.numbers and args.file:
        raise api.UsageError("give the integers as arguments or with --file, not both")
    if args.file:
        try:
            tokens = split_tokens(args.file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise api.UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    elif args.numbers:
        tokens = [t for arg in args.numbers for t in split_tokens(arg)]
    elif not sys.stdin.isatty():
        tokens = split_tokens(sys.stdin.read())
    else:
        tokens = []
    numbers = read_integers(tokens)
    with connect(args) as client:
        [job_id] = client.submit([("stats", {"numbers": numbers})], wait=not args.no_wait)
        if args.no_wait:
            return print_job_ids(args, [job_id])
        [result] = list(client.wait([job_id], args.timeout))
    if not result.ok:
        return report_failure(args, result)
    if args.json:
        emit_json({"job_id": job_id, **result.value})
    else:
        width = max(len(key) for key in result.value)
        for key, value in result.value.items():
            print(f"{key:<{width}}  {value}")
    return 0


# ---- equalize --------------------------------------------------------------------

def output_path(output_dir: Path, image: Path) -> Path:
    return output_dir / f"{image.stem}-equalized{image.suffix}"


def expand_images(patterns: list[str]) -> list[Path]:
    """The files named, with wildcards expanded here: Windows shells pass `*.jpg` as is."""
    images = []
    for pattern in patterns:
        path = Path(pattern)
        if not path.exists() and glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            if not matches:
                raise api.UsageError(f"{pattern}: no files match")
            images += matches
        elif not path.is_file():
            raise api.UsageError(f"{pattern}: no such file")
        else:
            images.append(path)
    return images


def run_equalize(args: argparse.Namespace) -> int:
    images = expand_images(args.images)
    destinations = [output_path(args.output_dir, image) for image in images]
    clashes = {d for d in destinations if destinations.count(d) > 1}
    if clashes:
        raise api.UsageError(f"two inputs would both be written to {sorted(clashes)[0]}; "
                             f"rename one or run them separately")
    progress = Progress(len(images), enabled=len(images) > 1 and not args.json)
    failures = 0
    rows: list[dict[str, Any]] = []
    with connect(args) as client, ThreadPoolExecutor(max_workers=8) as pool:
        progress.stage("uploading")
        job_ids = client.submit_images(images, wait=not args.no_wait, on_upload=progress.tick)
        if args.no_wait:
            progress.done()
            return print_job_ids(args, job_ids)
        progress.stage("equalizing")
        by_id = dict(zip(job_ids, zip(images, destinations, strict=True), strict=True))
        downloads = []
        for result in client.wait(job_ids, args.timeout):
            image, destination = by_id[result.job_id]
            row: dict[str, Any] = {"input": str(image), "job_id": result.job_id, "ok": result.ok}
            if result.ok:
                row["output"] = str(destination)
                downloads.append(pool.submit(client.download_output,
                                             result.value["output_key"], destination))
                downloads[-1].add_done_callback(lambda _f: progress.tick(None))
            else:
                failures += 1
                row["error"] = {"code": result.error_code, "message": result.error_message}
                progress.tick(None)
                if not args.json:
                    progress.clear()
                    print(f"{image}: {result.error_code}: {result.error_message}",
                          file=sys.stderr)
            rows.append(row)
        for download in downloads:
            download.result()
    progress.done()
    if args.json:
        emit_json({"results": rows})
    else:
        for row in rows:
            if row["ok"]:
                print(f"{row['input']} -> {row['output']}")
    return 1 if failures else 0


# ---- result, status, cleanup ---------------------------------------------------------

def run_result(args: argparse.Namespace) -> int:
    with connect(args) as client:
        result = client.fetch_result(args.job_id)
        if result.ok and args.output_dir and "output_key" in result.value:
            key = result.value["output_key"]
            name = Path(key.rsplit("/", 1)[-1])
            client.download_output(key, output_path(args.output_dir, name))
    if not result.ok:
        return report_failure(args, result)
    if args.json:
        emit_json({"job_id": result.job_id, **result.value})
    else:
        for key, value in result.value.items():
            print(f"{key}  {value}")
    return 0


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
    return 0


def stack_status(client: api.Client) -> dict[str, Any]:
    depth = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    requests = api.aws_call(client.sqs.get_queue_attributes,
                            QueueUrl=client.stack.request_queue_url, AttributeNames=depth)
    dead = api.aws_call(client.sqs.get_queue_attributes,
                        QueueUrl=client.stack.dead_letter_queue_url, AttributeNames=depth)
    workers = []
    if client.stack.worker_group:
        autoscaling = client.session.client("autoscaling", endpoint_url=client.endpoint_url,
                                            config=api.AWS_CONFIG)
        groups = api.aws_call(autoscaling.describe_auto_scaling_groups,
                              AutoScalingGroupNames=[client.stack.worker_group])
        for group in groups["AutoScalingGroups"]:
            workers += [{"id": i["InstanceId"], "state": i["LifecycleState"],
                         "health": i["HealthStatus"]} for i in group["Instances"]]
    return {
        "stack": client.stack.name,
        "waiting": int(requests["Attributes"]["ApproximateNumberOfMessages"]),
        "in_flight": int(requests["Attributes"]["ApproximateNumberOfMessagesNotVisible"]),
        "dead_letters": int(dead["Attributes"]["ApproximateNumberOfMessages"]),
        "workers": workers,
    }


def run_logs(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if not client.stack.log_group:
            raise api.ClientFailure(f"stack {client.stack.name!r} has no LogGroupName output")
        lines = client.recent_log_lines(args.since * 60, args.limit)
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


# ---- local and demo (import the emulator lazily: the client needs boto3 only) -----------

def run_local(args: argparse.Namespace) -> int:
    from .local import serve

    return serve(stack_name=args.stack, port=args.port, workers=args.workers,
                 context=parse_context(args.context), as_json=args.json)


def run_demo(args: argparse.Namespace) -> int:
    from .local import demo

    return demo(args.output_dir)


def parse_context(pairs: list[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise api.UsageError(f"-c expects KEY=VALUE, got {pair!r}")
        context[key] = value
    return context


# ---- output helpers ------------------------------------------------------------------

def emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_job_ids(args: argparse.Namespace, job_ids: list[str]) -> int:
    if args.json:
        emit_json({"job_ids": job_ids})
    else:
        print("\n".join(job_ids))
    return 0


def report_failure(args: argparse.Namespace, result: wire.Result) -> int:
    if args.json:
        emit_json({"job_id": result.job_id, "ok": False,
                   "error": {"code": result.error_code, "message": result.error_message}})
    print(f"error: job {result.job_id} failed: {result.error_code}: {result.error_message}",
          file=sys.stderr)
    return 1


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.count = 0
        self.label = ""
        self.stream = stream
        self.enabled = enabled and stream.isatty()

    def stage(self, label: str) -> None:
        self.label, self.count = label, 0
        self._draw()

    def tick(self, value: Any) -> Any:
        self.count += 1
        self._draw()
        return value

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")

    def done(self) -> None:
        if self.enabled:
            self.clear()
            self.stream.flush()

    def _draw(self) -> None:
        if self.enabled:
            filled = 30 * self.count // max(1, self.total)
            self.stream.write(f"\r{self.label:<11} [{'#' * filled:<30}] "
                              f"{self.count}/{self.total}")
            self.stream.flush()


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": run_stats,
    "equalize": run_equalize,
    "result": run_result,
    "status": run_status,
    "logs": run_logs,
    "cleanup": run_cleanup,
    "local": run_local,
    "demo": run_demo,
}
