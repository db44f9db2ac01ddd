"""The served app in a real headless Chromium: ask, read the streamed answer, open its sources, upload.

The server is started exactly as in production (``python -m streamlit run ui/app.py`` from the repository
root, so ``.streamlit/config.toml`` applies) with the configuration in the environment: a temporary
data folder holding a small German index, the hashing embedder and the scripted chat model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright
from ui_support import FAKE_ENV, REPO_ROOT, URLAUB, build_index, write_config

from rag.jobs import JobQueue
from tests.conftest import free_port
from ui.i18n import TEXTS

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # In CI (CI=true) a missing browser is a failure, not a quiet skip: make test installs it.
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="Debian chromium is not installed at /usr/bin/chromium",
    ),
]


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    log: Path


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit not healthy after {timeout_s} s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui-browser")
    data_dir = root / "data"
    build_index(data_dir)
    config = write_config(root, data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUSWISSEN")}
    env.update(FAKE_ENV, HAUSWISSEN_CONFIG=str(config), PYTHONUNBUFFERED="1", DO_NOT_TRACK="1")
    port = free_port()
    log = root / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", "ui/app.py",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process, log)
        yield Server(url, data_dir, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture
def page(server: Server) -> Iterator[Page]:
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="de-DE")
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)

            def only_local(route: Route) -> None:
                if route.request.url.startswith((server.url, "data:")):
                    route.continue_()
                else:
                    foreign.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            page.goto(server.url)
            yield page
        finally:
            browser.close()
    assert foreign == [], f"the page tried to reach other hosts: {foreign}"


def test_question_answer_and_sources_in_a_real_browser(page: Page, server: Server) -> None:
    de = TEXTS["de"]
    expect(page.get_by_text(de["status_header"], exact=True)).to_be_visible()
    box = page.get_by_placeholder(de["chat_placeholder"])
    box.fill("Wie viele Werktage Urlaub gibt es jährlich?")
    box.press("Enter")

    answer = page.locator('[data-testid="stChatMessage"]').filter(
        has=page.locator('[data-testid="stChatMessageAvatarAssistant"]')
    )
    expect(answer).to_have_count(1)
    expect(answer).to_contain_text("24 Werktage", timeout=TIMEOUT_MS)
    expect(answer).to_contain_text("[1]")
    sources = answer.get_by_text("Quellen: 1 von", exact=False)
    expect(sources).to_be_visible()
    sources.click()
    expect(answer).to_contain_text("burlg.md")
    expect(answer).to_contain_text("§ 3 Dauer des Urlaubs")
    expect(answer).to_contain_text("zitiert")
    passage = answer.get_by_text(URLAUB, exact=False)
    expect(passage.first).to_be_visible()
    # Escaped punctuation must render as itself, not as visible backslashes.
    assert "\\" not in answer.inner_text()
    page.wait_for_timeout(500)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-answer.png"), full_page=True)


def test_upload_through_the_browser_queues_or_refuses(page: Page, server: Server) -> None:
    de = TEXTS["de"]
    expect(page.get_by_text(de["upload_header"], exact=True)).to_be_visible()
    picker = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    picker.set_input_files(
        [
            {"name": "kantine.txt", "mimeType": "text/plain", "buffer": b"Kantine ab 11:30 Uhr."},
            {"name": "bericht.pdf", "mimeType": "application/pdf", "buffer": b"<html>kein PDF</html>"},
        ]
    )
    expect(page.get_by_text("kantine.txt").first).to_be_visible()
    page.get_by_role("button", name=de["upload_submit"]).click()

    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text(de["jobs_header"], exact=True)).to_be_visible()
    expect(sidebar).to_contain_text("kantine.txt: wartet")
    expect(sidebar).to_contain_text("„bericht.pdf“ wurde abgelehnt: der Inhalt passt nicht zur Endung .pdf")
    queue = JobQueue(server.data_dir / "state.sqlite")
    try:
        (job,) = queue.recent()
        assert job.display_name == "kantine.txt"
        queue.update(job.job_id, "committed")
    finally:
        queue.close()
    # The status fragment polls while a job is active, so the change shows without a click.
    expect(sidebar).to_contain_text("kantine.txt: bereit", timeout=15_000)


def test_chat_flow_feedback_follow_up_reload_and_new_chat(page: Page, server: Server) -> None:
    de = TEXTS["de"]
    ARTIFACTS.mkdir(exist_ok=True)
    expect(page.get_by_text(de["first_run_title"], exact=True)).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "ui-first-run.png"), full_page=True)
    box = page.get_by_placeholder(de["chat_placeholder"])
    box.fill("Wie viele Werktage Urlaub gibt es jährlich?")
    box.press("Enter")
    answers = page.locator('[data-testid="stChatMessage"]').filter(
        has=page.locator('[data-testid="stChatMessageAvatarAssistant"]')
    )
    expect(answers.first).to_contain_text("24 Werktage", timeout=TIMEOUT_MS)
    expect(page).to_have_url(re.compile(r"[?&]chat=[A-Za-z0-9_-]{16,}"))
    chat_url = page.url

    # Thumbs up (the first of the two feedback buttons), then the comment box appears.
    page.locator('[data-testid="stFeedback"] button, [data-testid="stButtonGroup"] button').first.click()
    comment = page.get_by_label(de["feedback_comment"])
    expect(comment).to_be_visible()
    comment.fill("passt")
    comment.press("Enter")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "ui-feedback.png"), full_page=True)

    box.fill("und ab wann gilt das?")
    box.press("Enter")
    expect(answers).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.get_by_text("und ab wann gilt das?").first).to_be_visible()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "ui-follow-up.png"), full_page=True)

    page.goto(chat_url)  # coming back to the chat's address shows it again
    expect(answers).to_have_count(2, timeout=TIMEOUT_MS)

    page.get_by_role("button", name=de["new_chat"]).click()
    expect(answers).to_have_count(0)
    expect(page.get_by_text(de["first_run_title"], exact=True)).to_be_visible()
    assert page.url != chat_url
    page.screenshot(path=str(ARTIFACTS / "ui-new-chat.png"), full_page=True)
