"""QA of the web page in a real browser (Debian's chromium, headless, as test_service_browser.py
launches it) against uvicorn over a copy of the tiny space: hostile item names render as text,
a saved playlist the page cannot read does not stop it, a playlist whose items were deleted
since still continues, server errors read as errors, search pages on, bad addresses."""
from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
from svc_helpers import live_server
from tiny_data import copy_space

CHROMIUM = Path(os.environ.get("TALKREC_CHROMIUM", "/usr/bin/chromium"))
XSS = "<img src=x onerror=alert(1)>"
TAG = '"><script>alert(2)</script>'

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def server(tiny_space_dir, tmp_path_factory):
    """A live server over a copy of the tiny space holding an item whose name, tags,
    description and metadata are HTML."""
    if not CHROMIUM.exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: run `bash scripts/setup.sh`", pytrace=False)
    from talkrec.service.app import create_app
    from talkrec.space import Space

    d = copy_space(tiny_space_dir, tmp_path_factory.mktemp("qa-page") / "space")
    s = Space.load(d)
    s.add_items([{"item_id": "xss1", "name": XSS, "tags": ["metal", "<b>bold</b>", TAG],
                  "description": f"{XSS} metal band", "metadata": {"note": "<svg onload=alert(4)>"}}])
    s.close()
    with live_server(create_app(d)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    from playwright import sync_api
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    """A fresh page (its own storage) that records script errors and dialogs."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    pg.errors, pg.dialogs = [], []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.url0 = server
    yield pg
    ctx.close()


def _started(page, path: str = "/") -> None:
    page.goto(page.url0 + path)
    page.wait_for_selector("#space-info:has-text('items')")


def _with_saved_playlist(page, value: str, path: str = "/") -> None:
    """Open the page with ``value`` stored as the saved playlist."""
    page.goto(page.url0 + "/")
    page.evaluate("v => localStorage.setItem('talkrec.playlist', v)", value)
    page.goto(page.url0 + path)
    page.reload()
    page.wait_for_selector("#space-info:has-text('items')")


def test_html_in_item_names_tags_and_metadata_renders_as_text(page):
    _started(page)
    page.get_by_test_id("search-box").fill("img src onerror alert")
    page.wait_for_selector(f"[data-testid=results] li a.name:text-is('{XSS}')")
    assert page.locator("#results img, #results script, #results b").count() == 0
    assert TAG in page.locator("#results").inner_text()
    page.goto(page.url0 + "/#/item/xss1")
    page.wait_for_selector("[data-testid=item-name]")
    assert page.get_by_test_id("item-name").inner_text() == XSS
    assert "<svg onload=alert(4)>" in page.locator("#item").inner_text()
    assert page.locator("#item img, #item svg, #item script, #item b").count() == 0
    page.get_by_test_id("item-add").click()
    page.get_by_test_id("nav-playlist").click()
    page.wait_for_selector(f"[data-testid=playlist] li a.name:text-is('{XSS}')")
    assert page.locator("#playlist img, #playlist script").count() == 0
    assert page.locator("#tag-list option").evaluate_all("os => os.map(o => o.value)").count(TAG) == 1
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)


@pytest.mark.parametrize("saved", ["null", "{}", "5", "[null, 3, \"x\"]", "not json", '[{"item_id": "metal1"}]'])
def test_a_saved_playlist_the_page_cannot_read_does_not_stop_it(page, saved):
    _with_saved_playlist(page, saved, "/#/playlist")
    assert not page.errors, page.errors
    page.wait_for_selector("#f-range-field option:nth-child(2)", state="attached")   # the facets loaded
    names = page.locator("[data-testid=playlist] li a.name").all_inner_texts()
    assert names == (["metal1"] if "metal1" in saved else [])
    if names:                                                      # an entry of another page version: usable
        assert page.locator("[data-testid=playlist] li .score").inner_text() == "–"
        page.get_by_test_id("pl-continue").click()
        page.wait_for_function("document.querySelectorAll('[data-testid=playlist] li').length === 6")
    page.goto(page.url0 + "/#/")
    page.get_by_test_id("search-box").fill("jazz")
    page.locator("[data-testid=results] li a.name").first.wait_for()
    assert not page.errors, page.errors


def test_continuing_a_playlist_whose_items_were_deleted_since_drops_them(page):
    saved = [{"item_id": i, "name": f"Jazz Band {i[4:]}", "score": 1.0, "score_kind": "cosine", "metadata": {}}
             for i in ("jazz1", "jazz2", "jazz3")]
    _with_saved_playlist(page, json.dumps(saved), "/#/playlist")
    req = urllib.request.Request(page.url0 + "/api/items/jazz2", method="DELETE")
    assert urllib.request.urlopen(req).status == 200
    page.get_by_test_id("pl-continue").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=playlist] li').length === 7")
    ids = page.locator("[data-testid=playlist] li").evaluate_all("ls => ls.map(l => l.dataset.id)")
    assert ids[:2] == ["jazz1", "jazz3"] and "jazz2" not in ids and len(set(ids)) == 7
    assert "Jazz Band 2" in page.locator("#pl-notes").inner_text()
    # a 404 that is not about an item (a proxy, a missing route) drops nothing
    page.route("**/api/playlists/continue", lambda r: r.fulfill(
        status=404, body=json.dumps({"error": "not_found", "detail": "Not Found"}), content_type="application/json"))
    page.get_by_test_id("pl-continue").click()
    page.wait_for_selector("#pl-notes.error:text-is('Not Found')")
    assert page.locator("[data-testid=playlist] li").count() == 7
    assert not page.errors, page.errors


def test_a_generated_playlist_with_no_match_keeps_the_playlist_and_says_so(page):
    _started(page, "/#/playlist")
    page.get_by_test_id("pl-query").fill("metal")
    page.locator("#pl-n").fill("4")
    page.get_by_test_id("pl-generate").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=playlist] li').length === 4")
    page.get_by_test_id("f-tags").fill("no-such-tag")
    page.get_by_test_id("pl-generate").click()
    page.wait_for_selector("#pl-notes.error")
    assert "no items match" in page.locator("#pl-notes").inner_text()
    assert page.locator("[data-testid=playlist] li").count() == 4
    page.get_by_test_id("pl-continue").click()                     # nothing left that matches either
    page.wait_for_selector("#pl-notes.error:has-text('no more items')")
    assert page.locator("[data-testid=playlist] li").count() == 4


def test_server_errors_read_as_errors(page):
    _started(page, "/#/playlist")
    page.route("**/api/playlists/generate", lambda r: r.fulfill(status=500, body="boom", content_type="text/plain"))
    page.get_by_test_id("pl-query").fill("metal")
    page.get_by_test_id("pl-generate").click()
    page.wait_for_selector("#pl-notes.error:has-text('500 Internal Server Error')")
    page.unroute("**/api/playlists/generate")
    page.locator("#pl-n").fill("3")
    page.get_by_test_id("pl-generate").click()                     # a success clears the error look
    page.wait_for_selector("#pl-notes:not(.error):has-text('3 items')")
    page.locator("#pl-k").fill("0")                                # a 422 from the server, shown as an error
    page.get_by_test_id("pl-continue").click()
    page.wait_for_selector("#pl-notes.error:has-text('body.k')")
    page.goto(page.url0 + "/#/")
    page.route("**/api/search?**", lambda r: r.fulfill(status=200, body="<html>proxy page</html>",
                                                       content_type="text/html"))
    page.get_by_test_id("search-box").fill("jazz")
    page.wait_for_selector("#search-status.error:has-text('not JSON')")
    page.route("**/api/search?**", lambda r: r.fulfill(status=503, body=f"<h1>{XSS}</h1>", content_type="text/html"))
    page.get_by_test_id("search-box").fill("metal")
    page.wait_for_selector("#search-status.error:has-text('503')")
    assert page.locator("img").count() == 0 and not page.dialogs and not page.errors, (page.dialogs, page.errors)


def test_a_malformed_item_address_says_so(page):
    _started(page, "/#/item/metal1")
    page.wait_for_selector("[data-testid=item-name]:has-text('Metal Band 1')")
    page.goto(page.url0 + "/#/item/%E0%A4%A")
    page.wait_for_selector("#item .error:has-text('not an item address')")
    assert page.locator("[data-testid=item-name]").count() == 0
    assert not page.errors, page.errors


def test_a_filter_error_on_an_item_page_leaves_the_item_shown(page):
    _started(page, "/#/item/metal2")
    page.wait_for_selector("[data-testid=item-name]:has-text('Metal Band 2')")
    page.get_by_test_id("f-where").fill("nosuchfield>1")
    page.wait_for_selector("[data-testid=similar] li.error:has-text('nosuchfield')")
    assert page.get_by_test_id("item-name").inner_text() == "Metal Band 2"
    page.locator("#f-clear").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=similar] li a.name').length === 12")
    assert not page.errors, page.errors


def test_the_novelty_slider_on_an_item_page_asks_similar_for_less_popular_items(page):
    """The item page's novelty slider gives GET similar ``novelty``: the page shows the API's
    list, and 0 the plain one again."""
    _started(page, "/#/item/metal1")
    page.wait_for_function("document.querySelectorAll('[data-testid=similar] li a.name').length === 12")
    ids = "ls => ls.map(l => l.dataset.id)"
    with urllib.request.urlopen(page.url0 + "/api/items/metal1/similar?k=12") as r:
        plain = [h["item_id"] for h in json.load(r)["items"]]
    with urllib.request.urlopen(page.url0 + "/api/items/metal1/similar?k=12&novelty=0.6") as r:
        novel = [h["item_id"] for h in json.load(r)["items"]]
    assert page.locator("[data-testid=similar] li").evaluate_all(ids) == plain and novel != plain

    def shows(want: list[str]) -> str:                             # the similar list is exactly ``want``
        return ("JSON.stringify([...document.querySelectorAll('[data-testid=similar] li')].map(l => l.dataset.id))"
                f" === {json.dumps(json.dumps(want, separators=(',', ':')))}")
    page.eval_on_selector("#sim-nov", "e => { e.value = '0.6'; e.dispatchEvent(new Event('input')); "
                                      "e.dispatchEvent(new Event('change')); }")
    page.wait_for_function(shows(novel))
    assert page.locator("#sim-nov-v").inner_text() == "0.6"
    page.eval_on_selector("#sim-nov", "e => { e.value = '0'; e.dispatchEvent(new Event('change')); }")
    page.wait_for_function(shows(plain))
    assert not page.errors, page.errors


def test_why_on_a_similar_item_shows_its_place_the_lists_and_the_shared_tags(page):
    """"why?" on an item page's similar item shows GET /api/explain: its rank in the item's
    served list, each fused list's rank, the fused cosine and the shared tags; a second
    click hides it."""
    _started(page, "/#/item/metal1")
    page.wait_for_function("document.querySelectorAll('[data-testid=similar] li a.name').length === 12")
    second = page.locator("[data-testid=similar] li").nth(1)
    b = second.get_attribute("data-id")
    with urllib.request.urlopen(page.url0 + f"/api/explain?a=metal1&b={b}") as r:
        ex = json.load(r)
    second.get_by_test_id("why").click()
    panel = second.get_by_test_id("why-panel")
    panel.locator("text=shared tags").wait_for()
    shown = panel.inner_text()
    assert f"#{ex['similar']['rank']} of Metal Band 1's similar items with no filter" in shown, shown
    assert ex["similar"]["rank"] == 2 and "fused space #" in shown and "interactions (EASE) #" in shown, shown
    assert f"fused-space cosine {ex['cosine']:.3f}" in shown and ex["shared_tags"][0] in shown, shown
    second.get_by_test_id("why").click()
    assert second.get_by_test_id("why-panel").count() == 0
    assert not page.errors, page.errors


def test_why_on_a_search_result_shows_its_place_the_lists_and_the_query_words(page):
    """"why?" on a search result shows GET /api/explain/search for the query and the mode
    chosen on the page."""
    _started(page)
    page.get_by_test_id("search-box").fill("smooth jazz")
    page.wait_for_function("document.querySelectorAll('[data-testid=results] li a.name').length > 3")
    third = page.locator("[data-testid=results] li").nth(2)
    third.get_by_test_id("why").click()
    panel = third.get_by_test_id("why-panel")
    panel.locator("text=fused-space cosine").wait_for()
    shown = panel.inner_text()
    assert "#3 for this query with no filter (hybrid)" in shown and "words (BM25) #" in shown, shown
    assert "query words it has (BM25):" in shown and "jazz" in shown, shown
    page.select_option("#mode", "lexical")
    page.wait_for_function("document.querySelector('[data-testid=score-kind]')?.textContent.includes('BM25')")
    page.locator("[data-testid=results] li").first.get_by_test_id("why").click()
    page.locator("[data-testid=results] li").first.locator("[data-testid=why-panel] >> text=(lexical)").wait_for()
    assert not page.errors, page.errors


def test_an_empty_list_on_the_page_says_why(page):
    """A search whose filter no item passes says so under the search box's list, with the
    range of the numeric field it names (the API's ``note``), instead of "no results"."""
    _started(page)
    page.get_by_test_id("f-where").fill("year>=2100")
    page.get_by_test_id("search-box").fill("metal band")
    note = page.get_by_test_id("results").get_by_test_id("empty-note")
    note.locator("text=no item passes the filter").wait_for()
    assert "the items have year 1980 to" in note.inner_text()
    assert not page.errors, page.errors


def test_search_results_page_on_without_overlap(page):
    _started(page)
    page.get_by_test_id("search-box").fill("band")
    page.wait_for_function("document.querySelectorAll('[data-testid=results] li a.name').length === 20")
    page.get_by_test_id("more").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=results] li a.name').length === 40")
    ids = page.locator("[data-testid=results] li").evaluate_all("ls => ls.map(l => l.dataset.id)")
    with urllib.request.urlopen(page.url0 + "/api/search?q=band&k=40") as r:
        want = [h["item_id"] for h in json.load(r)["items"]]
    assert ids == want
    assert page.locator("[data-testid=results] li .rank").last.inner_text() == "40"
    page.get_by_test_id("search-box").fill("jazz")                 # a new query starts again at its first page
    page.wait_for_function("document.querySelectorAll('[data-testid=results] li a.name').length === 20")
    assert not page.errors, page.errors


def test_the_start_does_not_cancel_a_next_page_asked_for_before_it_ended(page):
    """The page's start (version, facets, then routing) can end after the user typed a query and
    asked for more: routing searched again and cancelled the next page (seen on the Last.fm
    space, whose facets take a while). Facets and the next page are held here to force it."""
    held: dict[str, object] = {}
    page.route("**/api/facets", lambda r: held.__setitem__("facets", r))
    page.route("**/api/search?*offset=20*", lambda r: held.__setitem__("more", r))
    page.goto(page.url0 + "/")
    page.wait_for_selector("#space-info:has-text('items')")
    page.get_by_test_id("search-box").fill("band")
    page.wait_for_function("document.querySelectorAll('[data-testid=results] li a.name').length === 20")
    page.get_by_test_id("more").click()
    page.wait_for_function("() => true")
    for _ in range(50):
        if "more" in held and "facets" in held:
            break
        page.wait_for_timeout(100)
    held.pop("facets").continue_()
    page.wait_for_selector("#f-range-field option:nth-child(2)", state="attached")
    page.wait_for_timeout(300)                                     # the start's routing has run
    held.pop("more").continue_()
    page.wait_for_function("document.querySelectorAll('[data-testid=results] li a.name').length === 40")
    assert not page.errors, page.errors


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def _user_view(page) -> tuple[str, list[str]]:
    """The page on the user with the most history's recommendations: that user, and the API's
    top 20 for them."""
    _started(page)
    page.wait_for_selector("[data-testid=nav-user]:visible")
    with urllib.request.urlopen(page.url0 + "/api/users?limit=5") as r:
        u = json.load(r)["users"][0]["user_id"]
    page.get_by_test_id("f-user").select_option(u)
    page.get_by_test_id("nav-user").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 20")
    return u, [h["item_id"] for h in _post(page.url0 + "/api/recommend", {"user": u, "k": 20})["items"]]


def test_not_for_me_steers_a_users_recommendations(page):
    """"not for me" on a recommendation gives it to recommend as a negative example: the page
    shows the API's list for the user with that negative, names it, and "clear" undoes it."""
    u, plain = _user_view(page)
    first = page.locator("[data-testid=user-recs] li").first
    name = first.locator("a.name").inner_text()
    first.locator("button[data-not]").click()
    page.wait_for_selector("[data-testid=user-status]:has-text('not for me')")
    page.wait_for_function(f"document.querySelector('[data-testid=user-recs] li')?.dataset.id !== {json.dumps(plain[0])}")
    ids = page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)")
    want = [h["item_id"] for h in _post(page.url0 + "/api/recommend", {"user": u, "k": 20, "negative": [plain[0]]})["items"]]
    assert ids == want and plain[0] not in ids
    assert name in page.get_by_test_id("user-status").inner_text()
    page.get_by_test_id("not-for-me-clear").click()
    page.wait_for_function(f"document.querySelector('[data-testid=user-recs] li')?.dataset.id === {json.dumps(plain[0])}")
    assert page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)") == plain
    assert not page.errors, page.errors


def test_why_on_a_recommendation_shows_its_place_its_terms_and_the_history_items(page):
    """"why?" on a user's recommendation shows GET /api/explain/recommend for that user: its
    rank, the terms of its score, and the history items most like it, as links."""
    u, plain = _user_view(page)
    with urllib.request.urlopen(page.url0 + f"/api/explain/recommend?item={plain[1]}&user={u}") as r:
        ex = json.load(r)
    second = page.locator("[data-testid=user-recs] li").nth(1)
    second.get_by_test_id("why").click()
    panel = second.get_by_test_id("why-panel")
    panel.locator("text=because of").wait_for()
    shown = panel.inner_text()
    assert "#2 of the user's recommendations with no filter" in shown and "fused space" in shown, shown
    assert ex["because"] and ex["because"][0]["name"] in shown, shown
    assert panel.locator("a").count() == min(5, len(ex["because"]))
    assert not page.errors, page.errors


def test_the_novelty_slider_asks_recommend_for_less_popular_items(page):
    """The user view's novelty slider gives recommend ``novelty`` over a pool of 200 that
    every page shares: the page shows the API's list, pages it without overlap, says so, and 0
    is the plain ranking again."""
    u, plain = _user_view(page)
    novel = [h["item_id"] for h in _post(page.url0 + "/api/recommend", {"user": u, "k": 40, "novelty": 0.5,
                                                                         "pool": 200})["items"]]
    assert novel[:20] != plain                                      # the slider has something to show
    page.eval_on_selector("#user-nov", "e => { e.value = '0.5'; e.dispatchEvent(new Event('input')); "
                                       "e.dispatchEvent(new Event('change')); }")
    page.wait_for_selector("[data-testid=user-status]:has-text('novelty 0.5')")
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 20")
    assert page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)") == novel[:20]
    page.get_by_test_id("user-more").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 40")
    assert page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)") == novel
    page.eval_on_selector("#user-nov", "e => { e.value = '0'; e.dispatchEvent(new Event('change')); }")
    page.wait_for_function("!document.querySelector('[data-testid=user-status]').textContent.includes('novelty')")
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 20")
    assert page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)") == plain
    assert not page.errors, page.errors


def test_the_ranking_menu_asks_recommend_for_another_strategy(page):
    """The user view's "ranking" menu gives recommend a ``strategy``: the page shows the API's
    list for it (``best_score``: each item by the history item nearest to it), says so, its
    "why?" explains that ranking, and "the space's" is the plain ranking again."""
    u, plain = _user_view(page)
    best = [h["item_id"] for h in _post(page.url0 + "/api/recommend", {"user": u, "k": 20,
                                                                        "strategy": "best_score"})["items"]]
    assert best != plain                                              # the menu has something to show
    assert page.eval_on_selector("#user-strategy option", "o => o.textContent") == "the space's (blend)"
    page.select_option("#user-strategy", "best_score")
    page.wait_for_selector("[data-testid=user-status]:has-text('ranking: best_score')")
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 20")
    assert page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)") == best
    first = page.locator("[data-testid=user-recs] li").nth(0)
    first.get_by_test_id("why").click()
    first.get_by_test_id("why-panel").locator("text=#1 of the user's recommendations").wait_for()
    page.select_option("#user-strategy", "")
    page.wait_for_function("!document.querySelector('[data-testid=user-status]').textContent.includes('ranking:')")
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 20")
    assert page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)") == plain
    assert not page.errors, page.errors


def test_a_user_gets_recommendations_and_personalized_search(page):
    """The page had no way to reach recommend(user) or personalized search: the user picker in
    the filter bar personalizes search, and "For a user" lists their recommendations, paged."""
    _started(page)
    page.wait_for_selector("[data-testid=nav-user]:visible")
    with urllib.request.urlopen(page.url0 + "/api/users?limit=50") as r:
        users = [u["user_id"] for u in json.load(r)["users"]]
    assert users and page.locator("#f-user option").count() == len(users) + 1
    u = users[0]
    page.get_by_test_id("f-user").select_option(u)
    page.get_by_test_id("nav-user").click()
    page.wait_for_selector(f"#user-title:has-text('user {u}')")
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 20")
    ids = page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)")
    want = _post(page.url0 + "/api/recommend", {"user": u, "k": 40})["items"]
    assert ids == [h["item_id"] for h in want[:20]]
    page.get_by_test_id("user-more").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=user-recs] li a.name').length === 40")
    ids = page.locator("[data-testid=user-recs] li").evaluate_all("ls => ls.map(l => l.dataset.id)")
    assert ids == [h["item_id"] for h in want]
    # search, personalized for the user: the API's personalized list, and the page says so
    page.get_by_test_id("nav-search").click()
    page.get_by_test_id("search-box").fill("band")
    page.wait_for_selector("[data-testid=personalized]:has-text('personalized for user')")
    page.wait_for_function("document.querySelectorAll('[data-testid=results] li a.name').length === 20")
    ids = page.locator("[data-testid=results] li").evaluate_all("ls => ls.map(l => l.dataset.id)")
    want = _post(page.url0 + "/api/search/personalized", {"query": "band", "user": u, "alpha": 0.3, "k": 20})["items"]
    assert ids == [h["item_id"] for h in want] and page.locator("#mode").is_disabled()
    page.get_by_test_id("f-user").select_option("")                # anyone again: a plain search
    page.wait_for_function("!document.querySelector('[data-testid=personalized]')")
    assert not page.locator("#mode").is_disabled()
    page.goto(page.url0 + "/#/user")                               # no user chosen: says what to do
    page.wait_for_selector("[data-testid=user-status]:has-text('Choose a user')")
    assert not page.errors, page.errors


def test_the_novelty_sliders_start_at_the_spaces_defaults(browser, tiny_novelty_space_dir):
    """On a space built with ``recommend.novelty`` and ``similar.novelty`` the sliders start
    there and the lists are the API's default ones; moved to 0, the plain ranking (the page
    sends 0, not nothing)."""
    from talkrec.service.app import create_app
    from tiny_data import TINY_NOVELTY
    rec, sim = TINY_NOVELTY
    ids = "ls => ls.map(l => l.dataset.id)"
    with live_server(create_app(tiny_novelty_space_dir)) as url:
        ctx = browser.new_context(viewport={"width": 1200, "height": 900})
        pg = ctx.new_page()
        pg.set_default_timeout(15000)
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.url0 = url
        _started(pg, "/#/item/metal1")
        assert pg.eval_on_selector("#sim-nov", "e => Number(e.value)") == sim
        assert pg.locator("#sim-nov-v").inner_text() == str(sim)
        with urllib.request.urlopen(url + "/api/items/metal1/similar?k=12") as r:
            default = [h["item_id"] for h in json.load(r)["items"]]
        with urllib.request.urlopen(url + "/api/items/metal1/similar?k=12&novelty=0") as r:
            plain = [h["item_id"] for h in json.load(r)["items"]]
        assert default != plain
        pg.wait_for_function("document.querySelectorAll('[data-testid=similar] li a.name').length === 12")
        assert pg.locator("[data-testid=similar] li").evaluate_all(ids) == default
        pg.eval_on_selector("#sim-nov", "e => { e.value = '0'; e.dispatchEvent(new Event('change')); }")
        pg.wait_for_function(f"document.querySelector('[data-testid=similar] li')?.dataset.id === {json.dumps(plain[0])}")
        assert pg.locator("[data-testid=similar] li").evaluate_all(ids) == plain
        u, _ = _user_view(pg)
        assert pg.eval_on_selector("#user-nov", "e => Number(e.value)") == rec
        pg.wait_for_selector(f"[data-testid=user-status]:has-text('novelty {rec}')")
        want = [h["item_id"] for h in _post(url + "/api/recommend", {"user": u, "k": 20, "novelty": rec, "pool": 200})["items"]]
        assert pg.locator("[data-testid=user-recs] li").evaluate_all(ids) == want
        assert not pg.errors, pg.errors
        ctx.close()
