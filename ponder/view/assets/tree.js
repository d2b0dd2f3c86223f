// ponder view: the tree page of one problem. A tidy horizontal layout (depth left to right),
// collapsible subtrees, pan (drag, scroll) and zoom (ctrl+wheel, buttons), the chosen path
// highlighted, nodes coloured by a chosen metric (Q, any score, first value, prior, labels, any
// numeric field) and sized by visits; a click shows the node's fields, labels and the path from
// the root. "fit" never shrinks labels below MIN_LABEL_PX: a tree too big for its panel at that
// size is fitted to the width where it can be and scrolled; zoomed out further (the "whole tree"
// button, ctrl+wheel, −), labels under HIDE_LABEL_PX are hidden and show on hover.
"use strict";
(function () {
  const P = window.ponder;
  const KNOWN = new Set(["id", "parent", "depth", "text", "finish_reason", "logprob_sum", "logprob_mean", "visits",
    "value_sum", "first_value", "terminal", "answer", "error", "end", "state"]);
  const KINDS = new Set(["kind", "role", "type"]);  // node-kind fields, shown as tags
  const DX = 210, DY = 22;  // layout units: a depth column, a leaf row
  const FONT_PX = 11, MIN_LABEL_PX = 10, HIDE_LABEL_PX = 7;  // label size at scale 1 (view.css), at "fit", hidden under
  const LABEL_W = 230, LEFT = 40;  // layout units right of the deepest column (its labels) and left of the root
  P.treeState = {};

  function derive(t) {
    if (t._d) return t._d;
    const n = t.n, c = t.cols, parent = c.parent || new Array(n).fill(null), kids = Array.from({ length: n }, () => []);
    for (let i = 0; i < n; i++) if (parent[i] !== null && parent[i] !== undefined) kids[parent[i]].push(i);
    const chosen = new Set(t.path), col = (k) => c[k] || new Array(n).fill(null);
    const visits = col("visits"), vsum = col("value_sum"), lpm = col("logprob_mean");
    const metrics = [];
    const add = (key, name, values) => { if (values.some((v) => typeof v === "number")) metrics.push({ key, name, values }); };
    if (visits.some((v) => v > 1)) add("q", "Q (mean backed-up value)", visits.map((v, i) => (v > 0 ? vsum[i] / v : null)));
    const order = ["prm", "value", "self_eval", "verifier", "rollout"];
    Object.keys(t.scores).sort((a, b) => (order.indexOf(a) + 99) % 99 - (order.indexOf(b) + 99) % 99 || a.localeCompare(b))
      .forEach((k) => add("score:" + k, "score: " + k, t.scores[k]));
    add("first_value", "first value", col("first_value"));
    add("prior", "prior exp(mean logprob)", lpm.map((v, i) => (parent[i] === null || v === null ? null : Math.exp(v))));
    const gens = new Set();
    Object.values(t.labels).forEach((ls) => ls.forEach((l) => gens.add(l.generator)));
    const labelOf = (g) => t.labels && Array.from({ length: n }, (_, i) => {
      const ls = (t.labels[i] || []).filter((l) => l.generator === g && typeof l.value === "number");
      return ls.length ? ls.reduce((s, l) => s + l.value, 0) / ls.length : null;
    });
    gens.forEach((g) => add("label:" + g, "label: " + g, labelOf(g)));
    for (const [k, vals] of Object.entries(c)) {
      if (!KNOWN.has(k) && vals.every((v) => v === null || typeof v === "number")) add("field:" + k, k, vals);
    }
    add("visits", "visits", visits);
    // first errors: a node with a hard False label whose ancestors have none
    const isFalse = (i) => (t.labels[i] || []).some((l) => l.label === false);
    const firstError = new Set();
    const stack = [[0, false]];
    while (stack.length) {
      const [i, seen] = stack.pop();
      const bad = isFalse(i);
      if (bad && !seen) firstError.add(i);
      kids[i].forEach((k) => stack.push([k, seen || bad]));
    }
    const size = new Array(n).fill(1);
    for (let i = n - 1; i > 0; i--) if (parent[i] !== null) size[parent[i]] += size[i];
    return (t._d = { kids, parent, chosen, metrics, firstError, size, visits });
  }

  function defaultCollapsed(t, d) {
    const out = new Set();
    if (t.n <= 400) return out;
    const depth = t.cols.depth || [];
    for (let i = 1; i < t.n; i++) if (depth[i] >= 3 && !d.chosen.has(i) && d.kids[i].length) out.add(i);
    return out;
  }

  function colourOf(m) {
    const vals = m.values.filter((v) => typeof v === "number");
    let lo = Math.min(...vals), hi = Math.max(...vals);
    const unit = lo >= 0 && hi <= 1;
    if (unit) { lo = 0; hi = 1; }
    const f = (v) => (typeof v !== "number" ? "#c8c8c8" : `hsl(${Math.round(120 * ((v - lo) / (hi - lo || 1)))},70%,47%)`);
    return { f, lo, hi };
  }

  function layout(t, d, collapsed) {
    const pos = new Map();
    let next = 0;
    const place = (i, depth) => {
      const ks = collapsed.has(i) ? [] : d.kids[i];
      if (!ks.length) { pos.set(i, [depth * DX, next++ * DY]); return; }
      ks.forEach((k) => place(k, depth + 1));
      pos.set(i, [depth * DX, (pos.get(ks[0])[1] + pos.get(ks[ks.length - 1])[1]) / 2]);
    };
    place(0, 0);
    return pos;
  }

  function goalOf(state) {  // a proof state's goal: the line after the ===== rule, else its last line
    const lines = String(state).split("\n").map((l) => l.trim()).filter(Boolean);
    const rule = lines.findIndex((l) => /^=+$/.test(l));
    return rule >= 0 && rule + 1 < lines.length ? lines[rule + 1] : lines[lines.length - 1] || "no goals";
  }

  function nodeLine(t, i) {
    // What a node says, as [tag, text]: its step text; a node without one (the root, a prover
    // attempt started from the theorem) shows the question or the goal it starts from.
    const c = t.cols, text = c.text ? c.text[i] : "", state = c.state ? c.state[i] : null;
    if (text && String(text).trim()) return ["", text];
    if (typeof state === "string") return ["⊢ ", goalOf(state)];
    return ["", i === 0 ? t.question : "(empty)"];
  }
  const nodeText = (t, i) => nodeLine(t, i).join("");

  function snippet(s, w) { s = String(s || "").replace(/\s+/g, " ").trim(); return s.length > w ? s.slice(0, w - 1) + "…" : s; }

  function drawTree(t, st) {
    const d = derive(t), pos = layout(t, d, st.collapsed), m = d.metrics.find((x) => x.key === st.metric);
    const colour = m ? colourOf(m) : { f: () => "#c8c8c8" };
    const text = t.cols.text || [];
    let edges = "", nodes = "";
    const radius = (i) => Math.min(13, 4 + 2 * Math.log2(1 + (d.visits[i] || 0)));
    const labelOf = (i) => { const [tag, line] = nodeLine(t, i); return `${i === 0 ? "root" : "#" + i}${d.visits[i] ? " n=" + d.visits[i] : ""} ${tag}${snippet(line, 22)}`; };
    for (const [i, [x, y]] of pos) {
      const p = d.parent[i];
      if (p !== null && pos.has(p)) {  // an edge runs under its parent's label (drawn above the line), then curves to the child
        const [px0, py] = pos.get(p), px = px0 + Math.min(DX - 24, radius(p) + 12 + 5.6 * labelOf(p).length), mx = (px + x) / 2;
        edges += `<path class="edge${d.chosen.has(i) ? " chosen" : ""}" d="M${px0 + radius(p)},${py}H${px}C${mx},${py} ${mx},${y} ${x},${y}"/>`;
      }
      const v = d.visits[i] || 0, r = radius(i);
      const cls = ["node", d.chosen.has(i) ? "chosen" : "", t.cols.error && t.cols.error[i] ? "err" : "", st.selected === i ? "selected" : ""].join(" ");
      let extra = "";
      if (st.collapsed.has(i) && d.kids[i].length) extra += `<text class="badge" x="${-r - 3}" y="-${r + 2}" text-anchor="end">+${d.size[i] - 1}</text>`;
      if (t.labels[i]) {
        const lv = t.labels[i].find((l) => typeof l.value === "number");
        extra += `<rect class="lab" x="${r - 3}" y="${r - 3}" width="7" height="7" fill="${lv ? `hsl(${Math.round(120 * Math.max(0, Math.min(1, lv.value)))},70%,47%)` : "#ddd"}"/>`;
      }
      if (d.firstError.has(i)) extra += `<text class="ferr" x="${-r - 12}" y="5">✗</text>`;
      const label = labelOf(i);
      nodes += `<g class="${cls}" data-id="${i}" transform="translate(${x},${y})"><circle r="${r}" fill="${colour.f(m ? m.values[i] : null)}"/>${extra}<text x="${r + 7}" y="${st.collapsed.has(i) || !d.kids[i].length ? 4 : -4}">${P.esc(label)}</text><title>${P.esc(label)}${t.cols.attempt && t.cols.attempt[i] ? " · attempt: " + P.esc(t.cols.attempt[i]) : ""}</title></g>`;
    }
    return { svg: edges + nodes, pos, colour, m };
  }

  // The drawing's extent in layout units: the nodes, a row's height (DY) above and below them (the
  // labels drawn above a node, its circle), the root's left margin and the last column's labels.
  function extent(pos) {
    const ps = [...pos.values()], ys = ps.map((p) => p[1]);
    return { x0: -LEFT, x1: Math.max(...ps.map((p) => p[0])) + LABEL_W, y0: Math.min(...ys) - DY, y1: Math.max(...ys) + DY };
  }

  // The view transform {k, x, y} that shows the laid-out tree `pos` in a W x H panel: the whole
  // tree, centred, when that keeps labels at MIN_LABEL_PX or more (or `whole` asks for it); else
  // the readable scale that fits the width (at least MIN_LABEL_PX), the root's side in view and
  // the `selected` node kept on screen, the rest reached by scrolling.
  P.fitView = (pos, selected, W, H, whole = false) => {
    const { x0, x1, y0, y1 } = extent(pos);
    const w = x1 - x0, h = y1 - y0, kmin = MIN_LABEL_PX / FONT_PX;
    let k = Math.min(1.4, W / w, H / h);
    if (k < kmin && !whole) k = Math.max(kmin, Math.min(1, W / w));
    else if (k * FONT_PX < HIDE_LABEL_PX) k = Math.max(0.02, Math.min(H / h, (W - LABEL_W) / (w - LABEL_W)));  // hover labels: full size
    const at = pos.get(selected) || pos.get(0);
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    const y = h * k <= H ? (H - h * k) / 2 - y0 * k : clamp(H / 2 - at[1] * k, H - y1 * k, -y0 * k);
    const x = w * k <= W ? -x0 * k : Math.min(-x0 * k, W - (at[0] + LABEL_W) * k);
    return { k, x, y };
  };

  function kvRow(k, v) { return `<tr><td>${P.esc(k)}</td><td>${v}</td></tr>`; }
  function spark(vals) {
    const nums = vals.filter((v) => typeof v === "number");
    if (nums.length < 2) return "";
    const lo = Math.min(...nums), hi = Math.max(...nums), W = 160, H = 30;
    const pts = nums.map((v, i) => `${(i / (nums.length - 1)) * W},${H - ((v - lo) / (hi - lo || 1)) * H}`).join(" ");
    return `<br><svg width="${W}" height="${H + 2}"><polyline fill="none" stroke="#1f6feb" points="${pts}"/></svg>`;
  }

  function details(t, i, st) {
    const d = derive(t), c = t.cols, get = (k) => (c[k] ? c[k][i] : null);
    const tags = [d.chosen.has(i) ? `<span class="tag chosen">chosen path</span>` : "", get("terminal") ? `<span class="tag">terminal</span>` : "",
      get("end") ? `<span class="tag">end-gated</span>` : "", get("error") ? `<span class="tag err">error</span>` : "",
      ...Object.keys(c).filter((k) => KINDS.has(k.split(".").pop()) && typeof get(k) === "string").map((k) => `<span class="tag" title="${P.esc(k)}">${P.esc(get(k))}</span>`)].join("");
    const v = get("visits") || 0, lpm = get("logprob_mean");
    let kv = kvRow("tokens", P.fmt(t.tokens[i])) + kvRow("finish reason", P.esc(P.fmt(get("finish_reason")))) +
      kvRow("prior exp(mean logprob)", i && lpm !== null ? P.fmt(Math.exp(lpm)) : "—") + kvRow("logprob mean / sum", `${P.fmt(lpm)} / ${P.fmt(get("logprob_sum"))}`) +
      kvRow("visits", P.fmt(v)) + kvRow("Q = W / N", v ? P.fmt(get("value_sum") / v) : "—") + kvRow("value sum W", P.fmt(get("value_sum"))) +
      kvRow("first value", P.fmt(get("first_value")));
    for (const [k, vals] of Object.entries(t.scores)) kv += kvRow("score: " + k, `<b>${P.fmt(vals[i])}</b>`);
    if (get("answer") !== null && get("answer") !== undefined) kv += kvRow("answer", P.esc(get("answer")));
    if (get("error")) kv += kvRow("error", P.esc(get("error")));
    for (const [k, vals] of Object.entries(c)) {
      if (KNOWN.has(k) || vals[i] === null || vals[i] === undefined) continue;
      const val = vals[i];
      const numeric = Array.isArray(val) && val.every((x) => typeof x === "number");
      kv += kvRow(k, numeric ? P.esc(JSON.stringify(val)) + spark(val)
        : typeof val === "object" ? `<pre>${P.esc(JSON.stringify(val, null, 1))}</pre>` : typeof val === "string" && val.length > 60 ? `<pre>${P.esc(val)}</pre>` : P.esc(P.fmt(val)));
    }
    kv += kvRow("children / subtree", `${d.kids[i].length} / ${d.size[i] - 1}`);
    const labels = t.labels[i] || [];
    const labelHtml = labels.length ? `<h3>labels (${labels.length})</h3><table class="kv">${labels.map((l) =>
      kvRow(`${l.generator} · ${l.mode}`, `value <b>${P.fmt(l.value)}</b>, label <b>${P.fmt(l.label)}</b>${l.rollouts ? `, ${l.correct}/${l.rollouts} rollouts correct` : ""}` +
        (l.convention ? `<br><span class="muted">${P.esc(l.convention)}</span>` : "") + (l.extra ? `<br><span class="muted">${P.esc(JSON.stringify(l.extra))}</span>` : ""))).join("")}</table>` : "";
    const path = [];
    for (let j = i; j !== null && j !== undefined; j = d.parent[j]) path.unshift(j);
    const fe = path.find((j) => d.firstError.has(j));
    const ferr = Object.keys(t.labels).length ? `<p>${fe === undefined ? "no step on this path is labelled wrong" : `first error on this path: step ${path.indexOf(fe)} (#${fe})`}</p>` : "";
    const steps = path.slice(1).map((j, s) => `<div class="ps${d.chosen.has(j) ? " chosen" : ""}${j === i ? " here" : ""}" data-id="${j}"><span class="muted">step ${s + 1} · #${j}${d.firstError.has(j) ? " · ✗ first error" : ""}</span><pre>${P.esc(nodeText(t, j))}</pre></div>`).join("");
    return `<h2>#${i} · depth ${P.fmt(get("depth"))} ${tags}</h2>
      ${i === 0 ? `<p class="muted">the root: the problem${c.state ? " (the theorem)" : ""}</p><pre class="step" id="root-text">${P.esc(t.question)}</pre>`
        : get("text") ? `<pre class="step" id="step-text">${P.esc(get("text"))}</pre>`
        : `<p class="muted" id="step-text">no step text${get("attempt") ? ": this attempt starts from the theorem's goal, no tactics before it" : ""}</p>`}
      ${typeof get("state") === "string" ? `<h3>${get("attempt") ? "goal this attempt starts from" : "proof state after this step"}</h3><pre class="step" id="state-text">${P.esc(get("state") || "no goals")}</pre>` : ""}
      <table class="kv" id="node-fields">${kv}</table>${labelHtml}
      <div class="controls"><button id="toggle">${st.collapsed.has(i) ? "expand" : "collapse"} subtree</button></div>
      <h3>path from the root (${path.length - 1} step${path.length === 2 ? "" : "s"})</h3>${ferr}<div class="pathsteps" id="path-text">${steps || `<span class="muted">(root)</span>`}</div>`;
  }

  P.treePage = (run, pid, nodeId) => {
    const app = document.getElementById("app");
    const prob = run.problems.find((p) => p.id === pid);
    const crumbs = [...(P.data.runs.length > 1 ? [[P.data.title, "#"]] : []), [run.name, P.link({ run: run.index })]];
    const t = prob && prob.tree ? P.tree(prob.tree) : null;
    if (!t) { app.innerHTML = P.header(crumbs, pid) + `<main><p class="notes">${prob ? "no trace for this problem" + (prob.error ? ": " + P.esc(prob.error) : "") : "no such problem"}</p></main>`; return; }
    const d = derive(t);
    const st = P.treeState[prob.tree] || (P.treeState[prob.tree] = { collapsed: defaultCollapsed(t, d), selected: d.chosen.size ? t.path[t.path.length - 1] : 0, metric: d.metrics.length ? d.metrics[0].key : null, tf: null });
    if (nodeId !== null && nodeId >= 0 && nodeId < t.n) st.selected = nodeId;
    const gold = "gold" in prob ? ` · gold <b>${P.esc(prob.gold)}</b>` : "";
    app.innerHTML = P.header(crumbs, `${pid}: ${prob.verdict}`) + `<div class="treepage"><div class="canvas" id="canvas">
      <div class="controls bar"><span>colour by</span><select id="metric">${d.metrics.map((m) => `<option value="${m.key}"${m.key === st.metric ? " selected" : ""}>${P.esc(m.name)}</option>`).join("")}</select>
        <button id="fit" title="fit the tree to the panel at readable label size (scroll for the rest)">fit</button><button id="whole" title="the whole tree in the panel (small labels hidden: hover a node)">whole tree</button><button id="zin">+</button><button id="zout">−</button><button id="expand">expand all</button><button id="offpath">collapse off-path</button>
        <span class="muted hint">${t.n} nodes · drag or scroll to pan, ctrl+wheel to zoom, double-click a node to fold it</span></div>
      <svg id="tree" xmlns="http://www.w3.org/2000/svg"><g id="vp"></g></svg><div class="legend" id="legend"></div></div>
      <div class="side"><div class="question"><b>question</b><pre>${P.esc(t.question)}</pre>
        <p>answer <b class="answer">${P.esc(P.fmt(t.answer))}</b>${gold} · <span class="v-${prob.verdict}">${P.esc(prob.status)}</span> · ${P.esc(t.algorithm)} · ${P.fmt(prob.tokens)} tokens · ${P.fmt(prob.calls)} calls${prob.budget_exhausted ? " · budget exhausted" : ""}</p>
        <details><summary>usage, search config, extra</summary><pre class="config">${P.esc(JSON.stringify({ usage: t.usage, config: t.config, extra: t.extra }, null, 2))}</pre></details>
        ${t.loose_labels.length ? `<details><summary>${t.loose_labels.length} labels of states off the tree</summary><pre class="config">${P.esc(t.loose_labels.map((l) => JSON.stringify(l)).join("\n"))}</pre></details>` : ""}</div>
        <div id="detail"></div></div></div>`;
    const svg = document.getElementById("tree"), vp = document.getElementById("vp");
    let drawn;
    const apply = () => {
      vp.setAttribute("transform", `translate(${st.tf.x},${st.tf.y}) scale(${st.tf.k})`);
      svg.classList.toggle("tiny", st.tf.k * FONT_PX < HIDE_LABEL_PX);
      svg.style.setProperty("--unzoom", String(1 / st.tf.k));  // a hovered label at its full size
    };
    const fit = (whole = false) => { st.tf = P.fitView(drawn.pos, st.selected, svg.clientWidth || 800, svg.clientHeight || 600, whole); apply(); };
    const render = () => {
      drawn = drawTree(t, st);
      vp.innerHTML = drawn.svg;
      const m = drawn.m;
      document.getElementById("legend").innerHTML = m ? `<span style="color:hsl(0,70%,47%)">●</span> ${P.fmt(drawn.colour.lo)} … <span style="color:hsl(120,70%,47%)">●</span> ${P.fmt(drawn.colour.hi)} ${P.esc(m.name)} · grey: none · size: visits · blue: chosen path${Object.keys(t.labels).length ? " · ■ label value · ✗ first error" : ""}` : "";
    };
    const select = (i) => {
      st.selected = i;
      vp.querySelectorAll("g.node.selected").forEach((g) => g.classList.remove("selected"));
      const g = vp.querySelector(`g.node[data-id="${i}"]`);
      if (g) g.classList.add("selected");
      document.getElementById("detail").innerHTML = details(t, i, st);
      history.replaceState(null, "", P.link({ run: run.index, p: pid, node: i }));
    };
    const toggle = (i) => { if (st.collapsed.has(i)) st.collapsed.delete(i); else if (d.kids[i].length) st.collapsed.add(i); render(); select(st.selected); };
    render();
    if (st.tf) apply(); else fit();
    select(st.selected);
    document.getElementById("metric").addEventListener("change", (e) => { st.metric = e.target.value; render(); select(st.selected); });
    document.getElementById("fit").addEventListener("click", () => fit());
    document.getElementById("whole").addEventListener("click", () => fit(true));
    const zoom = (f, cx, cy) => { const k = Math.max(0.02, Math.min(6, st.tf.k * f)); st.tf.x = cx - ((cx - st.tf.x) * k) / st.tf.k; st.tf.y = cy - ((cy - st.tf.y) * k) / st.tf.k; st.tf.k = k; apply(); };
    const focus = () => {  // the selected node on screen, else the middle
      const at = drawn.pos.get(st.selected), W = svg.clientWidth, H = svg.clientHeight;
      const x = at ? st.tf.x + at[0] * st.tf.k : W / 2, y = at ? st.tf.y + at[1] * st.tf.k : H / 2;
      return x >= 0 && x <= W && y >= 0 && y <= H ? [x, y] : [W / 2, H / 2];
    };
    document.getElementById("zin").addEventListener("click", () => zoom(1.25, ...focus()));
    document.getElementById("zout").addEventListener("click", () => zoom(0.8, ...focus()));
    document.getElementById("expand").addEventListener("click", () => { st.collapsed = new Set(); render(); select(st.selected); fit(); });
    document.getElementById("offpath").addEventListener("click", () => {
      st.collapsed = new Set([...Array(t.n).keys()].filter((i) => i && !d.chosen.has(i) && d.kids[i].length)); render(); select(st.selected); fit();
    });
    svg.addEventListener("wheel", (e) => {  // scroll pans (shift: sideways); ctrl+wheel (a pinch too) zooms
      e.preventDefault();
      const r = svg.getBoundingClientRect(), unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? r.height : 1;
      if (e.ctrlKey || e.metaKey) { zoom(Math.exp(-e.deltaY * unit * 0.0015), e.clientX - r.left, e.clientY - r.top); return; }
      const dx = (e.shiftKey ? e.deltaY : e.deltaX) * unit, dy = (e.shiftKey ? 0 : e.deltaY) * unit;
      // scrolling stops at the drawing's ends: a tree bigger than the panel keeps covering it, a
      // smaller one stays inside it
      const b = extent(drawn.pos), k = st.tf.k, W = svg.clientWidth, H = svg.clientHeight;
      const within = (v, a, c) => Math.max(Math.min(a, c), Math.min(Math.max(a, c), v));
      st.tf.x = within(st.tf.x - dx, W - b.x1 * k, -b.x0 * k);
      st.tf.y = within(st.tf.y - dy, H - b.y1 * k, -b.y0 * k);
      apply();
    }, { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, tx: st.tf.x, ty: st.tf.y, moved: false }; });
    svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      drag.moved = true; svg.classList.add("dragging");
      st.tf.x = drag.tx + dx; st.tf.y = drag.ty + dy; apply();
    });
    const end = () => { svg.classList.remove("dragging"); setTimeout(() => { drag = null; }, 0); };
    svg.addEventListener("pointerup", end); svg.addEventListener("pointerleave", end);
    svg.addEventListener("pointerover", (e) => {  // zoomed out, a hovered node's label is drawn over its neighbours
      const g = e.target.closest("g.node");
      if (g && svg.classList.contains("tiny") && g !== vp.lastElementChild) vp.appendChild(g);
    });
    svg.addEventListener("click", (e) => { const g = e.target.closest("g.node"); if (g && !(drag && drag.moved)) select(+g.dataset.id); });
    svg.addEventListener("dblclick", (e) => { const g = e.target.closest("g.node"); if (g) toggle(+g.dataset.id); });
    document.getElementById("detail").addEventListener("click", (e) => {
      if (e.target.id === "toggle") toggle(st.selected);
      const ps = e.target.closest(".ps"); if (ps) select(+ps.dataset.id);
    });
  };
})();
