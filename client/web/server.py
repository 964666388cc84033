"""Running the web tier: uvicorn on 127.0.0.1, the ready line, the browser, a clean exit.

    web = WebServer(client, port=0)   # binds now: the port is known before serving
    serve(client, port=8765)          # prints `web: http://127.0.0.1:8765/?token=...`,
                                      # runs until Ctrl-C / SIGTERM, deletes the reply queue
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from .. import api
from .app import MAX_UPLOAD_BYTES, create_app
from .options import DEFAULT_HOST, DEFAULT_PORT, LOOPBACK
from .session import WebSession

WILDCARDS = ("0.0.0.0", "::", "")


class WebServer:
    """One web server: its socket, its token, its session (reply queue) and uvicorn."""

    def __init__(self, client: api.Client, *, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, allow_remote: bool = False,
                 receive_wait_seconds: int = 20,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        if host in WILDCARDS:
            raise api.UsageError(f"--host {host!r} would answer on every address: give the "
                                 f"one address to listen on")
        if host not in LOOPBACK and not allow_remote:
            raise api.UsageError(f"listening on {host} lets other machines reach the page: "
                                 f"pass it with --host on purpose")
        self.host = host
        self.token = secrets.token_urlsafe(32)
        self.socket = _bind(host, port)
        self.port = self.socket.getsockname()[1]
        self.session = WebSession(client, receive_wait_seconds=receive_wait_seconds)
        app = create_app(self.session, token=self.token, host=host, port=self.port,
                         max_upload_bytes=max_upload_bytes)
        self.server = uvicorn.Server(uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, server_header=False,
            timeout_graceful_shutdown=3))

    @property
    def base_url(self) -> str:
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The one URL to open: it carries the token, which the page swaps for a cookie."""
        return f"{self.base_url}/?token={self.token}"

    def run(self, on_ready: Callable[[], None] = lambda: None) -> None:
        """Serve until uvicorn is told to exit (a signal in the main thread, or stop())."""

        async def serving() -> None:
            task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
            while not self.server.started and not task.done():
                await asyncio.sleep(0.02)
            if self.server.started:
                on_ready()
            await task

        asyncio.run(serving())

    def stop(self) -> None:
        self.server.should_exit = True

    def close(self) -> None:
        """Stop dispatching results and delete the reply queue."""
        self.session.close()
        self.socket.close()


def serve(client: api.Client, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          open_browser: bool = True, allow_remote: bool = False) -> int:
    """Serve the web page for `client`'s stack until Ctrl-C or SIGTERM; 0 when stopped."""
    web = WebServer(client, host=host, port=port, allow_remote=allow_remote)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_like_ctrl_c) if in_main else None
    try:
        web.session.start()
        if host not in LOOPBACK:
            print(f"warning: listening on {host}: anyone who can reach it and has the token "
                  f"can send jobs with your AWS credentials", file=sys.stderr)

        def ready() -> None:
            print(f"web: {web.url}", flush=True)
            if open_browser:
                _open_browser(web.url)

        web.run(ready)
    except KeyboardInterrupt:
        pass  # uvicorn has shut down; the signal that stopped it is raised again here
    finally:
        web.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


@contextmanager
def running(client: api.Client, **options: Any) -> Iterator[WebServer]:
    """A WebServer serving in a background thread (tests, benchmarks), closed on exit."""
    web = WebServer(client, **options)
    started = threading.Event()
    thread = threading.Thread(target=web.run, args=(started.set,), name="web", daemon=True)
    try:
        web.session.start()
        thread.start()
        if not started.wait(timeout=30):
            raise RuntimeError("the web server did not start")
        yield web
    finally:
        web.stop()
        if thread.is_alive():
            thread.join(timeout=10)
        web.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise api.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another "
                             f"--port (0 picks a free one)") from None


def _open_browser(url: str) -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        print("web: no display here; open the URL above in a browser", file=sys.stderr)
        return  # webbrowser would start a text browser in this terminal
    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def _stop_like_ctrl_c(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
