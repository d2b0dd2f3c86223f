// ponder view: the run pages (overview of several runs, one run's totals, plots and problem
// table) and the routing between them. The tree page is in tree.js. Data: one small JSON block
// (#ponder-data); each problem's tree is its own JSON block (#tree-KEY), parsed when opened.
"use strict";
const P = (window.ponder = window.ponder || {});
P.data = JSON.parse(document.getElementById("ponder-data").textContent);
P.trees = {};
P.tree = (key) => {
  if (!(key in P.trees)) {
    const el = document.getElementById("tree-" + key);
    P.trees[key] = el ? JSON.parse(el.textContent) : null;
  }
  return P.trees[key];
};

P.esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
P.fmt = (v, digits = 3) => {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(digits);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
};
P.go = (params) => { location.hash = new URLSearchParams(params).toString(); };
P.link = (params) => "#" + new URLSearchParams(params).toString();

// -- SVG plots -----------------------------------------------------------------------------
const SVGNS = "http://www.w3.org/2000/svg";
// Axis ticks are "nice" numbers (1, 2 or 5 times a power of ten), distinct, and never -0; an
// integer axis (counts, tokens) steps by whole numbers.
P.niceStep = (span, n, integer = false) => {
  const raw = span / Math.max(1, n);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9));
  return integer ? Math.max(1, Math.round(step)) : step;
};
P.axis = (lo, hi, n = 5, integer = false) => {  // {ticks, step}: the nice numbers in [lo, hi]
  if (!(hi > lo)) return { ticks: [lo + 0], step: 1 };
  const step = P.niceStep(hi - lo, n, integer), ticks = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(+(k * step).toPrecision(12) + 0);
  return { ticks, step };
};
P.tickLabel = (t, step) => {  // as many decimals as the step needs, no more
  const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
  const v = Math.abs(t) < (step || 1) * 1e-9 ? 0 : t;
  return decimals ? v.toFixed(decimals) : Math.round(v).toLocaleString("en");
};
P.histBins = (values) => {
  // {start, width, counts}: one bar per value for a single value or a few integers, else bins of a
  // nice width starting on a multiple of it (the last bin holds its right edge).
  const lo = Math.min(...values), hi = Math.max(...values), integer = values.every(Number.isInteger);
  let start, width, bins;
  if (lo === hi) [start, width, bins] = [lo - 0.5, 1, 1];
  else if (integer && hi - lo < 20) [start, width, bins] = [lo - 0.5, 1, hi - lo + 1];
  else {
    width = P.niceStep(hi - lo, Math.min(20, Math.max(5, Math.ceil(Math.sqrt(values.length)))), integer);
    start = Math.floor(lo / width) * width;
    bins = Math.max(1, Math.ceil((hi - start) / width - 1e-9));
  }
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.max(0, Math.min(bins - 1, Math.floor((v - start) / width)))]++;
  return { start, width, counts, centred: lo === hi || (integer && hi - lo < 20), lo, hi, integer };
};
P.histogram = (values, title, xlabel) => {
  const W = 340, H = 192, L = 40, B = 36, T = 20, R = 26;  // R: room for a last tick's label
  values = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  let svg = `<svg class="plot" width="${W}" height="${H}" xmlns="${SVGNS}"><text class="title" x="${L}" y="13">${P.esc(title)}</text>`;
  if (!values.length) return svg + `<text x="${L}" y="${H / 2}">no data</text></svg>`;
  const { start, width, counts, centred, lo, hi, integer } = P.histBins(values), bins = counts.length;
  const cmax = Math.max(...counts), pw = W - L - R, ph = H - T - B;
  const X = (v) => L + ((v - start) / (bins * width)) * pw;
  counts.forEach((c, i) => {
    const h = (c / cmax) * ph, bw = pw / bins, gap = bins === 1 ? pw / 3 : 1;
    svg += `<rect class="bar" x="${L + i * bw + gap}" y="${T + ph - h}" width="${Math.max(1, bw - 2 * gap)}" height="${h}"><title>${c}</title></rect>`;
  });
  svg += `<line class="axis" x1="${L}" y1="${T + ph}" x2="${W - R}" y2="${T + ph}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}"/>`;
  const xtick = (v, text) => `<text class="tick x" x="${X(v)}" y="${T + ph + 15}" text-anchor="middle">${text}</text><line class="axis" x1="${X(v)}" y1="${T + ph}" x2="${X(v)}" y2="${T + ph + 3}"/>`;
  if (lo === hi) svg += xtick(lo, (+lo.toPrecision(6) + 0).toLocaleString("en", { maximumSignificantDigits: 6 }));
  else {  // bars of single integers: ticks on bar centres; bins: ticks on the axis, bin edges included
    const { ticks, step } = centred ? P.axis(lo, hi, 5, true) : P.axis(start, start + bins * width, 5, integer);
    for (const t of ticks) svg += xtick(t, P.tickLabel(t, step));
  }
  const { ticks: yticks, step: ystep } = P.axis(0, cmax, 3, true);
  for (const t of yticks) svg += `<text class="tick y" x="${L - 4}" y="${T + ph - (t / cmax) * ph + 4}" text-anchor="end">${P.tickLabel(t, ystep)}</text>`;
  return svg + `<text x="${L + pw / 2}" y="${H - 3}" text-anchor="middle">${P.esc(xlabel)}</text></svg>`;
};
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
P.scatter = (points, title, xlabel, ylabel) => {
  // points: {x, y, group, label, href}; one colour and one line per group, sorted by x.
  const W = 560, H = 300, L = 48, B = 36, T = 22, R = 150;
  let svg = `<svg class="plot" width="${W}" height="${H}" xmlns="${SVGNS}"><text class="title" x="${L}" y="14">${P.esc(title)}</text>`;
  points = points.filter((p) => typeof p.x === "number" && typeof p.y === "number");
  if (!points.length) return svg + `<text x="${L}" y="${H / 2}">no data</text></svg>`;
  const xmax = Math.max(...points.map((p) => p.x)) * 1.05 || 1, pw = W - L - R, ph = H - T - B;
  const X = (x) => L + (x / xmax) * pw, Y = (y) => T + ph - y * ph;
  const { ticks: xticks, step: xstep } = P.axis(0, xmax, 5);
  for (const t of xticks) svg += `<text class="tick x" x="${X(t)}" y="${T + ph + 13}" text-anchor="middle">${P.tickLabel(t, xstep)}</text><line class="axis" x1="${X(t)}" y1="${T + ph}" x2="${X(t)}" y2="${T + ph + 3}"/>`;
  for (const t of [0, 0.25, 0.5, 0.75, 1]) svg += `<text x="${L - 5}" y="${Y(t) + 4}" text-anchor="end">${t}</text><line x1="${L}" y1="${Y(t)}" x2="${L + pw}" y2="${Y(t)}" stroke="#eee"/>`;
  svg += `<line class="axis" x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}"/>`;
  const groups = [...new Set(points.map((p) => p.group))];
  groups.forEach((g, gi) => {
    const col = PALETTE[gi % PALETTE.length], pts = points.filter((p) => p.group === g).sort((a, b) => a.x - b.x);
    if (pts.length > 1) svg += `<polyline fill="none" stroke="${col}" stroke-width="1.5" points="${pts.map((p) => X(p.x) + "," + Y(p.y)).join(" ")}"/>`;
    for (const p of pts) svg += `<a href="${p.href || "#"}"><circle cx="${X(p.x)}" cy="${Y(p.y)}" r="5" fill="${col}"><title>${P.esc(p.label)}: accuracy ${P.fmt(p.y)}, ${P.fmt(p.x, 1)} tokens</title></circle></a>`;
    svg += `<circle cx="${L + pw + 16}" cy="${T + 8 + gi * 17}" r="5" fill="${col}"/><text x="${L + pw + 26}" y="${T + 12 + gi * 17}">${P.esc(g)}</text>`;
  });
  svg += `<text x="${L + pw / 2}" y="${H - 3}" text-anchor="middle">${P.esc(xlabel)}</text>`;
  return svg + `<text transform="translate(11 ${T + ph / 2}) rotate(-90)" text-anchor="middle">${P.esc(ylabel)}</text></svg>`;
};

// -- pages ---------------------------------------------------------------------------------
function card(k, v, extra = "") { return `<div class="card"><div class="k">${P.esc(k)}</div><div class="v">${v}${extra}</div></div>`; }
function header(crumbs, title) {
  return `<header><span class="crumbs">${crumbs.map(([t, href]) => `<a href="${href}">${P.esc(t)}</a> /`).join(" ")}</span><h1>${P.esc(title)}</h1></header>`;
}
P.header = header;

function overview() {
  const runs = P.data.runs;
  const rows = runs.map((r) => `<tr data-run="${r.index}"><td>${P.esc(r.label)}</td><td>${P.esc(r.algorithm)}</td><td>${P.esc(r.mode)}</td>
    <td class="num">${P.fmt(r.totals.problems)}</td><td class="num">${P.fmt(r.totals.accuracy)}</td><td class="num">${P.fmt(r.totals.errors)}</td>
    <td class="num">${P.fmt(r.totals.tokens_per_problem, 1)}</td><td class="num">${P.fmt(r.totals.calls)}</td></tr>`).join("");
  const points = runs.map((r) => ({ x: r.totals.tokens_per_problem, y: r.totals.accuracy, group: r.algorithm || "?", label: r.label, href: P.link({ run: r.index }) }));
  return header([], `${P.data.title}: ${runs.length} runs`) + `<main>
    <div class="plots">${P.scatter(points, "accuracy vs generated tokens per problem", "generated tokens per problem (mean)", "accuracy")}</div>
    <table class="grid" id="runs"><thead><tr><th>run</th><th>algorithm</th><th>mode</th><th class="num">problems</th><th class="num">accuracy</th>
    <th class="num">errored</th><th class="num">tokens / problem</th><th class="num">calls</th></tr></thead><tbody>${rows}</tbody></table></main>`;
}

const COLUMNS = [
  ["id", "id"], ["answer", "answer"], ["gold", "gold"], ["verdict", "verdict"], ["tokens", "tokens", true], ["calls", "calls", true],
  ["nodes", "nodes", true], ["path_depth", "depth", true], ["budget_exhausted", "budget exhausted"], ["labels", "labels", true], ["wall", "wall s", true],
];
function runPage(run) {
  const t = run.totals, crumbs = P.data.runs.length > 1 ? [[P.data.title, "#"]] : [];
  const acc = t.accuracy === null ? "—" : (100 * t.accuracy).toFixed(1) + "%";
  const cards = card("accuracy", acc, ` <small>${t.errors} errored</small>`) + card("problems", P.fmt(t.problems)) +
    card("generated tokens", P.fmt(t.generated_tokens), ` <small>${P.fmt(t.tokens_per_problem, 1)} / problem</small>`) +
    card("prompt tokens", P.fmt(t.prompt_tokens), ` <small>cached ${t.cached_share === null ? "—" : (100 * t.cached_share).toFixed(0) + "%"}</small>`) +
    card("reward tokens", P.fmt(t.reward_tokens)) + card("calls", P.fmt(t.calls)) +
    card("wall (s)", P.fmt(t.wall_seconds_max, 1), ` <small>longest problem; sum ${P.fmt(t.wall_seconds_sum, 1)}</small>`) +
    card("budget exhausted", P.fmt(t.budget_exhausted)) +
    ("labels" in t ? card("labels", P.fmt(t.labels), ` <small>rollout tokens ${P.fmt(t.label_rollout_tokens)}</small>`) : "");
  const cols = COLUMNS.filter(([k]) => (k !== "gold" || run.gold_shown) && (k !== "labels" || "labels" in t));
  const head = cols.map(([k, name, num]) => `<th data-key="${k}" class="${num ? "num" : ""}">${P.esc(name)}</th>`).join("");
  const notes = run.notes.length ? `<p class="notes">${run.notes.map(P.esc).join("<br>")}</p>` : "";
  const events = run.events.length ? `<details><summary>${run.events.length} engine events</summary><pre class="config">${P.esc(run.events.map((e) => JSON.stringify(e)).join("\n"))}</pre></details>` : "";
  const html = header(crumbs, `${run.name} (${run.algorithm || "?"}, ${run.mode})`) + `<main>
    <div class="muted">${P.esc(run.path)}</div><div class="cards">${cards}</div>${notes}
    <div class="plots">${P.histogram(run.problems.map((p) => p.tokens), "generated tokens per problem", "tokens")}
      ${P.histogram(run.problems.map((p) => p.path_depth), "depth of the chosen node", "steps")}
      ${P.histogram(run.problems.map((p) => p.max_depth), "tree depth", "steps")}</div>
    <details><summary>config</summary><pre class="config">${P.esc(JSON.stringify(run.config, null, 2))}</pre></details>${events}
    <div class="controls" id="filters">show
      ${["all", "correct", "incorrect", "errored"].map((f) => `<button data-filter="${f}">${f} (<span>${f === "all" ? run.problems.length : run.problems.filter((p) => p.verdict === f).length}</span>)</button>`).join("")}
      <input id="search" type="search" placeholder="filter id / answer"> <span class="muted" id="shown"></span></div>
    <table class="grid" id="problems"><thead><tr>${head}</tr></thead><tbody></tbody></table></main>`;
  document.getElementById("app").innerHTML = html;
  const state = P.runState[run.index] || (P.runState[run.index] = { filter: "all", sort: null, desc: false, q: "" });
  const tbody = document.querySelector("#problems tbody");
  const draw = () => {
    const q = state.q.toLowerCase();
    let rows = run.problems.filter((p) => (state.filter === "all" || p.verdict === state.filter) &&
      (!q || p.id.toLowerCase().includes(q) || String(p.answer ?? "").toLowerCase().includes(q)));
    if (state.sort) {
      const k = state.sort, s = state.desc ? -1 : 1;
      rows = rows.slice().sort((a, b) => (a[k] ?? -Infinity) > (b[k] ?? -Infinity) ? s : (a[k] ?? -Infinity) < (b[k] ?? -Infinity) ? -s : 0);
    }
    tbody.innerHTML = rows.map((p) => `<tr data-id="${P.esc(p.id)}" class="row-${p.verdict}">${cols.map(([k, , num]) => {
      let v = p[k];
      if (k === "verdict") return `<td class="v-${p.verdict}" title="${P.esc(p.error || p.status)}">${P.esc(p.verdict)}${p.status !== p.verdict && p.verdict !== "errored" ? ` <span class="muted">${P.esc(p.status)}</span>` : ""}</td>`;
      if (k === "budget_exhausted") v = v ? "yes" : "";
      return `<td class="${num ? "num" : "wrap"}">${P.esc(v === null || v === undefined ? "" : typeof v === "number" ? P.fmt(v, 1) : v)}</td>`;
    }).join("")}</tr>`).join("");
    document.getElementById("shown").textContent = `${rows.length} of ${run.problems.length} shown`;
    document.querySelectorAll("#filters button").forEach((b) => b.classList.toggle("on", b.dataset.filter === state.filter));
    document.querySelectorAll("#problems th").forEach((th) => { th.classList.toggle("sorted", th.dataset.key === state.sort); th.classList.toggle("desc", state.desc); });
  };
  document.getElementById("filters").addEventListener("click", (e) => { const b = e.target.closest("button"); if (b) { state.filter = b.dataset.filter; draw(); } });
  const search = document.getElementById("search");
  search.value = state.q;
  search.addEventListener("input", () => { state.q = search.value; draw(); });
  document.querySelector("#problems thead").addEventListener("click", (e) => {
    const th = e.target.closest("th"); if (!th) return;
    if (state.sort === th.dataset.key) state.desc = !state.desc; else { state.sort = th.dataset.key; state.desc = false; }
    draw();
  });
  tbody.addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) P.go({ run: run.index, p: tr.dataset.id }); });
  draw();
}
P.runState = {};

function route() {
  const q = new URLSearchParams(location.hash.slice(1));
  const runs = P.data.runs, app = document.getElementById("app");
  const run = runs[+(q.get("run") ?? (runs.length === 1 ? 0 : -1))];
  if (!run) { app.innerHTML = overview(); app.querySelector("#runs tbody").addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) P.go({ run: tr.dataset.run }); }); }
  else if (q.has("p")) P.treePage(run, q.get("p"), q.has("node") ? +q.get("node") : null);
  else runPage(run);
  document.title = `ponder view: ${P.data.title}`;
  if (window.ponderReadyAt === undefined) window.ponderReadyAt = performance.now();
}
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  if (!location.hash && P.data.start) location.hash = new URLSearchParams(P.data.start).toString();
  else route();
});
