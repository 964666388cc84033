"""The web tier's command-line options (standard library only: every CLI command imports this)."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "::1")


def add_arguments(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """--port, --host and --no-browser, for `web`; prefix="web-" gives --web-port and
    --web-host, for `local --web` (whose --port is the emulator's)."""
    parser.add_argument(f"--{prefix}port", type=int, default=DEFAULT_PORT,
                        help="the web page's port (0: any free one; default: %(default)s)")
    parser.add_argument(f"--{prefix}host", default=DEFAULT_HOST,
                        help="the address to listen on (default: %(default)s, this machine "
                             "only); another address lets other machines reach the page "
                             "(with the token): a warning is printed")
    parser.add_argument("--no-browser", action="store_true",
                        help="do not open a browser; just print the URL")


def options_from_args(args: argparse.Namespace, *, prefix: str = "") -> dict[str, Any]:
    """serve()'s keyword arguments from add_arguments' options (--host is the explicit flag)."""
    dest = prefix.replace("-", "_")
    host = getattr(args, f"{dest}host")
    return {"host": host, "port": getattr(args, f"{dest}port"),
            "open_browser": not args.no_browser, "allow_remote": host != DEFAULT_HOST}
