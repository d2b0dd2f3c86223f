"""`ponder view` of a real MCTS run on the embedded model, opened in headless Chromium (issue 14 §2)."""

import asyncio
import json

import pytest

from ponder.config import parse_run_config
from ponder.run import run_config
from ponder.view import write_view
from ponder.view.browser import chromium, console_errors, unavailable_reason

REASON = unavailable_reason()
pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(REASON is not None, reason=f"browser tests: {REASON}")]


def test_view_of_a_real_mcts_run(embedded_server, tmp_path):
    run_dir = tmp_path / "mcts"
    cfg = parse_run_config({
        "name": "it-view", "run_dir": str(run_dir),
        "tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 3,
                  "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
        "search": {"algorithm": "mcts", "num_simulations": 4, "num_children": 2, "value": "prior", "num_parallel": 2},
        "steps": {"max_depth": 3, "max_step_tokens": 32},
        "budget": {"max_generated_tokens": 400},
        "model": {"endpoints": [embedded_server.endpoint], "model": embedded_server.model},
    })
    outcome = asyncio.run(run_config(cfg))
    html = write_view(run_dir)
    row = outcome.rows[0]
    trace = json.loads((run_dir / "traces" / f"{row['id']}.json").read_text())
    with chromium() as driver:
        driver.get(html.resolve().as_uri())
        ids = driver.execute_script("return [...document.querySelectorAll('#problems tbody tr')].map(r => r.dataset.id)")
        assert sorted(ids) == sorted(r["id"] for r in outcome.rows)
        driver.get("about:blank")
        driver.get(html.resolve().as_uri() + f"#run=0&p={row['id']}")
        drawn = driver.execute_script("return document.querySelectorAll('#vp g.node').length")
        chosen = driver.execute_script("return [...document.querySelectorAll('#vp g.node.chosen')].map(g => +g.dataset.id)")
        assert drawn == len(trace["nodes"]) and sorted(chosen) == sorted(trace["path"])
        assert console_errors(driver) == []
