"""End to end in a real browser: Debian's chromium, headless, driven by Playwright's Python
package against uvicorn over the tiny space. Types a query, sees results and what their
scores are, opens an item, builds a playlist from text and continues it, and saves
screenshots to runs/screenshots/.

Chromium is a required test dependency (scripts/setup.sh installs it): without it this
test fails, it does not skip. ``TALKREC_CHROMIUM`` points it at another chromium binary."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from svc_helpers import live_server
from tiny_data import copy_space

CHROMIUM = Path(os.environ.get("TALKREC_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(__file__).resolve().parents[2] / "runs" / "screenshots"

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="session", autouse=True)
def chromium() -> Path:
    """Debian's chromium, checked before anything is built: a missing browser is a failure."""
    if not CHROMIUM.exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: run `bash scripts/setup.sh` (it installs Debian's "
                    "chromium with apt-get), or set TALKREC_CHROMIUM", pytrace=False)
    return CHROMIUM


def test_search_item_and_playlist_in_a_real_browser(tiny_space_dir, tmp_path, chromium):
    from playwright import sync_api

    from talkrec.service.app import create_app

    app = create_app(copy_space(tiny_space_dir, tmp_path / "space"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with live_server(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("#space-info:has-text('60 items')")
            # results as you type
            page.get_by_test_id("search-box").press_sequentially("jazz", delay=40)
            first = page.locator("[data-testid=results] li a.name").first
            first.wait_for()
            names = page.locator("[data-testid=results] li a.name").all_inner_texts()
            assert len(names) >= 5 and sum("Jazz" in n for n in names[:5]) >= 4, names
            # scores say what they are: RRF scores in the default (hybrid) mode, cosines in multi
            assert "RRF score" in page.locator("[data-testid=results] li .score").first.get_attribute("title")
            assert "RRF score" in page.get_by_test_id("score-kind").inner_text()
            page.locator("#mode").select_option("multi")
            page.wait_for_selector("[data-testid=score-kind]:has-text('cosine')")
            assert "cosine" in page.locator("[data-testid=results] li .score").first.get_attribute("title")
            page.locator("#mode").select_option("")
            page.wait_for_selector("[data-testid=score-kind]:has-text('RRF score')")
            page.screenshot(path=str(SHOTS / "tiny-search.png"))
            # open an item: description, modalities, similar items
            first.click()
            page.wait_for_selector("[data-testid=item-name]")
            assert "Jazz" in page.get_by_test_id("item-name").inner_text()
            assert "jazz" in page.get_by_test_id("item-desc").inner_text().lower()
            page.locator("[data-testid=similar] li a.name").first.wait_for()
            assert page.locator("[data-testid=similar] li").count() >= 5
            # similar's scores are RRF scores (its fused, EASE and BM25 lists), and say so
            assert "RRF score" in page.locator("[data-testid=similar] li .score").first.get_attribute("title")
            page.screenshot(path=str(SHOTS / "tiny-item.png"))
            # playlist builder: text -> playlist with its coherence, then continue it
            page.get_by_test_id("nav-playlist").click()
            page.get_by_test_id("pl-query").fill("metal")
            page.locator("#pl-n").fill("6")
            page.get_by_test_id("pl-generate").click()
            page.wait_for_selector("[data-testid=pl-measure]")
            assert page.locator("[data-testid=playlist] li").count() == 6
            assert "Coherence" in page.get_by_test_id("pl-stats").inner_text()
            page.get_by_test_id("pl-continue").click()
            page.wait_for_function("document.querySelectorAll('[data-testid=playlist] li').length === 11")
            items = page.locator("[data-testid=playlist] li a.name").all_inner_texts()
            assert len(items) == len(set(items)) == 11
            assert sum("Metal" in n for n in items) >= 9, items
            assert "Coherence" in page.get_by_test_id("pl-stats").inner_text()
            page.screenshot(path=str(SHOTS / "tiny-playlist.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
