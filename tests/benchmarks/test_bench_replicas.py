"""`ponder bench replicas`' report arithmetic."""

from benchmarks.replicas import RoutingRun, lines, workload


def test_the_report_compares_hit_rate_and_computed_tokens():
    req = RoutingRun("request", queried=1000, hits=400, generated=500, wall_s=10, problems=4,
                     per_replica_queried=(500, 500), cache_reset=True)
    tree = RoutingRun("tree", queried=1000, hits=900, generated=500, wall_s=8, problems=4,
                      per_replica_queried=(480, 520), cache_reset=False)
    out = lines([req, tree])
    assert req.computed == 600 and tree.computed == 100
    assert "40.0%" in out[1] and "500 / 500" in out[1]
    assert "90.0%" in out[2] and "NOT reset" in out[2]
    assert out[3] == ("tree vs request: hit rate 90.0% vs 40.0%; prompt tokens computed per queried token "
                      "0.100 vs 0.600; generated tok/s 62.5 vs 50.0")


def test_the_workload_is_an_mcts_run():
    cfg = workload(4)
    assert cfg.search.algorithm == "mcts" and cfg.tasks.size == 4


def test_the_report_counts_the_problems_tree_routing_moved():
    run = RoutingRun("tree", queried=10, hits=5, generated=5, wall_s=1, problems=1, per_replica_queried=(5, 5),
                     cache_reset=True, moves=(("down", 1), ("saturated", 3)))
    assert lines([run])[1].endswith("5 / 5; moved 1 (down), 3 (saturated)")
