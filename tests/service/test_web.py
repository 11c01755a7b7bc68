"""The web page at / in a real browser (headless Chromium through Selenium), against a real
uvicorn server, PostgreSQL, Redis and the Celery worker: key, upload, job, map, no console errors.
"""
from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import numpy as np
import pytest

from tests.conftest import npz_bytes
from tests.service.test_client import server  # noqa: F401  (the uvicorn fixture, reused)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _install_chromium() -> str | None:
    """None when Chromium and its driver are there (installed now if need be), else why not."""
    if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
        return None
    try:
        subprocess.run(["apt-get", "install", "-y", "chromium", "chromium-driver"], check=True,
                       capture_output=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"chromium and chromium-driver are missing and could not be installed ({exc})"
    return None if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER) else "chromium not found"


@pytest.fixture(scope="module")
def browser():
    problem = _install_chromium()
    if problem:
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1366,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_until(condition, timeout: float = 30, what: str = ""):
    from selenium.common.exceptions import WebDriverException

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = condition()
        except WebDriverException:  # not there yet, or replaced meanwhile
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_page_is_served_and_linked_from_the_docs(server):  # noqa: F811
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'href="/docs"' in page.text and "/web/app.js" in page.text
    assert httpx.get(f"{server}/web/app.js").status_code == 200
    assert "[/](/)" in httpx.get(f"{server}/openapi.json").json()["info"]["description"]
    assert httpx.get(f"{server}/health").json()["auth"] == "keys"


def test_upload_run_kmeans_and_see_the_map_in_a_browser(
        browser, server, admin_token, digits, tmp_path):  # noqa: F811 (the fixture)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def find(css):
        return browser.find_element(By.CSS_SELECTOR, css)

    def shot(name):
        browser.save_screenshot(str(tmp_path / f"{name}.png"))

    X, y = digits
    path = tmp_path / "digits.npz"
    path.write_bytes(npz_bytes(X=X, y=y))

    browser.get(server)
    key = wait_until(lambda: find("#api-key").is_displayed() and find("#api-key"), what="key field")
    key.send_keys(admin_token)
    find("#key-form button[type=submit]").click()
    wait_until(lambda: find("#job-method option[value=kmeans]"), what="the methods")

    find("#upload-file").send_keys(str(path))
    find("#upload-button").click()
    wait_until(lambda: "stored digits.npz: 1797 samples" in find("#upload-status").text,
               what="the upload")
    def dataset_row():
        rows = browser.find_elements(By.CSS_SELECTOR, "#dataset-table tbody tr")
        return next((r for r in rows if "digits.npz" in r.text), None)

    row = wait_until(dataset_row, what="the dataset in the list")
    assert "1797 x 8 x 8 (images)" in row.text and "yes, 10 classes" in row.text
    row.find_element(By.XPATH, ".//button[text()='Preview']").click()
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#preview-body canvas")) == 40,
               what="the preview grid")
    shot("1-uploaded")

    Select(find("#job-method")).select_by_value("kmeans")
    assert find("#param-n_init").get_attribute("value") == "20"  # the schema's default
    find("#param-n_init").clear()
    find("#param-n_init").send_keys("1000")  # above the schema's maximum: the API's 422
    find("#start-job").click()
    wait_until(lambda: find('.field-error[data-for="params.n_init"]').text, what="the field error")
    assert "100" in find('.field-error[data-for="params.n_init"]').text
    find("#param-n_init").clear()
    find("#param-n_init").send_keys("2")
    find("#start-job").click()

    wait_until(lambda: find("#job-status").text == "succeeded", timeout=75, what="the job")
    browser.execute_script("document.querySelector('#job').scrollIntoView()")
    shot("2-job")
    caption = wait_until(lambda: "of 1797 samples" in find("#map-caption").text
                         and find("#map-caption").text, what="the map")
    assert "1797 of 1797" in caption
    assert browser.execute_script("return state.job.map.index.length") == 1797
    assert find("#download-csv").is_displayed() and find("#download-csv").text == "Download CSV"
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#top-samples canvas")) == 80,
               what="the most confident samples")
    confusion = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#confusion tbody tr"),
                           what="the confusion matrix")
    assert len(confusion) == 10
    metrics = find("#metrics-table").text
    assert "ACC" in metrics and "NMI" in metrics

    # Hover over a plotted point: its sample, cluster, confidence and thumbnail.
    x, y_ = browser.execute_script(
        "const s = mapScale(); const m = state.job.map; const c = document.querySelector('#map');"
        "return [s.x(m.x[0]) * c.clientWidth / c.width, s.y(m.y[0]) * c.clientHeight / c.height];")
    canvas = find("#map")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - canvas.size["width"] / 2), int(y_ - canvas.size["height"] / 2)).perform()
    wait_until(lambda: find("#map-tip").is_displayed() and "confidence" in find("#map-tip").text,
               what="the hover tip")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#map-tip canvas"),
               what="the thumbnail")
    browser.execute_script("document.querySelector('#results').scrollIntoView()")
    shot("3-results")

    dataset_row().find_element(By.XPATH, ".//button[text()='Compare']").click()
    wait_until(lambda: "succeeded" in find("#compare-body").text, what="the comparison")
    assert "n_init=2, max_iter=300" in find("#compare-body").text
    shot("4-compare")
    # Chromium logs every 4xx response as an error: the one 422 provoked above is expected.
    errors = console_errors(browser)  # reading the log empties it
    provoked = [e for e in errors if e["source"] == "network"
                and "/jobs - " in e["message"] and "422" in e["message"]]
    assert len(provoked) == 1
    assert [e for e in errors if e not in provoked] == []
    assert np.isfinite(float(browser.execute_script("return state.job.row.metrics.acc")))
