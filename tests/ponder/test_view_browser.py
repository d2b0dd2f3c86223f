"""`ponder view` pages in a real headless Chromium (issue 14 §2): the problem table's rows and
filters, a node's text and scores on click, the chosen path highlighted, label markers, no
console errors; screenshots saved as artifacts ($PONDER_TEST_ARTIFACTS, default
runs/test-artifacts/view). Runs recorded by the test itself (scripted engine, real run dir)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ponder.view import write_view
from ponder.view.browser import unavailable_reason
from view_run import record_run

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
    return {"solve": (solve, write_view(solve)), "label": (label, write_view(label))}


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
