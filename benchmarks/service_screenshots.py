"""Screenshots of the web page over a built space (for docs/img), taken with Debian's
chromium driven headless by Playwright; also a smoke test of the page on real data.

    nice -n 10 .venv/bin/python benchmarks/service_screenshots.py --space spaces/lastfm --out docs/img
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from service_load import free_port, start_server, wait_ready  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="spaces/lastfm")
    ap.add_argument("--out", type=Path, default=Path("runs/screenshots"))
    ap.add_argument("--query", default="melancholic post-rock")
    ap.add_argument("--playlist", default="rainy day jazz")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(args.space, port)
    try:
        wait_ready(url, proc)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = b.new_page(viewport={"width": 1100, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("#space-info:has-text('items')")
            t = time.perf_counter()
            page.get_by_test_id("search-box").press_sequentially(args.query, delay=30)
            page.wait_for_function("document.getElementById('search-status').textContent.includes('results')")
            page.wait_for_timeout(1200)
            print(f"search typed + shown in {time.perf_counter() - t:.1f}s:",
                  page.locator("[data-testid=results] li a.name").all_inner_texts()[:8])
            page.screenshot(path=str(args.out / "service-search.png"))
            page.locator("[data-testid=results] li a.name").first.click()
            page.locator("[data-testid=similar] li a.name").first.wait_for()
            print("item:", page.get_by_test_id("item-name").inner_text(),
                  page.locator("[data-testid=similar] li a.name").all_inner_texts()[:6])
            page.screenshot(path=str(args.out / "service-item.png"))
            third = page.locator("[data-testid=similar] li").nth(2)         # "why?": its explanation in place
            third.get_by_test_id("why").click()
            third.locator("[data-testid=why-panel] >> text=shared tags").wait_for()
            print("why:", third.get_by_test_id("why-panel").inner_text().replace("\n", " | "))
            top, bottom = (page.locator("[data-testid=similar] li").nth(i).bounding_box() for i in (0, 3))
            scrolled = page.evaluate("window.scrollY")           # boxes are in the viewport, clips in the page
            page.screenshot(path=str(args.out / "service-why.png"), full_page=True,
                            clip={"x": top["x"] - 8, "y": top["y"] + scrolled - 8, "width": top["width"] + 16,
                                  "height": bottom["y"] + bottom["height"] - top["y"] + 16})
            page.get_by_test_id("nav-playlist").click()
            page.get_by_test_id("pl-query").fill(args.playlist)
            page.locator("#pl-n").fill("10")
            page.get_by_test_id("pl-generate").click()
            page.wait_for_selector("[data-testid=pl-measure]")
            print("playlist:", page.get_by_test_id("pl-stats").inner_text().replace("\n", " "))
            page.screenshot(path=str(args.out / "service-playlist.png"), full_page=False)
            page.get_by_test_id("pl-continue").click()
            page.wait_for_function("document.querySelectorAll('[data-testid=playlist] li').length === 15")
            print("continued:", page.get_by_test_id("pl-stats").inner_text().replace("\n", " "))
            page.get_by_test_id("f-user").select_option(index=1)      # the user with the most history
            page.get_by_test_id("nav-user").click()
            page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 20")
            print("for", page.locator("#user-title").inner_text(), ":",
                  page.locator("[data-testid=user-recs] li a.name").all_inner_texts()[:6])
            page.screenshot(path=str(args.out / "service-user.png"), full_page=False)
            b.close()
            if errors:
                raise SystemExit(f"page errors: {errors}")
        for f in sorted(args.out.glob("service-*.png")):
            print(f, f.stat().st_size // 1024, "KB")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
