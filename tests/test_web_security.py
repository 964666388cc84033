"""The web tier's safety rules against in-process moto: token, Host, Origin, headers, the
upload cap, markup in file names, the listening address."""

import io
import json
import re
from pathlib import Path

import boto3
import pytest
from PIL import Image

from client import api
from client.web.app import create_app
from client.web.security import CSP
from client.web.session import WebSession
from tests.web_support import (
    AUTH,
    BASE,
    PORT,
    TOKEN,
    XSS_NAME,
    low_contrast,
    make_web,
    png_bytes,
    post_image,
    requests_waiting,
    wait_for,
)

STATIC = Path(__file__).resolve().parent.parent / "client" / "web" / "static"
# The fixtures stack, worker, web and session_and_http.
pytest_plugins = ["tests.web_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:This might be a color image")


# ---- the token, the Host, the Origin ----------------------------------------------------

ENDPOINTS = [("GET", "/"), ("GET", "/favicon.ico"), ("GET", "/static/app.js"),
             ("GET", "/api/info"), ("GET", "/api/kinds"), ("GET", "/api/status"),
             ("GET", "/api/jobs"), ("GET", "/api/jobs/x"), ("GET", "/api/jobs/x/output"),
             ("GET", "/api/jobs/x/input"), ("POST", "/api/stats"), ("POST", "/api/images"),
             ("POST", "/api/jobs/cancel"), ("POST", "/api/jobs/x/cancel")]


def test_every_request_without_the_token_gets_401_and_sends_nothing(stack, web):
    for method, path in ENDPOINTS:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Cookie": f"wqw_token_{PORT}=no"}, {"Cookie": f"other={TOKEN}"}):
            response = web.request(method, path, headers=headers, json={"numbers": [1]})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["content-security-policy"] == CSP
    assert web.get("/api/jobs", headers=AUTH).json() == {"jobs": []}
    assert requests_waiting(stack) == 0


def test_the_token_in_the_url_sets_a_strict_http_only_cookie_and_leaves_the_url(web):
    response = web.get(f"/?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"wqw_token_{PORT}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = web.get("/")  # the cookie jar now holds it
    assert page.status_code == 200 and "<title>web-queue-worker</title>" in page.text
    web.cookies.clear()
    assert web.get("/?token=wrong", follow_redirects=False).status_code == 401
    # Only the page takes the token from its URL: an API URL never carries it.
    assert web.get(f"/api/jobs?token={TOKEN}").status_code == 401


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999",
                                  f"localhost.evil.example:{PORT}", ""])
def test_a_foreign_host_gets_403_even_with_the_token(stack, web, host):
    for method, path in [("GET", "/api/jobs"), ("POST", "/api/stats")]:
        response = web.request(method, path, headers={**AUTH, "Host": host},
                               json={"numbers": [1, 2]})
        assert response.status_code == 403, response.text
        assert "host" in response.json()["error"]["message"]
    assert requests_waiting(stack) == 0


def test_localhost_is_this_server_too(web):
    response = web.get("/api/info", headers={**AUTH, "Host": f"localhost:{PORT}"})
    assert response.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", f"http://127.0.0.1:{PORT + 1}",
                                    f"https://127.0.0.1:{PORT}", "null"])
def test_a_state_change_from_a_foreign_origin_gets_403(stack, web, origin):
    for path, kwargs in [("/api/stats", {"json": {"numbers": [1]}}),
                         ("/api/images", {"files": {"file": ("a.png", b"x")}})]:
        response = web.post(path, headers={**AUTH, "Origin": origin}, **kwargs)
        assert response.status_code == 403, response.text
        assert "cross-site" in response.json()["error"]["message"]
    assert web.get("/api/jobs", headers=AUTH).json() == {"jobs": []}
    assert requests_waiting(stack) == 0


def test_a_cookie_alone_may_change_state_only_with_its_own_origin(stack, worker, web):
    web.get(f"/?token={TOKEN}")
    assert web.post("/api/stats", json={"numbers": [1]}).status_code == 403
    ok = web.post("/api/stats", json={"numbers": [1]}, headers={"Origin": BASE})
    assert ok.status_code == 202


def test_every_response_carries_the_security_headers(web):
    for path, status in [("/", 200), ("/static/app.js", 200), ("/api/jobs/x", 404)]:
        response = web.get(path, headers=AUTH)
        assert response.status_code == status
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP and "http" not in CSP


def test_the_page_runs_no_inline_script_and_inserts_no_html():
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == [
        '<script type="module" src="/static/app.js">']
    assert not re.search(r"\son[a-z]+=", page) and "style=" not in page
    scripts = sorted(STATIC.glob("*.js"))
    assert [p.name for p in scripts] == ["app.js", "dlq.js", "histogram.js", "lifecycle.js"]
    for script in (p.read_text() for p in scripts):
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                     "eval(", "new Function"):
            assert sink not in script
        assert "http://" not in script and "https://" not in script


def test_the_static_files_and_the_favicon(web):
    assert web.get("/static/app.js", headers=AUTH).headers["content-type"].startswith(
        "text/javascript")
    icon = web.get("/favicon.ico", headers=AUTH)
    assert icon.status_code == 200 and Image.open(io.BytesIO(icon.content)).format == "ICO"

def test_the_xss_file_name_is_data_never_markup(stack, worker, web):
    response = post_image(web, XSS_NAME, png_bytes(low_contrast((8, 8, 3), 1)))
    job = wait_for(web, response.json()["job_id"])
    assert job["name"] == XSS_NAME  # JSON data; the page sets it with textContent
    key = job["result"]["output_key"]
    assert re.fullmatch(r"outputs/[0-9a-f-]{36}/[A-Za-z0-9._-]+", key), key
    assert job["download_name"] == "_img_src_x_onerror_alert_1__-equalized.png"
    listed = web.get("/api/jobs", headers=AUTH).json()["jobs"]
    assert [j["name"] for j in listed] == [XSS_NAME]

# ---- the upload cap --------------------------------------------------------------------

CAP = 1024 * 1024
PROLOGUE = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")


def call_asgi(app, headers, chunks):
    """POST /api/images with the body in `chunks`; returns (status, chunks the app read)."""
    import anyio

    read = 0
    sent = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/images", "raw_path": b"",
             "root_path": "", "query_string": b"", "server": ("127.0.0.1", PORT),
             "client": ("127.0.0.1", 50000),
             "headers": [(b"host", f"127.0.0.1:{PORT}".encode()),
                         (b"authorization", f"Bearer {TOKEN}".encode()),
                         (b"content-type", b"multipart/form-data; boundary=xyz"), *headers]}

    async def receive():
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunks[read - 1],
                "more_body": read < len(chunks)}

    async def send(message):
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent[0]["status"], read, json.loads(sent[1]["body"])


def test_an_upload_over_the_cap_is_413_before_the_body_is_read_whole(stack):
    session = WebSession(api.Client(boto3.Session(), stack), receive_wait_seconds=1)
    app = create_app(session, token=TOKEN, host="127.0.0.1", port=PORT, max_upload_bytes=CAP)
    chunks = [PROLOGUE] + [b"\0" * 65536] * 100  # 6.4 MB
    total = sum(map(len, chunks))
    # Announced: refused from Content-Length, not a byte read.
    status, read, body = call_asgi(app, [(b"content-length", str(total).encode())], chunks)
    assert (status, read) == (413, 0) and body["error"]["code"] == "too_large"
    assert "1 MiB" in body["error"]["message"]
    # Streamed without a length: refused as soon as the bytes pass the cap.
    status, read, body = call_asgi(app, [], chunks)
    assert status == 413 and read == 1 + CAP // 65536  # the prologue, then 1 MiB: one byte over
    assert boto3.client("s3").list_objects_v2(Bucket=stack.bucket).get("KeyCount") == 0
    assert requests_waiting(stack) == 0


def test_an_upload_within_the_cap_passes(stack, worker):
    session, http = make_web(stack, max_upload_bytes=CAP)
    try:
        big = http.post("/api/images", headers=AUTH,
                        files={"file": ("big.png", b"\0" * (CAP + 1))})
        assert big.status_code == 413
        small = post_image(http, "small.png", png_bytes(low_contrast((16, 16), 2)))
        assert small.status_code == 202
    finally:
        session.close()

# ---- the command-line options ----------------------------------------------------------

def test_the_options_and_their_defaults():
    import argparse

    from client.web.options import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from_args(parser.parse_args([])) == {
        "host": "127.0.0.1", "port": 8765, "open_browser": True, "allow_remote": False}
    assert options_from_args(parser.parse_args(["--port", "0", "--no-browser",
                                                "--host", "192.0.2.7"])) == {
        "host": "192.0.2.7", "port": 0, "open_browser": False, "allow_remote": True}
    local = argparse.ArgumentParser()
    local.add_argument("--port", type=int, default=5000)  # the emulator's
    add_arguments(local, prefix="web-")
    args = local.parse_args(["--port", "0", "--web-port", "9000"])
    assert args.port == 0 and options_from_args(args, prefix="web-")["port"] == 9000


def test_another_address_needs_the_explicit_flag_and_every_address_is_refused(stack):
    from client.web.server import WebServer

    client = api.Client(boto3.Session(), stack)
    with pytest.raises(api.UsageError, match="on purpose"):
        WebServer(client, host="192.0.2.7", port=0)
    for wildcard in ("0.0.0.0", "::"):
        with pytest.raises(api.UsageError, match="every address"):
            WebServer(client, host=wildcard, port=0, allow_remote=True)
