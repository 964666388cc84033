"""The page in a real browser: headless Chromium (the system's) driven by Selenium.

Install the browser with `apt-get install -y chromium chromium-driver` (Debian/Ubuntu);
without it these tests skip locally and fail in CI (CI=true). The screenshot goes to the
test's temporary folder; with WQW_UPDATE_SCREENSHOT=1 (or when it is missing) it replaces
docs/web-screenshot.png, so a test run does not change the work tree.
"""

import io
import os
import shutil
import time
from decimal import Context
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data, exposure, util

from client.cli_output import print_value
from client.errors import ClientFailure
from client.local import LocalStack
from client.web.server import running
from worker_src import wire

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "web-screenshot.png"
STACK = "wqw-web-browser"
XSS_NAME = "<img src=x onerror=alert(1)>.png"
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:This might be a color image")]


def browser_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = ("no Chromium here: install it with 'apt-get install -y chromium "
               "chromium-driver' (Debian/Ubuntu) to run the browser tests")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def web():
    with LocalStack(stack_name=STACK, port=0, workers=2) as stack, stack.client() as client, \
            running(client, port=0) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1440,1500", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_until(condition, timeout=60, what="the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def finished_cards(driver):
    """Cards whose result image has loaded and whose two histograms are drawn."""
    return driver.execute_script("""
        return [...document.querySelectorAll('.card')].filter((card) =>
            card.dataset.state === 'done' &&
            card.querySelector('.img-output').naturalWidth > 0 &&
            card.querySelector('.img-input').naturalWidth > 0 &&
            card.querySelectorAll('canvas[data-drawn="1"]').length === 2
        ).map((card) => card.querySelector('.card-name').textContent);
    """)


def low_contrast_colour():
    cat = data.chelsea().astype(np.float64)
    return np.clip(90 + cat * 0.3, 0, 255).astype(np.uint8)


def skimage_equalized(pixels):
    return util.img_as_ubyte(exposure.equalize_hist(pixels))


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_page_end_to_end(browser, web, tmp_path, capsys):  # no browser: skip first
    from selenium.webdriver.common.by import By

    browser.get(web.url)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#kind option"),
               what="the operation list")
    assert browser.current_url == web.base_url + "/"  # the token left the address bar
    assert browser.find_element(By.ID, "kind").get_attribute("value") == "equalize"

    # Numbers: the six statistics as the CLI prints them.
    numbers = [5, 3, 9, 1, 10**20]
    browser.find_element(By.ID, "numbers-text").send_keys(" ".join(map(str, numbers)))
    browser.find_element(By.ID, "stats-submit").click()
    text = wait_until(lambda: browser.execute_script(
        "const e = document.querySelector('.stats-entry[data-state=done] .stats-text');"
        "return e && e.textContent;"), what="the statistics")
    average = Fraction(sum(numbers), len(numbers))
    print_value({"count": 5, "min": 1, "max": 10**20, "sum": sum(numbers),
                 # count 5: a terminating decimal, every digit, as the CLI prints it
                 "average": Context(prec=60).divide(average.numerator, average.denominator),
                 "median": sorted(numbers)[2]})
    assert text == capsys.readouterr().out.rstrip("\n")

    # Images: two dropped into the file input at once.
    inputs = {"moon.png": data.moon(), "chelsea.png": low_contrast_colour()}
    paths = []
    for name, pixels in inputs.items():
        Image.fromarray(pixels).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    browser.find_element(By.ID, "files").send_keys("\n".join(paths))
    done = wait_until(lambda: len(finished_cards(browser)) == 2 and finished_cards(browser),
                      timeout=120, what="both result images and histograms")
    assert sorted(done) == sorted(inputs)
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    update = os.environ.get("WQW_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists()
    screenshot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
    assert browser.save_screenshot(str(screenshot))
    assert Image.open(screenshot).size[0] >= 1200

    # The download links give scikit-image's pixels.
    # (Only this test's cards: a page shared with another test may show a cancelled one.)
    for card in browser.find_elements(By.CSS_SELECTOR, ".card"):
        if card.find_element(By.CSS_SELECTOR, ".card-name").text in inputs:
            card.find_element(By.CSS_SELECTOR, ".download").click()
    for name, pixels in inputs.items():
        target = browser.downloads / name.replace(".png", "-equalized.png")
        wait_until(target.exists, what=f"the download of {target.name}")
        downloaded = np.asarray(Image.open(io.BytesIO(target.read_bytes())))
        assert np.array_equal(downloaded, skimage_equalized(pixels)), name

    # A file name that is markup is shown as text, never parsed.
    Image.fromarray(data.moon()[:64, :64]).save(tmp_path / XSS_NAME)
    browser.find_element(By.ID, "files").send_keys(str(tmp_path / XSS_NAME))
    wait_until(lambda: XSS_NAME in finished_cards(browser), what="the third card")
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".card-name")]
    assert XSS_NAME in names

    # A reload shows this session's jobs again, with their results.
    browser.refresh()
    wait_until(lambda: len(finished_cards(browser)) == 3, what="the cards after a reload")
    assert "stats" in browser.find_element(By.ID, "jobs").text
    assert browser.find_element(By.ID, "waiting").text.isdigit()

    # Dead letters: listed in the Stack panel; the readable one redriven by its button.
    client = web.session.client
    job_id = wire.new_job_id()
    job = wire.Job(job_id=job_id, kind="stats", args={"numbers": [4, 2]}, reply_to=None,
                   submitted_at=time.time())
    for body in (wire.encode_job(job), XSS_NAME):
        client.sqs.send_message(QueueUrl=client.stack.dead_letter_queue_url, MessageBody=body)

    def rows():
        return browser.find_elements(By.CSS_SELECTOR, "#dead-letter-rows tr[data-ident]")

    wait_until(lambda: len(rows()) == 2, what="the dead letters")
    [readable] = [row for row in rows() if row.get_attribute("data-ident") == job_id]
    [unreadable] = [row for row in rows() if row.get_attribute("data-ident") != job_id]
    assert "cannot be redriven without force" in unreadable.text
    assert unreadable.find_elements(By.TAG_NAME, "button") == []
    assert job_id[:8] in readable.text and "stats" in readable.text
    readable.find_element(By.TAG_NAME, "button").click()
    wait_until(lambda: len(rows()) == 1 and "redriven 1" in browser.find_element(
        By.ID, "dlq-report").text, what="the redrive")
    def stored_result(client, job_id):
        try:
            return client.fetch_result(job_id)
        except (ClientFailure, wire.WireError):
            return None

    result = wait_until(lambda: stored_result(client, job_id), what="the rerun job")
    assert result.ok and result.value["sum"] == 6
    assert console_errors(browser) == []


PIPELINE_SCREENSHOT = ROOT / "docs" / "web-pipeline.png"


def test_the_page_builds_a_pipeline_from_the_operation_list(browser, web, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.image_steps_helpers import jpeg_file, real_looking, run

    browser.get(web.url)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#kind option"),
               what="the operation list")
    offered = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR,
                                                                       "#kind option")]
    assert {"thumbnail", "orient", "crop", "convert", "pipeline"} <= set(offered)
    Select(browser.find_element(By.ID, "kind")).select_by_value("pipeline")
    steps = browser.find_element(By.ID, "arg-steps")
    picker = Select(browser.find_element(By.CSS_SELECTOR, "select.steps"))
    assert "stats" not in [o.text for o in picker.options]
    for kind in ("orient", "thumbnail", "equalize", "convert"):
        picker.select_by_visible_text(kind)
    assert steps.get_attribute("value") == "orient,thumbnail,equalize,convert:format=jpeg"
    text = "orient,thumbnail:width=320,equalize,convert:format=webp"
    steps.clear()
    steps.send_keys(text)

    photo = jpeg_file(real_looking(0, (640, 480)), orientation=6, name="phone.jpg")
    (tmp_path / "phone.jpg").write_bytes(photo.read())
    browser.find_element(By.ID, "files").send_keys(str(tmp_path / "phone.jpg"))
    wait_until(lambda: "phone.jpg" in finished_cards(browser), timeout=120,
               what="the pipeline's card")
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    update = os.environ.get("WQW_UPDATE_SCREENSHOT") == "1" or not PIPELINE_SCREENSHOT.exists()
    screenshot = PIPELINE_SCREENSHOT if update else tmp_path / PIPELINE_SCREENSHOT.name
    assert browser.save_screenshot(str(screenshot))

    [link] = [a for a in browser.find_elements(By.CSS_SELECTOR, ".card .download")
              if "phone" in (a.get_attribute("download") or a.get_attribute("href"))]
    link.click()
    target = browser.downloads / "phone-pipeline.webp"
    wait_until(target.exists, what="the download of phone-pipeline.webp")
    assert target.read_bytes() == run("pipeline", {"image": photo}, steps=text).data
    assert Image.open(target).size == (320, 427)
    assert console_errors(browser) == []
