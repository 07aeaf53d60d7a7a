// talkrec web page: vanilla JS, no build step. Talks to the JSON API under /api.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const state = { modalities: [], playlist: [], lastStats: null };

async function api(path, opts = {}) {
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.detail) || `${r.status} ${r.statusText}`);
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
function hitLi(h, i, extra = "") {
  const md = h.metadata || {};
  const tags = (md.tags || md.genres || []).slice(0, 6).map((t) => `<span class="chip">${esc(t)}</span>`).join("");
  return `<li data-id="${esc(h.item_id)}"><span class="rank">${i + 1}</span>
    <span><a class="name" href="#/item/${encodeURIComponent(h.item_id)}">${esc(h.name)}</a> ${extra}</span>
    <span class="score" title="${esc(scoreLabel(h.score_kind))}">${h.score.toFixed(3)}</span>
    <span class="tags">${tags} ${md.modalities ? modChips(md.modalities) : ""}</span></li>`;
}
// hits of one response, each remembering what its score is (a playlist mixes responses)
const withKind = (hits, kind) => hits.map((h) => ({ ...h, score_kind: kind }));
function renderHits(el, hits, withAdd = true) {
  el.innerHTML = hits.map((h, i) => hitLi(h, i, withAdd ? `<button class="add" data-add="${esc(h.item_id)}" title="add to the playlist">+ playlist</button>` : "")).join("")
    || `<li class="muted"><span></span><span>no results</span></li>`;
  el.querySelectorAll("button[data-add]").forEach((b) => b.addEventListener("click", () => {
    const h = hits.find((x) => x.item_id === b.dataset.add);
    addToPlaylist([h]); b.textContent = "added"; b.disabled = true;
  }));
}

// ------------------------------------------------------------------ search as you type
let searchCtl = null;
async function runSearch() {
  const q = $("q").value.trim();
  if (!q) { $("results").innerHTML = ""; $("search-status").textContent = ""; return; }
  if (searchCtl) searchCtl.abort();
  searchCtl = new AbortController();
  const p = filterParams(new URLSearchParams({ q, k: "20" }));
  if ($("mode").value) p.set("mode", $("mode").value);
  try {
    const r = await api(`/api/search?${p}`, { signal: searchCtl.signal });
    renderHits($("results"), withKind(r.items, r.score_kind));
    $("search-status").innerHTML = `${r.items.length} results in ${esc(r.took_ms)} ms ·
      <span data-testid="score-kind">scores: ${esc(scoreLabel(r.score_kind))}</span>`;
    $("search-status").classList.remove("error");
  } catch (e) {
    if (e.name === "AbortError") return;
    $("search-status").textContent = e.message; $("search-status").classList.add("error");
    $("results").innerHTML = "";
  }
}
$("q").addEventListener("input", debounce(runSearch, 120));
$("mode").addEventListener("change", runSearch);

// ------------------------------------------------------------------ item page
async function showItem(id) {
  $("item").innerHTML = `<p class="muted">loading…</p>`; $("similar").innerHTML = "";
  try {
    const it = await api(`/api/items/${encodeURIComponent(id)}`);
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
    const p = filterParams(new URLSearchParams({ k: "12" }));
    const sim = await api(`/api/items/${encodeURIComponent(id)}/similar?${p}`);
    renderHits($("similar"), withKind(sim.items, sim.score_kind));
  } catch (e) {
    $("item").innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

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
$("pl-coh").addEventListener("input", () => ($("pl-coh-v").textContent = $("pl-coh").value));
$("pl-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("pl-notes").textContent = "generating…";
  try {
    const r = await post("/api/playlists/generate", { query: $("pl-query").value, n: Number($("pl-n").value || 15), coherence: Number($("pl-coh").value), filters: filters() });
    state.playlist = withKind(r.items, r.score_kind); state.lastStats = r;
    renderPlaylist();
    $("pl-notes").textContent = `${r.items.length} items in ${r.took_ms} ms`;
  } catch (e) { $("pl-notes").textContent = e.message; }
});
async function continuePlaylist() {
  if (!state.playlist.length) return;
  $("pl-notes").textContent = "continuing…";
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
    $("pl-notes").textContent = `+${r.items.length} items in ${r.took_ms} ms (no duplicates; later items weigh more). ${r.notes.join(" ")}`;
  } catch (e) { $("pl-notes").textContent = e.message; }
}
$("pl-continue").addEventListener("click", continuePlaylist);
$("pl-clear").addEventListener("click", () => { state.playlist = []; state.lastStats = null; renderPlaylist(); });

// ------------------------------------------------------------------ routing + start
function route(refreshOnly = false) {
  const h = location.hash || "#/";
  const m = h.match(/^#\/item\/(.+)$/);
  $("view-search").hidden = !(h === "#/" || h === "#" || h === "");
  $("view-item").hidden = !m;
  $("view-playlist").hidden = h !== "#/playlist";
  if (m) showItem(decodeURIComponent(m[1]));
  else if (!$("view-search").hidden && (refreshOnly || $("q").value)) runSearch();
  else if (!$("view-search").hidden) $("q").focus();
}
window.addEventListener("hashchange", () => route());

async function init() {
  try { state.playlist = JSON.parse(localStorage.getItem("talkrec.playlist") || "[]"); } catch (e) { state.playlist = []; }
  renderPlaylist();
  try {
    const v = await api("/api/version");
    state.modalities = v.space.modalities || [];
    $("space-info").textContent = `${v.space.name}: ${v.space.items} items · ${state.modalities.join(" + ")}`;
    const f = await api("/api/facets");
    $("tag-list").innerHTML = f.top_tags.map((t) => `<option value="${esc(t.tag)}">`).join("");
    $("f-decade").innerHTML = `<option value="">any</option>` + f.decades.map((d) => `<option>${esc(d)}</option>`).join("");
    $("f-range-field").innerHTML = `<option value="">-</option>` + f.fields.filter((x) => x.type === "numeric")
      .map((x) => `<option value="${esc(x.name)}">${esc(x.name)} (${fmtNum(x.min)}–${fmtNum(x.max)})</option>`).join("");
  } catch (e) { $("space-info").textContent = e.message; }
  route();
}
const fmtNum = (x) => (x === null || x === undefined ? "?" : Math.abs(x) >= 1e4 ? x.toExponential(1) : String(Math.round(x * 100) / 100));
init();
