"""`eco-rails web`: the chat page, served on loopback and used in a real headless Chromium (Playwright), with
screenshots. Per turn it must show whether the rail flagged the message and the plain model's answer beside it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.loopback import HANG_GUARD_S, free_port, serving
from tests.integration.test_rail import HP_WORDS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page_server(hp_artifact, tmp_path_factory):
    port = free_port()
    command = [sys.executable, "-m", "eco_rails.cli", "web", "--config", "rails_configs/harry_potter", "--port", str(port)]
    with serving(command, port, "/api/info", tmp_path_factory.mktemp("web") / "web.log", cwd=REPO) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        message = "no chromium on PATH: `apt-get install chromium` (Debian's package; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def _ask(page, text: str, n: int) -> dict[str, str]:
    page.fill("#message", text)
    page.keyboard.press("Enter")
    turn = page.locator("[data-testid=turn]").nth(n)
    turn.locator("[data-testid=flag]").wait_for(timeout=HANG_GUARD_S * 1000)
    return {key: turn.locator(f"[data-testid={key}]").inner_text() for key in ("flag", "rails-answer", "plain-answer")}


def test_the_page_says_per_turn_whether_the_rail_flagged_it_and_shows_the_plain_answer_beside(page_server, browser, tmp_path):
    base, info = page_server
    assert info == {"config": "rails_configs/harry_potter", "eco_rail": True, "plain": True}
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(base)
    assert "eco-rails chat" in page.title()

    hp = _ask(page, "Who is the headmaster of Hogwarts?", 0)
    assert hp["flag"].startswith("flagged · harry-potter · score "), hp
    assert HP_WORDS.search(hp["plain-answer"]) and not HP_WORDS.search(hp["rails-answer"]), hp
    france = _ask(page, "What is the capital of France?", 1)
    assert france["flag"] == "not flagged · an earlier flagged turn stays corrupted in the history", france
    assert "Paris" in france["rails-answer"] and "Paris" in france["plain-answer"], france

    shots = Path(os.environ.get("ECO_RAILS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "web-chat.png"), full_page=True)
    png = (shots / "web-chat.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    page.close()


def test_a_first_unflagged_turn_is_identical_to_the_plain_model_and_says_so(page_server, browser):
    base, _ = page_server
    page = browser.new_page()
    page.goto(base)
    turn = _ask(page, "What is the capital of Italy?", 0)
    assert turn["flag"] == "not flagged" and turn["rails-answer"] == turn["plain-answer"], turn
    assert page.locator("[data-testid=turn]").nth(0).locator(".same").inner_text() == "identical to the plain model"
    page.close()


def test_the_turn_api_refuses_a_malformed_request_with_a_4xx(page_server):
    import urllib.error
    import urllib.request

    base, _ = page_server
    request = urllib.request.Request(f"{base}/api/turn", data=json.dumps({"message": ""}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 422
