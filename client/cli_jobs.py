"""The CLI's job commands: `run KIND` for any kind, `kinds`, `result`, and the shortcuts."""

from __future__ import annotations

import argparse
import glob
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from worker_src import registry, wire

from . import api, cli_lifecycle, lifecycle, names, numbers
from .cli_output import (
    Progress,
    emit_json,
    error_document,
    print_job_ids,
    print_value,
    report_failure,
)

INTEGER = re.compile(r"[+-]?[0-9]+")


def connect(args: argparse.Namespace) -> api.Client:
    client = api.Client.connect(args.stack, profile=args.profile, region=args.region,
                                endpoint_url=args.endpoint_url)
    client.on_interrupt = lambda job_ids: cli_lifecycle.on_interrupt(client, args, job_ids)
    return client


# ---- kinds ---------------------------------------------------------------------------

def run_kinds(args: argparse.Namespace) -> int:
    kinds = [kind.describe() for kind in registry.kinds().values()]
    if args.json:
        emit_json({"kinds": kinds})
        return 0
    for kind in kinds:
        usage = f" {kind['main_input'].upper()} ..." if kind["main_input"] else ""
        print(f"{kind['name']}{usage}: {kind['summary']}")
        for arg in kind["args"]:
            if arg["name"] == kind["main_input"]:
                continue
            default = "required" if arg["required"] else f"default {arg['default']}"
            print(f"  -a {arg['name']}=...  {arg['help']} ({arg['allowed']}; {default})")
    return 0


# ---- run KIND ---------------------------------------------------------------------------

def parse_job_args(kind: registry.Kind, pairs: list[str]) -> tuple[dict[str, Any],
                                                                    dict[str, Path]]:
    """-a NAME=VALUE pairs as the kind's values, and -a NAME=@PATH as files to upload."""
    values: dict[str, Any] = {}
    files: dict[str, Path] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise api.UsageError(f"-a expects NAME=VALUE, got {pair!r}")
        try:
            arg = kind.arg(name)
            if arg.type == registry.FILE:
                if not text.startswith("@"):
                    raise registry.ArgError(name, f"{name} is a file: write -a {name}=@PATH")
                path = Path(text[1:])
                if not path.is_file():
                    raise api.UsageError(f"{name}: {path}: no such file")
                files[name] = path
            else:
                values[name] = arg.parse(text)
        except registry.ArgError as exc:
            raise api.UsageError(exc.message) from None
    return values, files


def expand_files(patterns: list[str]) -> list[Path]:
    """The files named, with wildcards expanded here: Windows shells pass `*.jpg` as is."""
    paths = []
    for pattern in patterns:
        path = Path(pattern)
        if not path.exists() and glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            if not matches:
                raise api.UsageError(f"{pattern}: no files match")
            paths += matches
        elif not path.is_file():
            raise api.UsageError(f"{pattern}: no such file")
        else:
            paths.append(path)
    return paths


def run_kind(args: argparse.Namespace) -> int:
    kind = api.find_kind(args.kind)
    values, files = parse_job_args(kind, args.arg)
    if kind.main_input is None:
        if args.files:
            raise api.UsageError(f"{kind.name} takes no input file; give its arguments with -a")
        api.check_args(kind, {**values, **dict.fromkeys(files, "x")})
        if files:
            raise api.UsageError(f"{kind.name}: file arguments need an input file")
        return run_single(args, kind.name, values)
    if not args.files:
        raise api.UsageError(f"{kind.name} needs one or more input files")
    return run_on_files(args, kind, expand_files(args.files), values, files)


def run_single(args: argparse.Namespace, kind: str, values: dict[str, Any],
               upload: Any = None) -> int:
    """One job; `upload(client, job_id)`, if given, puts its input first and adds its args."""
    with connect(args) as client:
        job_id = wire.new_job_id()
        if upload is not None:
            values = {**values, **upload(client, job_id)}
        client.submit([(kind, values)], wait=not args.no_wait, job_ids=[job_id])
        if args.no_wait:
            return print_job_ids(args, [job_id])
        [result] = list(client.wait([job_id], args.timeout))
    if not result.ok:
        return report_failure(args, result)
    if args.json:
        emit_json({"job_id": job_id, "state": lifecycle.DONE, **result.value})
    else:
        print_value(result.value)
    return 0


def run_on_files(args: argparse.Namespace, kind: registry.Kind, inputs: list[Path],
                 values: dict[str, Any], files: dict[str, Path], label: str = "") -> int:
    """One job per input file; outputs to DIR/<stem>-<label or kind><ext>."""
    label = label or kind.name
    api.check_args(kind, {**values, kind.main_input: "x", **dict.fromkeys(files, "x")})
    # Outputs keep their input's format, so the input's name predicts a clash.
    predicted = [names.output_path(args.output_dir, p.name, label, p.name.lower())
                 for p in inputs]
    clashes = {d for d in predicted if predicted.count(d) > 1}
    if clashes:
        raise api.UsageError(f"two inputs would both be written to {sorted(clashes)[0]}; "
                             f"rename one or run them separately")
    progress = Progress(len(inputs), enabled=len(inputs) > 1 and not args.json)
    failures = 0
    rows: list[dict[str, Any]] = []
    with connect(args) as client, ThreadPoolExecutor(max_workers=8) as pool:
        progress.stage("uploading")
        job_ids = client.submit_files(kind.name, inputs, values, files, wait=not args.no_wait,
                                      on_upload=progress.tick)
        if args.no_wait:
            progress.done()
            return print_job_ids(args, job_ids)
        progress.stage("running")
        client.on_word = lambda: progress.show_running(len(client.running))
        progress.show_running(0)
        by_id = dict(zip(job_ids, inputs, strict=True))
        downloads = []
        for result in client.wait(job_ids, args.timeout):
            source = by_id[result.job_id]
            row: dict[str, Any] = {"input": str(source), "job_id": result.job_id,
                                   "ok": result.ok, "state": lifecycle.result_state(result)}
            progress.running = len(client.running)
            if result.ok and "output_key" in result.value:
                key = result.value["output_key"]
                row["output"] = str(names.output_path(args.output_dir, source.name, label, key))
                downloads.append(pool.submit(client.download_output, key, Path(row["output"])))
                downloads[-1].add_done_callback(lambda _f: progress.tick(None))
            elif result.ok:
                row["value"] = result.value
                progress.tick(None)
            else:
                failures += 1
                row["error"] = error_document(result)
                progress.tick(None)
                if not args.json:
                    progress.clear()
                    print(f"{source}: {result.error_code}: {result.error_message}",
                          file=sys.stderr)
            rows.append(row)
        for download in downloads:
            download.result()
    progress.done()
    if args.json:
        emit_json({"results": rows})
    else:
        for row in rows:
            if "output" in row:
                print(f"{row['input']} -> {row['output']}")
            elif row["ok"]:
                print(f"{row['input']}: {row['value']}")
    return 1 if failures else 0


# ---- the shortcuts ------------------------------------------------------------------------

def run_equalize(args: argparse.Namespace) -> int:
    return run_on_files(args, api.find_kind("equalize"), expand_files(args.images), {}, {},
                        label="equalized")


def read_integers(tokens: list[str]) -> list[int]:
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
    """Integers as arguments go in the message; a file or stdin is checked and streamed to S3."""
    if args.numbers and args.file:
        raise api.UsageError("give the integers as arguments or with --file, not both")
    if args.numbers:
        tokens = [t for arg in args.numbers for t in split_tokens(arg)]
        return run_single(args, "stats", {"numbers": read_integers(tokens)})
    if args.file is None and sys.stdin.isatty():
        read_integers([])  # UsageError: no integers given
    name = str(args.file) if args.file is not None else "<stdin>"

    def upload(client: api.Client, job_id: str) -> dict[str, Any]:
        try:
            source = args.file.open("rb") if args.file is not None else sys.stdin.buffer
        except OSError as exc:
            raise api.UsageError(f"cannot read {args.file}: {exc.strerror}") from None
        with source:
            key, _count = numbers.upload_numbers(client, job_id, source, name=name)
        return {"file": key}

    return run_single(args, "stats", {}, upload=upload)


# ---- result -----------------------------------------------------------------------------

def run_result(args: argparse.Namespace) -> int:
    with connect(args) as client:
        try:
            result = client.fetch_result(args.job_id)
        except api.ClientFailure:
            return cli_lifecycle.report_unfinished(args, client, args.job_id)
        if result.ok and args.output_dir and "output_key" in result.value:
            key = result.value["output_key"]
            client.download_output(key, args.output_dir / key.rsplit("/", 1)[-1])
    if not result.ok:
        return report_failure(args, result)
    if args.json:
        emit_json({"job_id": result.job_id, **result.value})
    else:
        print_value(result.value)
    return 0
