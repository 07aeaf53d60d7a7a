// talkrec web page: vanilla JS, no build step. Talks to the JSON API under /api.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const state = { modalities: [], playlist: [], lastStats: null };

// an API failure: the server's detail (or the HTTP status) and the status, for the callers that tell cases apart
class ApiError extends Error { constructor(message, status) { super(message); this.status = status; } }
async function api(path, opts = {}) {
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new ApiError((body && typeof body.detail === "string" && body.detail) || `${r.status} ${r.statusText}`.trim(), r.status);
  if (body === null || typeof body !== "object") throw new ApiError(`the server's answer to ${path.split("?")[0]} is not JSON`, r.status);
  return body;
}
const post = (path, data, signal) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data), signal });

// ------------------------------------------------------------------ filters
function filters() {
  const f = { tags: $("f-tags").value.split(",").map((t) => t.trim()).filter(Boolean), ranges: {} };
  if ($("f-decade").value) f.decade = $("f-decade").value;
  const rf = $("f-range-field").value, lo = $("f-range-min").value, hi = $("f-range-max").value;
  if (rf && (lo !== "" || hi !== "")) f.ranges[rf] = { min: lo === "" ? null : Number(lo), max: hi === "" ? null : Number(hi) };
  if ($("f-where").value.trim()) f.where = $("f-where").value.trim();
  return f;
}
function filterParams(p) {
  const f = filters();
  f.tags.forEach((t) => p.append("tag", t));
  if (f.decade) p.set("decade", f.decade);
  for (const [k, r] of Object.entries(f.ranges)) p.append("range", `${k}:${r.min ?? ""}:${r.max ?? ""}`);
  if (f.where) p.set("where", f.where);
  return p;
}
function onFiltersChanged() { route(true); }
["f-tags", "f-where", "f-range-min", "f-range-max"].forEach((id) => $(id).addEventListener("input", debounce(onFiltersChanged, 300)));
["f-decade", "f-range-field"].forEach((id) => $(id).addEventListener("change", onFiltersChanged));
$("f-clear").addEventListener("click", () => {
  ["f-tags", "f-where", "f-range-min", "f-range-max"].forEach((id) => ($(id).value = ""));
  $("f-decade").value = ""; $("f-range-field").value = "";
  onFiltersChanged();
});

function debounce(fn, ms) { let t; return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }; }

// ------------------------------------------------------------------ rendering
function modChips(mods) {
  return state.modalities.map((m) => `<span class="chip mod ${mods.includes(m) ? "" : "missing"}" title="${mods.includes(m) ? "has" : "lacks"} ${esc(m)}">${esc(m)}</span>`).join("");
}
// what a response's scores are (its score_kind): labels for the page
const SCORE_LABELS = { cosine: "cosine (fused space)", text_cosine: "cosine (text model)", bm25: "BM25 score",
  rrf: "RRF score (rank fusion: compare ranks, not values)", blend: "sum of z-scores (fused, EASE, ALS)",
  session: "session model score" };
const scoreLabel = (kind) => SCORE_LABELS[kind] || SCORE_LABELS.cosine;
const asList = (v) => (Array.isArray(v) ? v : v === null || v === undefined || v === "" ? [] : [v]);
function hitLi(h, i, extra = "") {
  const md = h.metadata || {};
  const tags = asList(md.tags || md.genres).slice(0, 6).map((t) => `<span class="chip">${esc(t)}</span>`).join("");
  return `<li data-id="${esc(h.item_id)}"><span class="rank">${i + 1}</span>
    <span><a class="name" href="#/item/${encodeURIComponent(h.item_id)}">${esc(h.name)}</a> ${extra}</span>
    <span class="score" title="${esc(scoreLabel(h.score_kind))}">${typeof h.score === "number" ? h.score.toFixed(3) : "–"}</span>
    <span class="tags">${tags} ${md.modalities ? modChips(asList(md.modalities)) : ""}</span></li>`;
}
// hits of one response, each remembering what its score is (a playlist mixes responses)
const withKind = (hits, kind) => hits.map((h) => ({ ...h, score_kind: kind }));
// more(h): extra buttons for a hit (e.g. "not for me" on a user's recommendations)
// note: why an empty list is empty (the response's note: whether any item passes the filter)
function renderHits(el, hits, withAdd = true, more = () => "", note = "") {
  el.innerHTML = hits.map((h, i) => hitLi(h, i, (withAdd ? `<button class="add" data-add="${esc(h.item_id)}" title="add to the playlist">+ playlist</button>` : "") + more(h))).join("")
    || `<li class="muted" data-testid="empty-note"><span></span><span>${esc(note || "no results")}</span></li>`;
  el.querySelectorAll("button[data-add]").forEach((b) => b.addEventListener("click", () => {
    const h = hits.find((x) => x.item_id === b.dataset.add);
    addToPlaylist([h]); b.textContent = "added"; b.disabled = true;
  }));
}

// ------------------------------------------------------------------ search as you type, a page at a time
const PAGE = 20;
let searchCtl = null;
let shown = { params: "", hits: [] };  // the query of the results on the page, and the hits so far
let fetching = null;                   // the query whose page is being fetched (null: none)
async function runSearch(more = false) {
  const q = $("q").value.trim();
  let p;
  if (more) { p = new URLSearchParams(shown.params); p.set("offset", String(shown.hits.length)); }
  else {
    p = filterParams(new URLSearchParams({ q, k: String(PAGE) }));
    if (user()) { p.set("user", user()); p.set("alpha", $("f-alpha").value); }   // ranks in the fused space only
    else if ($("mode").value) p.set("mode", $("mode").value);
    // the results on the page are this search's already, and nothing else is on its way (the start's
    // routing after the user typed): searching again would only cancel a next page being fetched
    if (q && p.toString() === shown.params && (fetching === null || fetching === shown.params)) return;
  }
  if (searchCtl) searchCtl.abort();
  if (!q) { $("results").innerHTML = ""; $("search-status").textContent = ""; $("more").hidden = true; shown = { params: "", hits: [] }; fetching = null; return; }
  const ctl = searchCtl = new AbortController();
  fetching = more ? shown.params : p.toString();
  try {
    const r = await fetchSearch(p, ctl.signal);
    if (!more) shown = { params: p.toString(), hits: [] };
    shown.hits = shown.hits.concat(withKind(r.items, r.score_kind));
    // "why?" on a hit: GET /api/explain/search (a personalized search has no explanation of its own)
    const mode = p.get("user") ? null : p.get("mode");
    renderHits($("results"), shown.hits, true, (h) => (p.get("user") ? "" : WHY_BUTTON(h)), r.note);
    $("results").querySelectorAll("button[data-why]").forEach((b) => b.addEventListener("click", () => toggleWhy(b,
      `/api/explain/search?${new URLSearchParams({ q: p.get("q"), item: b.dataset.why, ...(mode ? { mode } : {}) })}`, searchWhyHtml)));
    $("more").hidden = r.items.length < PAGE;
    $("search-status").innerHTML = `${shown.hits.length} results in ${esc(r.took_ms)} ms ·
      ${p.get("user") ? `<span data-testid="personalized">personalized for user ${esc(p.get("user"))} (taste ${esc(p.get("alpha"))})</span> · ` : ""}
      <span data-testid="score-kind">scores: ${esc(scoreLabel(r.score_kind))}</span>`;
    $("search-status").classList.remove("error");
  } catch (e) {
    if (e.name === "AbortError") return;
    $("search-status").textContent = e.message; $("search-status").classList.add("error");
    if (!more) { $("results").innerHTML = ""; $("more").hidden = true; shown = { params: "", hits: [] }; }
  } finally {
    if (ctl === searchCtl) fetching = null;
  }
}
// a search's parameters (as on the page's address of its results) -> the API's answer: plain search, or
// personalized search (a POST) when they name a user
function fetchSearch(p, signal) {
  if (!p.get("user")) return api(`/api/search?${p}`, { signal });
  return post("/api/search/personalized", { query: p.get("q"), user: p.get("user"), alpha: Number(p.get("alpha")),
    k: Number(p.get("k")), offset: Number(p.get("offset") || 0), filters: filters() }, signal);
}
$("q").addEventListener("input", debounce(() => runSearch(), 120));
$("mode").addEventListener("change", () => runSearch());
$("more").addEventListener("click", () => runSearch(true));

// ------------------------------------------------------------------ item page
let itemSeq = 0;  // the latest item asked for: an answer for an earlier one is dropped
let itemShown = null;  // the id of the item on the page
async function showItem(id) {
  const seq = ++itemSeq;
  itemShown = id;
  $("item").innerHTML = `<p class="muted">loading…</p>`; $("similar").innerHTML = "";
  try {
    const it = await api(`/api/items/${encodeURIComponent(id)}`);
    if (seq !== itemSeq) return;
    const rows = Object.entries(it.metadata).filter(([k, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length))
      .map(([k, v]) => `<tr><td class="muted">${esc(k)}</td><td>${esc(Array.isArray(v) ? v.join(", ") : v)}</td></tr>`).join("");
    $("item").innerHTML = `<h2 data-testid="item-name">${esc(it.name)}</h2>
      <div class="row"><span>modalities:</span> ${it.space_modalities.map((m) => `<span class="chip mod ${it.modalities.includes(m) ? "" : "missing"}">${esc(m)}</span>`).join("")}
        ${it.cold_start ? `<span class="chip cold">added without retraining</span>` : ""}
        <button id="item-add" type="button" data-testid="item-add">+ playlist</button>
        <button id="item-start" type="button">start a playlist from here</button></div>
      <p class="desc" data-testid="item-desc">${esc(it.description || "(no description)")}</p>
      <table>${rows}</table>`;
    const asHit = { item_id: it.item_id, name: it.name, score: 1, score_kind: "cosine", metadata: { tags: it.metadata.tags || [], modalities: it.modalities } };
    $("item-add").onclick = () => { addToPlaylist([asHit]); $("item-add").textContent = "added"; $("item-add").disabled = true; };
    $("item-start").onclick = () => { state.playlist = [asHit]; state.lastStats = null; renderPlaylist(); location.hash = "#/playlist"; continuePlaylist(); };
  } catch (e) {
    if (seq === itemSeq) $("item").innerHTML = `<p class="error">${esc(e.message)}</p>`;
    return;
  }
  await showSimilar(id);
}
// the similar items (filtered by the filter bar; the novelty slider): an error here leaves the item shown
let simSeq = 0;   // the latest similar list asked for: an answer for an earlier one, or another item, is dropped
async function showSimilar(id) {
  const seq = ++simSeq, current = () => seq === simSeq && itemShown === id;
  try {
    const p = filterParams(new URLSearchParams({ k: "12" }));
    p.set("novelty", $("sim-nov").value);   // always: 0 is the plain ranking whatever the space's default
    const sim = await api(`/api/items/${encodeURIComponent(id)}/similar?${p}`);
    if (!current()) return;
    renderHits($("similar"), withKind(sim.items, sim.score_kind), true, WHY_BUTTON, sim.note);
    $("similar").querySelectorAll("button[data-why]").forEach((b) => b.addEventListener("click", () => toggleWhy(b,
      `/api/explain?${new URLSearchParams({ a: id, b: b.dataset.why })}`, explainHtml)));
  } catch (e) {
    if (current()) $("similar").innerHTML = `<li class="error"><span></span><span>${esc(e.message)}</span></li>`;
  }
}
// "why?" on a hit: the explanation (url, rendered by render) under it; a second click hides it
const WHY_BUTTON = (h) => `<button type="button" class="add" data-why="${esc(h.item_id)}" data-testid="why" title="why is it here?">why?</button>`;
const LIST_NAMES = { fused: "fused space", cf: "interactions (EASE)", content: "content", lexical: "words (BM25)", text: "text model", name: "names (BM25)" };
async function toggleWhy(button, url, render) {
  const li = button.closest("li"), open = li.querySelector(".why");
  if (open) { open.remove(); return; }
  const box = document.createElement("div");
  box.className = "why small"; box.dataset.testid = "why-panel"; box.textContent = "…";
  li.appendChild(box);
  try { box.innerHTML = render(await api(url)); } catch (e) { box.textContent = e.message; box.classList.add("error"); }
}
// the fused lists' ranks of an item and each one's share of its RRF score
function listsHtml(lists) {
  const total = lists.reduce((t, l) => t + l.part, 0);
  return lists.map((l) => `${esc(LIST_NAMES[l.list] || l.list)} ${l.rank ? `#${l.rank}` : "–"}`
    + (l.rank && total > 0 ? ` (${Math.round((100 * l.part) / total)}% of the score)` : "")).join(" · ");
}
// an explanation ranks at the space's default novelty: say so when it or the list's slider is not 0
const novNote = (used, slider) => (Number(used) || Number(slider)
  ? ` at the space's novelty ${esc(used)}${Number(slider) !== Number(used) ? ` (this list: ${esc(slider)})` : ""}` : "");
// GET /api/explain: its place in the item's served similar list, the fused cosine's modality shares, the shared tags
function explainHtml(ex) {
  const s = ex.similar, a = esc(ex.names.a), lists = listsHtml(s.lists);
  const place = s.rank ? `#${s.rank} of ${a}'s similar items with no filter${novNote(s.novelty, $("sim-nov").value)}`
    : `not in ${a}'s first 200 similar items`;
  const mods = Object.entries(ex.modality_contributions).slice(0, 4)
    .map(([k, v]) => `${esc(k.replace("~", " ~ "))} ${ex.cosine > 0.1 ? `${Math.round((100 * v) / ex.cosine)}%` : v.toFixed(3)}`).join(" · ");
  const tags = ex.shared_tags.slice(0, 12).map((t) => `<span class="chip">${esc(t)}</span>`).join("") || "none";
  return `<div>${place}${lists ? `: ${lists}` : ""}</div>
    <div>fused-space cosine ${ex.cosine.toFixed(3)}${mods ? ` (by modality pair: ${mods})` : ""}</div>
    <div>shared tags: ${tags}</div>`;
}
// GET /api/explain/recommend: its place in the user's recommendations, each term of its score, the history
// items most like it ("because of")
const PART_NAMES = { fused: "fused space", ease: "EASE", als: "ALS", cold: "new-item boost", cf: "EASE list" };
function recommendWhyHtml(ex) {
  const place = ex.rank ? `#${ex.rank} of the user's recommendations with no filter${novNote(ex.novelty, $("user-nov").value)}`
    : ex.in_history ? "in the user's history" : "not in the user's first 200 recommendations";
  const parts = ex.parts.filter((p) => p.part !== "cold" || p.value)
    .map((p) => `${esc(PART_NAMES[p.part] || p.part)} ${p.rank ? `#${p.rank} ` : ""}${p.value.toFixed(p.rank ? 4 : 2)}`).join(" · ");
  const because = ex.because.slice(0, 5).map((b) => `<a href="#/item/${encodeURIComponent(b.item_id)}">${esc(b.name)}</a>`
    + ` <span class="muted">(cosine ${b.cosine.toFixed(2)})</span>`).join(", ") || "none";
  return `<div>${place}${parts ? `: ${parts}` : ""}</div>
    <div>because of: ${because}</div>`;
}
// GET /api/explain/search: its place in the search as served, the query's BM25 words it has, the fused cosine
function searchWhyHtml(ex) {
  const lists = listsHtml(ex.lists);
  const place = ex.rank ? `#${ex.rank} for this query with no filter (${esc(ex.mode)})` : `not in the query's first 200 results (${esc(ex.mode)})`;
  const terms = ex.terms.map((t) => `<span class="chip">${esc(t.term)}</span>`).join("") || "none";
  return `<div>${place}${lists ? `: ${lists}` : ""}</div>
    <div>query words it has (BM25): ${terms}</div>
    <div>fused-space cosine to the query ${ex.cosine.toFixed(3)}</div>`;
}
$("sim-nov").addEventListener("input", () => { $("sim-nov-v").textContent = $("sim-nov").value; });
$("sim-nov").addEventListener("change", () => { if (itemShown !== null) showSimilar(itemShown); });

// ------------------------------------------------------------------ a user: recommendations from their history
const user = () => $("f-user").value;
let userRecs = { key: "", hits: [] };  // the user and filters of the recommendations on the page, and the hits so far
let userSeq = 0;                       // the latest request: an answer for an earlier one is dropped
let notForMe = { user: "", items: [] }; // the items the user marked "not for me": negative examples of recommend
const NOVELTY_POOL = 200;              // with novelty: the candidates re-ranked, the same for every page
async function showUser(more = false) {
  const nov = Number($("user-nov").value), strategy = $("user-strategy").value;
  const u = user(), key = JSON.stringify([u, filters(), notForMe.items, nov, strategy]), seq = ++userSeq;
  if (notForMe.user !== u) notForMe = { user: u, items: [] };
  $("user-title").textContent = u ? `Recommendations for user ${u}` : "Recommendations";
  $("user-more").hidden = true;
  if (!u) { $("user-recs").innerHTML = ""; $("user-status").textContent = "Choose a user in the bar above."; userRecs = { key: "", hits: [] }; return; }
  if (!more) userRecs = { key, hits: [] };
  $("user-status").textContent = "loading…";
  try {
    const body = { user: u, k: PAGE, offset: userRecs.hits.length, filters: filters() };
    if (notForMe.items.length) body.negative = notForMe.items.map((h) => h.item_id);
    body.novelty = nov;                     // always: 0 is the plain ranking whatever the space's default
    if (nov > 0) body.pool = NOVELTY_POOL;
    if (strategy) body.strategy = strategy;
    const r = await post("/api/recommend", body);
    if (seq !== userSeq) return;
    userRecs.hits = userRecs.hits.concat(withKind(r.items, r.score_kind));
    renderHits($("user-recs"), userRecs.hits, true,
      (h) => ` <button class="add" data-not="${esc(h.item_id)}" title="leave it out and recommend less like it">not for me</button>`
        + WHY_BUTTON(h), r.note);
    $("user-recs").querySelectorAll("button[data-why]").forEach((b) => b.addEventListener("click", () => toggleWhy(b,
      `/api/explain/recommend?${new URLSearchParams([["item", b.dataset.why], ["user", u],
        ...notForMe.items.map((h) => ["negative", h.item_id]), ...(strategy ? [["strategy", strategy]] : [])])}`,
      recommendWhyHtml)));
    $("user-recs").querySelectorAll("button[data-not]").forEach((b) => b.addEventListener("click", () => {
      notForMe.items.push(userRecs.hits.find((h) => h.item_id === b.dataset.not)); showUser();
    }));
    $("user-more").hidden = r.items.length < PAGE || (nov > 0 && userRecs.hits.length + PAGE > NOVELTY_POOL);
    const novNote = (nov > 0 ? ` · novelty ${esc(nov)}: less popular items up, from the top ${NOVELTY_POOL}` : "")
      + (strategy ? ` · ranking: ${esc(strategy)}` : "");
    const not = notForMe.items.length ? ` · not for me (weighed against the history): ${notForMe.items.map((h) => esc(h.name)).join(", ")} <button type="button" data-testid="not-for-me-clear" id="not-clear">clear</button>` : "";
    $("user-status").innerHTML = `${userRecs.hits.length} recommendations from the user's history (the items they already have are left out) in ${esc(r.took_ms)} ms · scores: ${esc(scoreLabel(r.score_kind))}${novNote}${not}`;
    if (not) $("not-clear").addEventListener("click", () => { notForMe.items = []; showUser(); });
  } catch (e) {
    if (seq !== userSeq) return;
    $("user-status").textContent = e.message; $("user-recs").innerHTML = "";
  }
}
$("user-more").addEventListener("click", () => showUser(true));
$("user-nov").addEventListener("input", () => { $("user-nov-v").textContent = $("user-nov").value; });
$("user-nov").addEventListener("change", () => showUser());
$("user-strategy").addEventListener("change", () => showUser());
$("f-user").addEventListener("change", () => route(true));
$("f-alpha").addEventListener("input", () => { $("f-alpha-v").textContent = $("f-alpha").value; });
$("f-alpha").addEventListener("change", () => route(true));

// ------------------------------------------------------------------ playlist builder
function addToPlaylist(hits) {
  const have = new Set(state.playlist.map((h) => h.item_id));
  hits.forEach((h) => { if (h && !have.has(h.item_id)) { state.playlist.push(h); have.add(h.item_id); } });
  state.lastStats = null;
  renderPlaylist();
}
function renderPlaylist() {
  const el = $("playlist");
  el.innerHTML = state.playlist.map((h, i) => hitLi(h, i, `<button class="add" data-rm="${i}" title="remove">×</button>`)).join("");
  el.querySelectorAll("button[data-rm]").forEach((b) => b.addEventListener("click", () => {
    state.playlist.splice(Number(b.dataset.rm), 1); state.lastStats = null; renderPlaylist();
  }));
  $("pl-continue").disabled = !state.playlist.length;
  const s = state.lastStats;
  $("pl-stats").innerHTML = s ? (s.continued ? `<b>Coherence ${fmt(s.stats.coherence)}</b> (${state.playlist.length} items)`
      : `<b>Coherence ${fmt(s.stats.coherence)}</b> (plain top-${state.playlist.length} search results: ${fmt(s.stats.coherence_plain_topn)}) ·
      relevance ${fmt(s.stats.relevance)} (plain: ${fmt(s.stats.relevance_plain_topn)})`)
      + `<div class="muted small" data-testid="pl-measure">${esc(s.coherence_measure)}</div>` : (state.playlist.length ? `<span class="muted">${state.playlist.length} items</span>` : "");
  try { localStorage.setItem("talkrec.playlist", JSON.stringify(state.playlist)); } catch (e) { /* private mode */ }
}
const fmt = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));
function note(text, isError = false) { $("pl-notes").textContent = text; $("pl-notes").classList.toggle("error", isError); }
$("pl-coh").addEventListener("input", () => ($("pl-coh-v").textContent = $("pl-coh").value));
$("pl-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  note("generating…");
  try {
    const r = await post("/api/playlists/generate", { query: $("pl-query").value, n: Number($("pl-n").value || 15), coherence: Number($("pl-coh").value), filters: filters() });
    if (!r.items.length) { note("no items match the query and the filters: the playlist is unchanged", true); return; }
    state.playlist = withKind(r.items, r.score_kind); state.lastStats = r;
    renderPlaylist();
    note(`${r.items.length} items in ${r.took_ms} ms`);
  } catch (e) { note(e.message, true); }
});
async function continuePlaylist(dropped = []) {
  if (!state.playlist.length) { if (dropped.length) note(droppedNote(dropped), true); return; }
  note("continuing…");
  const body = { items: state.playlist.map((h) => h.item_id), k: Number($("pl-k").value || 5), diversity: Number($("pl-div").value), filters: filters() };
  if ($("pl-maxper").value) body.max_per_artist = Number($("pl-maxper").value);
  try {
    const r = await post("/api/playlists/continue", body);
    const prev = state.lastStats;
    addToPlaylist(withKind(r.items, r.score_kind));
    if (r.coherence !== null) {
      state.lastStats = { stats: { coherence: r.coherence, coherence_plain_topn: prev ? prev.stats.coherence_plain_topn : null,
        relevance: null, relevance_plain_topn: null }, coherence_measure: "coherence of the whole playlist after continuing (seeds alone: "
        + fmt(r.coherence_seeds) + "); mean pairwise cosine of its items in the fused space", continued: true };
      renderPlaylist();
    }
    const got = r.items.length ? `+${r.items.length} items in ${r.took_ms} ms (no duplicates; later items weigh more).`
      : "no more items: none that is not in the playlist matches the filters.";
    note([droppedNote(dropped), got, ...r.notes].filter(Boolean).join(" "), !r.items.length);
  } catch (e) {
    // an item of the playlist is no longer in the space (deleted since it was added): drop it and go on
    const gone = unknownItem(e) && !dropped.length ? await goneItems() : [];
    if (gone.length) {
      state.playlist = state.playlist.filter((h) => !gone.includes(h)); state.lastStats = null; renderPlaylist();
      return continuePlaylist(gone);
    }
    note(e.message, true);
  }
}
// the playlist's items that the continue route does not know (any more), asked one by one
async function goneItems() {
  const unknown = await Promise.all(state.playlist.map((h) => post("/api/playlists/continue", { items: [h.item_id], k: 1 })
    .then(() => false, unknownItem)));
  return state.playlist.filter((h, i) => unknown[i]);
}
// the API's answer for an item it does not have (not a 404 of a route, a proxy, ...)
const unknownItem = (e) => e instanceof ApiError && e.status === 404 && e.message.startsWith("unknown item");
const droppedNote = (gone) => (gone.length ? `Removed from the playlist, no longer in the space: ${gone.map((h) => h.name).join(", ")}.` : "");
$("pl-continue").addEventListener("click", () => continuePlaylist());
$("pl-clear").addEventListener("click", () => { state.playlist = []; state.lastStats = null; renderPlaylist(); });

// ------------------------------------------------------------------ routing + start
function route(refreshOnly = false) {
  const h = location.hash || "#/";
  const m = h.match(/^#\/item\/(.+)$/);
  $("view-search").hidden = !(h === "#/" || h === "#" || h === "");
  $("view-item").hidden = !m;
  $("view-playlist").hidden = h !== "#/playlist";
  $("view-user").hidden = h !== "#/user";
  $("mode").disabled = Boolean(user());    // personalized search ranks in the fused space only
  if (h === "#/user") showUser();
  else if (m) {
    let id = null;
    try { id = decodeURIComponent(m[1]); } catch (e) { /* a malformed %-escape */ }
    if (id === null) { itemSeq++; $("similar").innerHTML = ""; $("item").innerHTML = `<p class="error">not an item address: ${esc(h)}</p>`; }
    else showItem(id);
  }
  else if (!$("view-search").hidden && (refreshOnly || $("q").value)) runSearch();
  else if (!$("view-search").hidden) $("q").focus();
}
window.addEventListener("hashchange", () => route());

// the playlist saved by an earlier visit: only entries that look like hits (another version of the page,
// or anything else that wrote the key, must not stop the page from starting)
function storedPlaylist() {
  let v = null;
  try { v = JSON.parse(localStorage.getItem("talkrec.playlist") || "[]"); } catch (e) { v = null; }
  if (!Array.isArray(v)) return [];
  const seen = new Set();
  return v.filter((h) => h && typeof h === "object" && typeof h.item_id === "string" && h.item_id && !seen.has(h.item_id) && seen.add(h.item_id))
    .map((h) => ({ item_id: h.item_id, name: typeof h.name === "string" ? h.name : h.item_id,
      score: typeof h.score === "number" ? h.score : null, score_kind: typeof h.score_kind === "string" ? h.score_kind : "cosine",
      metadata: h.metadata && typeof h.metadata === "object" && !Array.isArray(h.metadata) ? h.metadata : {} }));
}
async function init() {
  state.playlist = storedPlaylist();
  renderPlaylist();
  try {
    const v = await api("/api/version");
    state.modalities = v.space.modalities || [];
    $("space-info").textContent = `${v.space.name}: ${v.space.items} items · ${state.modalities.join(" + ")}`;
    if (v.space.recommend_strategy) $("user-strategy").options[0].textContent = `the space's (${v.space.recommend_strategy})`;
    const nov = v.space.novelty || {};      // the sliders start at the space's defaults
    [["sim-nov", nov.similar], ["user-nov", nov.recommend]].forEach(([id, x]) => {
      if (typeof x === "number" && x > 0) { $(id).value = String(x); $(`${id}-v`).textContent = $(id).value; }
    });
    const f = await api("/api/facets");
    $("tag-list").innerHTML = f.top_tags.map((t) => `<option value="${esc(t.tag)}">`).join("");
    $("f-decade").innerHTML = `<option value="">any</option>` + f.decades.map((d) => `<option>${esc(d)}</option>`).join("");
    $("f-range-field").innerHTML = `<option value="">-</option>` + f.fields.filter((x) => x.type === "numeric")
      .map((x) => `<option value="${esc(x.name)}">${esc(x.name)} (${fmtNum(x.min)}–${fmtNum(x.max)})</option>`).join("");
  } catch (e) { $("space-info").textContent = e.message; }
  try {   // users with a history: the user picker (a space without interactions has none)
    const u = await api("/api/users?limit=50");
    $("f-user").innerHTML = `<option value="">anyone</option>` + u.users.map((x) => `<option value="${esc(x.user_id)}">${esc(x.user_id)} (${x.n_items} items)</option>`).join("");
    document.querySelectorAll(".needs-users").forEach((el) => (el.hidden = !u.users.length));
  } catch (e) { /* no users: the picker stays hidden */ }
  route();
}
const fmtNum = (x) => (x === null || x === undefined ? "?" : Math.abs(x) >= 1e4 ? x.toExponential(1) : String(Math.round(x * 100) / 100));
init();
