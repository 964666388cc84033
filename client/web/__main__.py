"""`python -m client.web`: the web tier on its own, until `python -m client web` is wired."""

from __future__ import annotations

import argparse
import os
import sys

from .. import api
from .server import add_arguments, options_from_args, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client.web",
                                     description="Serve the web page for one stack.")
    parser.add_argument("--stack", default=os.environ.get("WQW_STACK", api.DEFAULT_STACK))
    parser.add_argument("--region")
    parser.add_argument("--profile")
    parser.add_argument("--endpoint-url")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        client = api.Client.connect(args.stack, profile=args.profile, region=args.region,
                                    endpoint_url=args.endpoint_url)
        return serve(client, **options_from_args(args))
    except api.ClientFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
