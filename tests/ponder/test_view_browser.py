"""`ponder view` pages in a real headless Chromium (issue 14 §2): the problem table's rows and
filters, a node's text and scores on click, the chosen path highlighted, label markers, no
console errors; screenshots saved as artifacts ($PONDER_TEST_ARTIFACTS, default
runs/test-artifacts/view). Runs recorded by the test itself (scripted engine, real run dir; a
`ponder prove` run on the rewrite environment; a synthetic 78-node tree from `ponder bench
view`'s generator). Issue 24 §5: histogram axes, prove runs' wall times and attempt roots, and
a 78-node tree's layout at "fit", scrolled and zoomed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ponder.view import write_view
from ponder.view.browser import unavailable_reason
from view_run import record_prove_run, record_run

REASON = unavailable_reason()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(REASON is not None, reason=f"browser tests: {REASON}")]
ARTIFACTS = Path(os.environ.get("PONDER_TEST_ARTIFACTS", Path(__file__).parents[2] / "runs" / "test-artifacts" / "view"))


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("view-browser")
    mp = pytest.MonkeyPatch()
    try:
        solve = record_run(root / "solve", mp)
        label = record_run(root / "label", mp, mode="label")
    finally:
        mp.undo()
    from benchmarks.view import write_synthetic_run

    other = tmp_path_factory.mktemp("view-browser-other")  # not in the solve + label folder's overview
    prove = record_prove_run(other / "prove")
    big = write_synthetic_run(other / "big", num_problems=1, num_nodes=78, labels=False)
    return {"solve": (solve, write_view(solve)), "label": (label, write_view(label)),
            "prove": (prove, write_view(prove)), "big": (big, write_view(big))}


@pytest.fixture(scope="module")
def driver():
    from ponder.view.browser import chromium

    with chromium(1400, 900) as d:
        yield d


def _open(driver, html: Path, fragment: str = ""):
    driver.get("about:blank")  # a full load each time, not a same-document hash change
    driver.get(html.resolve().as_uri() + fragment)  # waits for the load event: the page's scripts have run
    assert driver.execute_script("return window.ponderReadyAt !== undefined")


def _until(driver, script: str, timeout: float = 10.0):
    """Wait for a JS condition: a row click only sets location.hash, and the page routes on the
    hashchange event, after Selenium's click has returned."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(f"return {script}"))


def _rows(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#problems tbody tr')].map(r => r.dataset.id)")


def _shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def _errors(driver) -> list[str]:
    from ponder.view.browser import console_errors

    return console_errors(driver)


def test_problem_table_rows_filter_and_sort(pages, driver):
    run_dir, html = pages["solve"]
    _open(driver, html)
    from selenium.webdriver.common.by import By

    assert sorted(_rows(driver)) == sorted(json.loads(x)["id"] for x in (run_dir / "results.jsonl").read_text().splitlines())
    expected = {"correct": {"right", "also"}, "incorrect": {"wrong"}, "errored": {"crashes"}}
    for name, ids in expected.items():
        driver.find_element(By.CSS_SELECTOR, f'#filters button[data-filter="{name}"]').click()
        assert set(_rows(driver)) == ids, name
    driver.find_element(By.CSS_SELECTOR, '#filters button[data-filter="all"]').click()
    driver.find_element(By.ID, "search").send_keys("al")
    assert _rows(driver) == ["also"]
    driver.find_element(By.ID, "search").clear()
    driver.execute_script("const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'))")
    driver.find_element(By.CSS_SELECTOR, '#problems th[data-key="tokens"]').click()
    tokens = driver.execute_script("return [...document.querySelectorAll('#problems tbody tr td:nth-child(5)')].map(td => +td.textContent.replace(/,/g, ''))")
    assert tokens == sorted(tokens) and len(tokens) == 4 and tokens[0] == 0  # the errored one spent nothing
    gold = driver.execute_script("return document.querySelector('#problems tr[data-id=\"wrong\"]').textContent")
    assert "7" in gold  # the gold, after the search
    print(f"screenshot: {_shot(driver, 'run-page.png')}")
    assert _errors(driver) == []


def test_tree_page_highlights_the_chosen_path_and_shows_a_clicked_node(pages, driver):
    run_dir, html = pages["solve"]
    trace = json.loads((run_dir / "traces" / "right.json").read_text())
    _open(driver, html)
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, '#problems tr[data-id="right"]').click()
    _until(driver, "document.querySelectorAll('#vp g.node').length > 0")
    chosen = driver.execute_script("return [...document.querySelectorAll('#vp g.node.chosen')].map(g => +g.dataset.id)")
    assert sorted(chosen) == sorted(trace["path"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#vp path.edge.chosen")) == len(trace["path"]) - 1
    width = driver.execute_script("return getComputedStyle(document.querySelector('#vp path.edge.chosen')).strokeWidth")
    other = driver.execute_script("return getComputedStyle(document.querySelector('#vp path.edge:not(.chosen)')).strokeWidth")
    assert float(width.rstrip("px")) > 2 * float(other.rstrip("px"))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#vp g.node")) == len(trace["nodes"])
    node = next(n for n in trace["nodes"] if n["id"] not in trace["path"] and n["scores"])
    driver.find_element(By.CSS_SELECTOR, f'#vp g.node[data-id="{node["id"]}"] circle').click()
    assert driver.find_element(By.ID, "step-text").text == node["text"].strip()
    fields = driver.find_element(By.ID, "node-fields").text
    for source, score in node["scores"].items():
        assert f"score: {source} {score:.3f}" in fields
    assert f"visits {node['visits']}" in fields and f"tokens {len(node['token_ids'])}" in fields
    path_text = driver.find_element(By.ID, "path-text").text
    parent = trace["nodes"][node["parent"]]
    assert parent["text"].strip() in path_text and node["text"].strip() in path_text
    assert f"node={node['id']}" in driver.current_url  # the selection is in the URL
    print(f"screenshot: {_shot(driver, 'tree-page.png')}")
    assert _errors(driver) == []


def test_collapse_pan_and_zoom(pages, driver):
    _, html = pages["solve"]
    _open(driver, html, "#run=0&p=right")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    before = len(driver.find_elements(By.CSS_SELECTOR, "#vp g.node"))
    first = driver.find_element(By.CSS_SELECTOR, '#vp g.node[data-id="1"] circle')
    ActionChains(driver).double_click(first).perform()
    after = len(driver.find_elements(By.CSS_SELECTOR, "#vp g.node"))
    assert after < before and driver.find_elements(By.CSS_SELECTOR, "#vp text.badge")
    transform = driver.find_element(By.ID, "vp").get_attribute("transform")
    driver.find_element(By.ID, "zin").click()
    zoomed = driver.find_element(By.ID, "vp").get_attribute("transform")
    assert zoomed != transform
    ActionChains(driver).move_to_element_with_offset(driver.find_element(By.ID, "tree"), -200, 200) \
        .click_and_hold().move_by_offset(80, 40).release().perform()
    assert driver.find_element(By.ID, "vp").get_attribute("transform") != zoomed
    assert _errors(driver) == []


def test_label_run_shows_labels_on_nodes(pages, driver):
    run_dir, html = pages["label"]
    labels = [json.loads(x) for x in (run_dir / "labels" / "right.jsonl").read_text().splitlines()]
    on_nodes = {x["node_id"] for x in labels if x["node_id"] is not None}
    _open(driver, html, "#run=0&p=right")
    from selenium.webdriver.common.by import By

    marked = driver.execute_script("return [...document.querySelectorAll('#vp g.node')].filter(g => g.querySelector('rect.lab')).map(g => +g.dataset.id)")
    assert set(marked) == on_nodes
    options = driver.execute_script("return [...document.querySelectorAll('#metric option')].map(o => o.value)")
    assert "label:math_shepherd" in options
    label = next(x for x in labels if x["node_id"] is not None)
    driver.find_element(By.CSS_SELECTOR, f'#vp g.node[data-id="{label["node_id"]}"] circle').click()
    detail = driver.find_element(By.ID, "detail").text
    assert "math_shepherd" in detail and f"{label['correct']}/{label['rollouts']} rollouts correct" in detail
    wrong = [x["node_id"] for x in labels if x["label"] is False and x["node_id"] is not None]
    if wrong:  # a step labelled wrong is marked as the first error of its path
        assert driver.find_elements(By.CSS_SELECTOR, "#vp text.ferr")
    print(f"screenshot: {_shot(driver, 'label-tree.png')}")
    assert _errors(driver) == []


def test_other_node_kinds_show_their_fields(tmp_path, driver):
    """A node kind today's search does not make (an MC-NEST-style refine node with a Q history)."""
    from ponder.rundir import RunDir
    from search.protocols import Problem, StepProposal, Usage
    from search.trace import SearchResult
    from search.tree import Tree

    tree = Tree((1, 2))
    node = tree.add_child(0, StepProposal("Refined answer: 42.", (3, 4, 5), (-0.1,) * 3, "eos"), terminal=True)
    node.visits, node.value_sum = 2, 1.5
    trace = SearchResult("42", [0, 1], tree, Usage(calls=1), "mc_nest").to_trace(Problem("p", "q?")).model_dump()
    trace["nodes"][1]["info"] = {"role": "refine", "q_history": [0.5, 0.75, 0.7]}
    with RunDir(tmp_path / "run") as rd:
        rd.write_config({"name": "kinds", "search": {"algorithm": "mc_nest"}})
        rd.record({"id": "p", "answer": "42", "status": "correct", "correct": True, "usage": {}}, trace)
    _open(driver, write_view(tmp_path / "run"), "#run=0&p=p&node=1")
    from selenium.webdriver.common.by import By

    detail = driver.find_element(By.ID, "detail")
    assert "refine" in [t.text for t in detail.find_elements(By.CSS_SELECTOR, "h2 .tag")]
    fields = driver.find_element(By.ID, "node-fields").text
    assert "info.q_history [0.5,0.75,0.7]" in fields
    assert detail.find_elements(By.CSS_SELECTOR, "#node-fields svg polyline")  # the value history drawn
    assert _errors(driver) == []


def test_a_folder_of_runs_opens_on_an_overview(pages, driver, tmp_path):
    root = pages["solve"][0].parent
    html = write_view(root, tmp_path / "all.html")
    _open(driver, html)
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "td").text for r in rows] == ["label", "solve"]
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.plot a circle")) == 2  # accuracy vs tokens, one per run
    rows[1].click()
    _until(driver, "document.querySelectorAll('#problems tbody tr').length > 0")
    assert len(_rows(driver)) == 4
    assert _errors(driver) == []


HISTOGRAMS = {  # name -> (values, the x axis's labels when they are known exactly)
    "one repeated integer": ([1, 1, 1, 1, 1], ["1"]),
    "all zero": ([0, 0, 0], ["0"]),
    "one repeated fraction": ([0.25] * 4, ["0.25"]),
    "one negative fraction": ([-0.001, -0.001], ["-0.001"]),
    "two integers": ([3, 3, 4], ["3", "4"]),
    "fractions across zero": ([-0.05, 0.02, 0.3], None),
    "wide integers": ([5, 1000, 2000, 50000], None),
    "many integers": (list(range(0, 400, 7)), None),
}
HIST_JS = """
const out = {}, box = document.querySelector('.plots');
box.innerHTML = '';
for (const [name, [values]] of Object.entries(arguments[0])) {
  box.insertAdjacentHTML('beforeend', window.ponder.histogram(values, name, 'value'));
  const svg = box.lastElementChild, texts = (sel) => [...svg.querySelectorAll(sel)].map((t) => t.textContent);
  out[name] = {x: texts('text.tick.x'), y: texts('text.tick.y'), bars: svg.querySelectorAll('rect.bar').length};
}
return out;
"""


def _nice_steps(labels: list[str]) -> None:
    """Distinct labels, no negative zero, evenly spaced by 1, 2 or 5 times a power of ten."""
    import math
    import re

    assert len(set(labels)) == len(labels), labels
    assert not any(re.fullmatch(r"-0(\.0*)?", t) for t in labels), labels
    values = [float(t.replace(",", "")) for t in labels]
    if len(values) > 1:
        steps = {round(b - a, 9) for a, b in zip(values, values[1:])}
        assert len(steps) == 1, labels
        (step,) = steps
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert any(math.isclose(mantissa, m) for m in (1, 2, 5)), labels


def test_histogram_axes_read_distinct_nice_ticks(pages, driver):
    """Issue 24 §5: one repeated value read `1 1 1 1 1` or `-0 -0 0 0 0`; now a single value is one
    bar with one label, and every axis reads distinct nice numbers, never -0 (counts: integers)."""
    _, html = pages["solve"]
    _open(driver, html)
    for svg in driver.execute_script("return [...document.querySelectorAll('svg.plot')].map(s => [...s.querySelectorAll('text.tick.x')].map(t => t.textContent))"):
        _nice_steps(svg)  # the run page's own histograms
    got = driver.execute_script(HIST_JS, {k: [v] for k, (v, _) in HISTOGRAMS.items()})
    for name, (values, expected) in HISTOGRAMS.items():
        axis = got[name]
        _nice_steps(axis["x"])
        _nice_steps(axis["y"])
        assert all(t.isdigit() for t in axis["y"]) and axis["y"][0] == "0", (name, axis)
        if expected is not None:
            assert axis["x"] == expected, (name, axis)
        if len(set(values)) == 1:
            assert axis["bars"] == 1, (name, axis)
        else:
            assert min(values) >= float(axis["x"][0].replace(",", "")) - 1e-9 or axis["bars"] > 1, (name, axis)
    print(f"screenshot: {_shot(driver, 'histograms.png')}")
    assert _errors(driver) == []


def test_a_prove_run_shows_wall_times_and_the_goal_at_attempt_roots(pages, driver):
    """Issue 24 §5: prove runs showed wall time 0 and empty attempt roots."""
    run_dir, html = pages["prove"]
    _open(driver, html)
    from selenium.webdriver.common.by import By

    walls = driver.execute_script("return [...document.querySelectorAll('#problems tbody tr td:last-child')].map(td => +td.textContent)")
    assert len(walls) == 2 and all(w > 0 for w in walls), walls
    card = driver.execute_script("return [...document.querySelectorAll('.card')].find(c => c.querySelector('.k').textContent === 'wall (s)').querySelector('.v').firstChild.textContent")
    assert float(card) > 0
    print(f"screenshot: {_shot(driver, 'prove-run.png')}")
    trace = json.loads((run_dir / "traces" / "rw_expand_sq.json").read_text())
    statement = trace["extra"]["theorem"]["statement"]
    roots = {a["node_offset"]: a for a in trace["extra"]["attempts"] if "node_offset" in a}
    _open(driver, html, "#run=0&p=rw_expand_sq")
    label = lambda i: driver.find_element(By.CSS_SELECTOR, f'#vp g.node[data-id="{i}"] text').text  # noqa: E731
    assert label(0).startswith("root " + statement[:15])
    for i, attempt in roots.items():
        goal = attempt["root"].splitlines()[-1]
        assert label(i).startswith(f"#{i} ⊢ {goal[:12]}"), label(i)
    first = min(roots)
    driver.find_element(By.CSS_SELECTOR, f'#vp g.node[data-id="{first}"] circle').click()
    assert "starts from the theorem's goal" in driver.find_element(By.ID, "step-text").text
    assert driver.find_element(By.ID, "state-text").text == roots[first]["root"].strip()
    assert f"agent {roots[first]['agent']}" in driver.find_element(By.ID, "node-fields").text
    assert f"⊢ {roots[first]['root'].splitlines()[-1]}" in driver.find_element(By.ID, "path-text").text
    print(f"screenshot: {_shot(driver, 'prove-tree.png')}")
    tactic = next(n for n in trace["nodes"] if n["parent"] == first)
    driver.find_element(By.CSS_SELECTOR, f'#vp g.node[data-id="{tactic["id"]}"] circle').click()
    assert driver.find_element(By.ID, "step-text").text == tactic["text"]
    assert driver.find_element(By.ID, "state-text").text == trace["extra"]["states"][str(tactic["id"])].strip()
    driver.find_element(By.CSS_SELECTOR, '#vp g.node[data-id="0"] circle').click()
    assert driver.find_element(By.ID, "root-text").text == statement
    assert _errors(driver) == []


GEOMETRY_JS = """
const svg = document.getElementById('tree'), box = (el) => el.getBoundingClientRect();
const s = box(svg), nodes = [...document.querySelectorAll('#vp g.node')];
const inside = nodes.filter((g) => { const r = box(g.querySelector('circle')); const y = (r.top + r.bottom) / 2, x = (r.left + r.right) / 2;
  return y > s.top && y < s.bottom && x > s.left && x < s.right; });
const hit = inside.filter((g) => { const r = box(g.querySelector('circle'));
  return document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2)?.closest('g.node') === g; });
const label = (g) => g.querySelector('text:not(.badge):not(.ferr)');
const px = inside.map((g) => label(g).getScreenCTM().a * parseFloat(getComputedStyle(label(g)).fontSize));
const ys = nodes.map((g) => box(g.querySelector('circle')).top);
const top = nodes[ys.indexOf(Math.min(...ys))], bottom = nodes[ys.indexOf(Math.max(...ys))];
return {svg: [s.top, s.bottom], bar: box(document.querySelector('.canvas .bar')).bottom, legend: box(document.getElementById('legend')).top,
  inside: inside.length, hit: hit.length, min_px: Math.min(...px), k: +document.getElementById('vp').getAttribute('transform').match(/scale\\(([^)]+)\\)/)[1],
  top_label: box(label(top)).top, top_circle: box(top.querySelector('circle')).top, bottom_circle: box(bottom.querySelector('circle')).bottom,
  tiny: svg.classList.contains('tiny')};
"""
WHEEL_JS = """
const svg = document.getElementById('tree'), r = svg.getBoundingClientRect();
svg.dispatchEvent(new WheelEvent('wheel', {deltaY: arguments[0], ctrlKey: arguments[1], clientX: r.left + r.width / 2,
  clientY: r.top + r.height / 2, bubbles: true, cancelable: true}));
"""


def test_a_78_node_tree_is_readable_at_fit_and_stays_in_its_panel(pages, driver):
    """Issue 24 §5: at "fit" a 78-node tree's labels were ~6 px, its top labels ran under the
    hint, its bottom nodes under the legend, and zoomed in it drew over the toolbar."""
    _, html = pages["big"]
    _open(driver, html, "#run=0&p=synthetic-0")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    assert len(driver.find_elements(By.CSS_SELECTOR, "#vp g.node")) == 78

    def panel_is_clear(g, least=10):  # the drawing's own box, below the toolbar and above the legend
        assert g["bar"] <= g["svg"][0] + 0.5 and g["svg"][1] <= g["legend"] + 0.5, g
        assert g["inside"] >= least and g["hit"] == g["inside"], g  # a click on any node shown hits that node

    fit = driver.execute_script(GEOMETRY_JS)
    assert fit["min_px"] >= 9.9, fit  # labels at 10 px or more
    panel_is_clear(fit)
    print(f"screenshot: {_shot(driver, 'tree-78-fit.png')}")
    driver.execute_script(WHEEL_JS, -100000, False)  # scrolled to the top: the first row clear of the toolbar
    top = driver.execute_script(GEOMETRY_JS)
    assert top["k"] == fit["k"] and top["top_label"] >= top["svg"][0] + 2, top
    panel_is_clear(top)
    print(f"screenshot: {_shot(driver, 'tree-78-top.png')}")
    driver.execute_script(WHEEL_JS, 100000, False)  # to the bottom: the last row above the legend
    bottom = driver.execute_script(GEOMETRY_JS)
    assert bottom["bottom_circle"] <= bottom["legend"] - 4, bottom
    panel_is_clear(bottom)
    print(f"screenshot: {_shot(driver, 'tree-78-bottom.png')}")
    for _ in range(10):
        driver.find_element(By.ID, "zin").click()
    zoomed = driver.execute_script(GEOMETRY_JS)
    assert zoomed["k"] > 5 * fit["k"]
    panel_is_clear(zoomed, least=1)
    on_fit = driver.execute_script("const r = document.getElementById('fit').getBoundingClientRect(); return document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2).id")
    assert on_fit == "fit"  # the toolbar stays on top and clickable
    print(f"screenshot: {_shot(driver, 'tree-78-zoomed.png')}")
    driver.find_element(By.ID, "fit").click()
    assert driver.execute_script(GEOMETRY_JS)["k"] == fit["k"]
    driver.execute_script(WHEEL_JS, 200, True)  # ctrl+wheel zooms out
    assert driver.execute_script(GEOMETRY_JS)["k"] < fit["k"]
    driver.find_element(By.ID, "whole").click()  # the whole tree: labels too small to read are hidden...
    whole = driver.execute_script(GEOMETRY_JS)
    assert whole["tiny"] and whole["k"] < fit["k"] and whole["inside"] == 78
    panel_is_clear(whole)
    node = driver.execute_script("return [...document.querySelectorAll('#vp g.node:not(.selected)')].map(g => +g.dataset.id)")[5]
    text = f'#vp g.node[data-id="{node}"] text'
    assert driver.execute_script(f"return getComputedStyle(document.querySelector('{text}')).display") == "none"
    ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, f'#vp g.node[data-id="{node}"] circle')).perform()
    shown = driver.execute_script(f"const t = document.querySelector('{text}'); return [getComputedStyle(t).display, t.getBoundingClientRect().height]")
    assert shown[0] != "none" and shown[1] >= 10, shown  # ...and show, readable, on hover
    print(f"screenshot: {_shot(driver, 'tree-78-whole.png')}")
    assert _errors(driver) == []
