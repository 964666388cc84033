"""The page's job states and cancel buttons: the API (Starlette's test client) and a real browser.

The stack is in-process moto with a worker thread that also runs the test kind `slow` (as the
image operation `slowimage`) in work horse children. The browser test needs Chromium
(`apt-get install -y chromium chromium-driver`); without it it skips locally and fails in CI.
With WQW_UPDATE_SCREENSHOT=1 (or when they are missing) it writes docs/web-lifecycle.png
(running) and docs/web-cancelled.png.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from client import api
from client.web.server import running
from tests.lifecycle_kinds import kinds_with_slow_image
from tests.moto_stack import deploy, serving_worker
from tests.test_web_browser import browser, browser_paths, console_errors, wait_until  # noqa: F401
from tests.web_support import AUTH, make_web
from worker_src import registry
from worker_src.executor import Executor

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "web-lifecycle.png"
CANCELLED_SHOT = ROOT / "docs" / "web-cancelled.png"
STACK = "wqw-web-life"


@pytest.fixture(autouse=True)
def slow_registered(monkeypatch):
    monkeypatch.setattr(registry, "_KINDS", kinds_with_slow_image())


def horse_executor(store, identity):
    executor = Executor(store, identity=identity, kinds=kinds_with_slow_image())
    executor.time_limit_s = 120.0
    return executor


@pytest.fixture
def stack():
    with mock_aws():
        info = deploy(STACK)
        with serving_worker(info, executor=horse_executor):
            yield info


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (32, 32), 128).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_api_shows_running_then_cancelled_and_cancel_all(stack):
    session, http = make_web(stack)
    try:
        ids = []
        for _ in range(2):
            response = http.post("/api/images", headers=AUTH, data={
                "kind": "slowimage", "seconds": "60"}, files={"file": ("a.png", png())})
            assert response.status_code == 202, response.text
            ids.append(response.json()["job_id"])
        view = wait_until(lambda: (v := http.get(f"/api/jobs/{ids[0]}", headers=AUTH).json())
                          ["state"] == "running" and v["running"]["fraction"] and v,
                          timeout=20, what="a running job with progress")
        assert view["running"]["worker"] and 0 < view["running"]["fraction"] < 1
        response = http.post(f"/api/jobs/{ids[0]}/cancel", headers=AUTH)
        assert response.status_code == 202 and response.json()["requested"] == [ids[0]]
        cancelled = wait_until(lambda: (v := http.get(f"/api/jobs/{ids[0]}", headers=AUTH)
                                        .json())["state"] == "cancelled" and v,
                               timeout=10, what="the cancelled state")
        assert cancelled["error"]["code"] == "cancelled"
        # The other one, queued behind it: the page's cancel-all.
        response = http.post("/api/jobs/cancel", headers=AUTH)
        assert response.json() == {"requested": [ids[1]], "finished": [ids[0]]}
        wait_until(lambda: http.get(f"/api/jobs/{ids[1]}", headers=AUTH).json()["state"]
                   == "cancelled", timeout=15, what="the second cancel")
        assert http.post("/api/jobs/nope/cancel", headers=AUTH).status_code == 404
    finally:
        session.close()


def test_a_card_shows_running_with_progress_then_cancelled(stack, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with api.Client(boto3.Session(), stack) as client, running(client, port=0) as web:
        browser.get(web.url)
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#kind option"),
                   what="the operation list")
        Select(browser.find_element(By.ID, "kind")).select_by_value("slowimage")
        seconds = browser.find_element(By.ID, "arg-seconds")
        seconds.clear()
        seconds.send_keys("60")
        image = tmp_path / "slow.png"
        image.write_bytes(png())
        browser.find_element(By.ID, "files").send_keys(str(image))

        def progress():
            return browser.execute_script("""
                const card = document.querySelector('.card[data-state=running]');
                const bar = card && card.querySelector('.card-progress');
                return bar && !bar.hidden && bar.value > 0 && bar.value;""")

        first = wait_until(progress, timeout=20, what="a running card with a progress bar")
        later = wait_until(lambda: (p := progress()) and p > first and p, timeout=10,
                           what="the progress bar moving")
        assert later > first
        card = browser.find_element(By.CSS_SELECTOR, ".card")
        assert "running" in card.find_element(By.CSS_SELECTOR, ".state").text
        assert "on " in card.find_element(By.CSS_SELECTOR, ".running-text").text
        assert not browser.find_element(By.ID, "cancel-all").get_attribute("hidden")
        update = os.environ.get("WQW_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists()
        browser.save_screenshot(str(SCREENSHOT if update else tmp_path / SCREENSHOT.name))
        card.find_element(By.CSS_SELECTOR, ".cancel").click()
        started = time.monotonic()
        wait_until(lambda: card.get_attribute("data-state") == "cancelled", timeout=10,
                   what="the cancelled card")
        assert time.monotonic() - started < 5
        assert "cancelled" in card.find_element(By.CSS_SELECTOR, ".card-error").text
        assert card.find_element(By.CSS_SELECTOR, ".cancel").get_attribute("hidden")
        update = os.environ.get("WQW_UPDATE_SCREENSHOT") == "1" or not CANCELLED_SHOT.exists()
        browser.save_screenshot(str(CANCELLED_SHOT if update else tmp_path / "cancelled.png"))
        assert console_errors(browser) == []
