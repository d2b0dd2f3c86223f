"""Exporters: a hand-built run directory -> TRL datasets on disk, checked field by field.

The run (tests/training/run_builder.py) has one labelled problem p1 whose tree and labels
are drawn in ``main_tree``; p2's latest result row is an error (stale trace and labels
must not be exported); p3 has one wrong solution and no labels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import pytest
from run_builder import (
    QUESTION,
    S_FIVE,
    S_GUESS,
    S_SIX,
    S_TWO,
    RunBuilder,
    add,
    label,
    main_labels,
    main_tree,
    standard_run,
)
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from trl.data_utils import (
    apply_chat_template,
    is_conversational,
    maybe_apply_chat_template,
    maybe_extract_prompt,
    unpair_preference_dataset,
)

from search.protocols import ConfigError, Problem, Usage
from search.trace import SearchResult
from search.tree import Tree
from training import RunDataError, export_run, read_run
from training.export.formats import pair_rows_from_labels, pair_rows_from_traces, prm_rows

P = QUESTION + "\n\n"  # every plain-text prompt starts with the question and a blank line


def rows_of(path: Path) -> list[dict]:
    return datasets.load_from_disk(str(path)).to_list()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return standard_run(tmp_path / "run").path


def char_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A one-token-per-character tokenizer with a tiny chat template (no download)."""
    chars = sorted(set("".join(texts)) | set("<>/"))
    vocab = {"[UNK]": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
                          "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    return fast


# --- reading the run directory ---------------------------------------------------------

def test_read_run_keeps_finished_problems_and_skips_torn_label_lines(run_dir: Path) -> None:
    run = read_run(run_dir)
    assert run.config["name"] == "fixture-run" and run.algorithm == "mcts"
    assert run.finished == ["p1", "p3"] and run.errored == ["p2"]
    assert sorted(run.traces) == ["p1", "p3"]  # p2's stale trace is not read
    assert {lab.problem_id for lab in run.labels} == {"p1"}
    assert len(run.labels) == len(main_labels())
    assert run.skipped_label_lines == 1
    assert run.missing_traces == []
    assert run.traces["p1"].to_tree()[3].scores == {"verifier": 1.0}


def test_read_run_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(RunDataError, match="nowhere"):
        read_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDataError, match=r"empty/config\.yaml: not found"):
        read_run(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text("name: [unclosed")
    with pytest.raises(RunDataError, match=r"bad/config\.yaml: not valid YAML"):
        read_run(bad)
    (bad / "config.yaml").write_text("- a list")
    with pytest.raises(RunDataError, match="must be a mapping"):
        read_run(bad)


def test_read_run_rejects_a_corrupt_trace_and_a_bad_label_line_in_the_middle(tmp_path: Path) -> None:
    builder = RunBuilder(tmp_path / "r").result("p1")
    (builder.path / "traces" / "p1.json").write_text('{"schema_version": 1}')
    with pytest.raises(RunDataError, match=r"traces/p1\.json: not a valid search trace"):
        read_run(builder.path)
    builder.trace("p1", main_tree())
    good = main_labels()[0].model_dump_json()
    (builder.path / "labels").mkdir()
    (builder.path / "labels" / "p1.jsonl").write_text(good + "\n{torn\n" + good + "\n")
    with pytest.raises(RunDataError, match=r"labels/p1\.jsonl:2: not JSON"):
        read_run(builder.path)
    (builder.path / "labels" / "p1.jsonl").write_text('{"problem_id": "p1"}\n' + good + "\n")
    with pytest.raises(RunDataError, match=r"labels/p1\.jsonl:1: not a valid step label"):
        read_run(builder.path)


# --- prm ---------------------------------------------------------------------------------

def test_prm_hard_rows_are_root_to_leaf_chains(run_dir: Path) -> None:
    out = export_run(run_dir, formats=("prm",))
    assert out == {"prm": run_dir / "datasets" / "prm"}
    ds = datasets.load_from_disk(str(out["prm"]))
    assert ds.features["labels"].feature.dtype == "bool"
    assert ds.to_list() == [
        {"prompt": P, "completions": ["Two plus three.", "The answer is 5."], "labels": [True, True],
         "problem_id": "p1"},
        {"prompt": P, "completions": ["Two plus three.", "The answer is 6."], "labels": [True, False],
         "problem_id": "p1"},
        {"prompt": P, "completions": ["Guess.", "The answer is 5."], "labels": [False, True],
         "problem_id": "p1"},
    ]
    card = (out["prm"] / "README.md").read_text()
    assert "- rows: 3" in card and "- problems: 1" in card
    assert "- share_true: 0.6000" in card and "- labelled_steps: 5" in card
    assert "generator math_shepherd" in card and "algorithm: mcts" in card and "mode: label" in card
    assert "3 (2 finished, 1 errored and left out)" in card
    assert "characters: mean 13.8, median 16, max 16" in card
    assert "tokens (as sampled): mean 14.6, median 16, max 17" in card
    assert "1 torn last line(s) of label files were skipped" in card


def test_prm_soft_rows(run_dir: Path) -> None:
    out = export_run(run_dir, formats=("prm",), soft=True, out_dir=run_dir / "soft")
    ds = datasets.load_from_disk(str(out["prm"]))
    assert ds.features["labels"].feature.dtype == "float64"
    assert [r["labels"] for r in ds.to_list()] == [[0.5, 1.0], [0.5, 0.0], [0.0, 1.0]]
    assert "- mean_value: 0.5000" in (out["prm"] / "README.md").read_text()


def test_prm_folds_an_unlabelled_prefix_into_the_prompt_and_needs_one_generator(tmp_path: Path) -> None:
    omega = [label([S_TWO], S_SIX, value=0.0, hard=False, generator="omega_prm"),
             label([], S_GUESS + S_FIVE, value=0.75, hard=True, generator="omega_prm")]
    builder = RunBuilder(tmp_path / "r").result("p1").trace("p1", main_tree())
    builder.labels("p1", main_labels() + omega)
    with pytest.raises(ConfigError, match="math_shepherd, omega_prm"):
        export_run(builder.path, formats=("prm",))
    out = export_run(builder.path, formats=("prm",), generator="omega_prm")
    assert out["prm"] == builder.path / "datasets" / "prm_omega_prm"
    assert rows_of(out["prm"]) == [
        {"prompt": P + S_TWO, "completions": ["The answer is 6."], "labels": [False], "problem_id": "p1"},
        {"prompt": P, "completions": ["Guess.\n\nThe answer is 5."], "labels": [True], "problem_id": "p1"},
    ]
    assert "- rows_with_folded_prefix: 1" in (out["prm"] / "README.md").read_text()


def test_prm_chains_through_a_span_label_and_skips_labels_without_the_target() -> None:
    labels = [label([], S_GUESS + S_TWO, value=0.5, hard=True, generator="omega_prm"),
              label([S_GUESS, S_TWO], S_FIVE, value=1.0, hard=True, generator="omega_prm"),
              label([S_GUESS, S_TWO], S_SIX, value=None, hard=None, generator="omega_prm")]
    rows = prm_rows(labels).rows
    assert rows == [{"prompt": P, "completions": ["Guess.\n\nTwo plus three.", "The answer is 5."],
                     "labels": [True, True], "problem_id": "p1"}]


def test_prm_label_placement_follows_the_stepwise_convention(run_dir: Path) -> None:
    """Stepwise supervision (TRL's format; TRL 1.16 ships no PRM trainer or checker): the
    trainer tokenizes prompt, then each completion followed by the step separator, and puts
    the step's label on the separator's last token. With the separator "\\n\\n", the text
    so built is the solution as generated, and each label sits right after its step."""
    rows = rows_of(export_run(run_dir, formats=("prm",))["prm"])
    tok = char_tokenizer([r["prompt"] + "".join(r["completions"]) for r in rows])
    sep = "\n\n"
    for row in rows:
        ids = tok(row["prompt"], add_special_tokens=False)["input_ids"]
        targets = [-100] * len(ids)
        for step, target in zip(row["completions"], row["labels"], strict=True):
            step_ids = tok(step + sep, add_special_tokens=False)["input_ids"]
            ids += step_ids
            targets += [-100] * (len(step_ids) - 1) + [int(target)]
        text = tok.decode(ids)
        marked = [i for i, t in enumerate(targets) if t != -100]
        assert len(marked) == len(row["completions"])
        for i, step in zip(marked, row["completions"], strict=True):
            assert tok.decode(ids[: i + 1]).endswith(step + sep)
        assert text in {P + S_TWO + S_FIVE + sep, P + S_TWO + S_SIX + sep, P + S_GUESS + S_FIVE + sep}


# --- sft ---------------------------------------------------------------------------------

def test_sft_rows_are_correct_deduplicated_end_leaves(run_dir: Path) -> None:
    out = export_run(run_dir, formats=("sft",))
    assert rows_of(out["sft"]) == [
        {"prompt": P, "completion": S_TWO + S_FIVE, "problem_id": "p1"},
        {"prompt": P, "completion": S_GUESS + S_FIVE, "problem_id": "p1"},  # end-gated leaf
    ]
    card = (out["sft"] / "README.md").read_text()
    for line in ("- rows: 2", "- problems: 1", "- end_leaves: 5", "- duplicates: 1", "- verified: 4",
                 "- correct: 2", "- share_correct: 0.5000", "- unverified: 0"):
        assert line in card
    row = rows_of(out["sft"])[0]
    assert not is_conversational(row)
    assert maybe_apply_chat_template(row, char_tokenizer([P])) == row  # standard: left as is


@pytest.mark.parametrize(("options", "completions"), [
    ({"min_chars": 30}, [S_TWO + S_FIVE]),  # 33 chars kept, 24 chars dropped
    ({"min_value": 0.2}, [S_TWO + S_FIVE]),  # first values 0.9 kept, 0.1 dropped
    ({"min_value": 0.05, "min_chars": 10}, [S_TWO + S_FIVE, S_GUESS + S_FIVE]),
])
def test_sft_filters_of_spec_02(run_dir: Path, options: dict, completions: list[str]) -> None:
    out = export_run(run_dir, formats=("sft",), **options)
    assert [r["completion"] for r in rows_of(out["sft"])] == completions


def test_sft_chat_rows_go_through_trl_chat_templates(run_dir: Path) -> None:
    out = export_run(run_dir, formats=("sft",), chat=True)
    row = rows_of(out["sft"])[0]
    assert row == {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
                   "completion": [{"role": "assistant", "content": S_TWO + S_FIVE}], "problem_id": "p1"}
    assert is_conversational(row)
    tok = char_tokenizer([QUESTION, S_TWO + S_FIVE, "Be brief.systemuserassistant"])
    rendered = apply_chat_template({"prompt": row["prompt"], "completion": row["completion"]}, tok)
    assert rendered == {"prompt": f"<system>Be brief.</system><user>{QUESTION}</user><assistant>",
                        "completion": S_TWO + S_FIVE + "</assistant>"}


def test_sft_checks_unscored_solutions_with_the_runs_task_set(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "q1", "question": "What is 2+3?", "answer": "#### 5"}) + "\n"
                     + json.dumps({"id": "q2", "question": "1+1?", "answer": "#### 2"}) + "\n")
    config = {"name": "solve-run", "mode": "solve", "search": {"algorithm": "best_of_n"},
              "tasks": {"source": "jsonl", "path": str(tasks), "id_field": "id"}}
    builder = RunBuilder(tmp_path / "r", config).result("q1").result("q2").result("q9")
    q1 = Tree()
    add(q1, 0, "The answer is 5.", terminal=True)
    add(q1, 0, "The answer is 7.", terminal=True)
    q2 = Tree()
    add(q2, 0, "The answer is 2.", terminal=True)
    q9 = Tree()
    add(q9, 0, "The answer is 1.", terminal=True)  # not in the task set: cannot be checked
    builder.trace("q1", q1).trace("q2", q2, question="1+1?").trace("q9", q9, question="?")
    out = export_run(builder.path, formats=("sft",))
    assert rows_of(out["sft"]) == [
        {"prompt": P, "completion": "The answer is 5.", "problem_id": "q1"},
        {"prompt": "1+1?\n\n", "completion": "The answer is 2.", "problem_id": "q2"},
    ]
    card = (out["sft"] / "README.md").read_text()
    assert "- unverified: 1" in card and "could not be checked" in card and "mode: solve" in card


# --- pairs -------------------------------------------------------------------------------

def test_pairs_from_tree_values(run_dir: Path) -> None:
    out = export_run(run_dir, formats=("pairs",))
    rows = rows_of(out["pairs"])
    assert [{k: v for k, v in r.items() if k != "margin"} for r in rows] == [
        {"prompt": P, "chosen": S_TWO, "rejected": S_GUESS, "problem_id": "p1"},  # Q 0.9 vs 0.25
        {"prompt": P + S_TWO, "chosen": S_FIVE, "rejected": S_SIX, "problem_id": "p1"},  # Q 1 vs 0
    ]  # the errored root child and the unvisited node 7 take no part
    assert [r["margin"] for r in rows] == pytest.approx([0.65, 1.0])
    card = (out["pairs"] / "README.md").read_text()
    assert "sibling node values" in card and "torn" not in card  # no labels were used


def test_pairs_from_tree_step_scores_when_nothing_was_backed_up() -> None:
    """A beam search's tree: no visits, no first values, only PRM scores per step."""
    tree = Tree()
    add(tree, 0, "x\n\n", scores={"prm": 0.75})
    add(tree, 0, "y\n\n", scores={"prm": 0.25, "rollout": 1.0})
    add(tree, 0, "z\n\n")  # never scored: no value, no pair
    rows = pair_rows_from_traces([SearchResult("5", [], tree, Usage(), "step_beam").to_trace(
        Problem("b1", "Q?"))]).rows
    assert rows == [{"prompt": "Q?\n\n", "chosen": "x\n\n", "rejected": "y\n\n", "margin": 0.5,
                     "problem_id": "b1"}]


def test_pairs_from_labels_are_trl_preference_rows(run_dir: Path) -> None:
    out = export_run(run_dir, formats=("pairs",), generator="math_shepherd")
    assert out["pairs"].name == "pairs_math_shepherd"
    ds = datasets.load_from_disk(str(out["pairs"]))
    assert ds.to_list() == [
        {"prompt": P, "chosen": S_TWO, "rejected": S_GUESS, "margin": 0.5, "problem_id": "p1"},
        {"prompt": P + S_TWO, "chosen": S_FIVE, "rejected": S_SIX, "margin": 1.0, "problem_id": "p1"},
    ]
    row = ds[0]
    assert not is_conversational(row) and maybe_extract_prompt(row) == row
    unpaired = unpair_preference_dataset(ds.remove_columns(["margin", "problem_id"])).to_list()
    assert unpaired[0] == {"prompt": P, "completion": S_TWO, "label": True}
    assert {"prompt": P, "completion": S_GUESS, "label": False} in unpaired
    card = (out["pairs"] / "README.md").read_text()
    assert "- rows: 2" in card and "- mean_margin: 0.7500" in card
    narrow = export_run(run_dir, formats=("pairs",), generator="math_shepherd", margin=0.6)
    assert [r["chosen"] for r in rows_of(narrow["pairs"])] == [S_FIVE]


def test_pairs_margin_is_strict_and_bounded_per_parent() -> None:
    labels = [label([], "a", value=0.75, hard=True), label([], "b", value=0.5, hard=True),
              label([], "c", value=0.25, hard=False), label([], "a", value=0.0, hard=False)]
    every = pair_rows_from_labels(labels).rows
    assert [(r["chosen"], r["rejected"], r["margin"]) for r in every] == [
        ("a", "b", 0.25), ("a", "c", 0.5), ("b", "c", 0.25)]  # the second "a" counts once
    assert [(r["chosen"], r["rejected"]) for r in pair_rows_from_labels(labels, margin=0.25).rows] == [("a", "c")]
    best = pair_rows_from_labels(labels, max_pairs_per_parent=1).rows
    assert [(r["chosen"], r["rejected"]) for r in best] == [("a", "c")]


# --- value -------------------------------------------------------------------------------

def test_value_rows(run_dir: Path) -> None:
    out = export_run(run_dir, formats=("value",))
    assert rows_of(out["value"]) == [
        {"prompt": P, "completion": S_TWO, "value": 0.5, "problem_id": "p1"},
        {"prompt": P, "completion": S_TWO + S_FIVE, "value": 1.0, "problem_id": "p1"},
        {"prompt": P, "completion": S_TWO + S_SIX, "value": 0.0, "problem_id": "p1"},
        {"prompt": P, "completion": S_GUESS, "value": 0.0, "problem_id": "p1"},
        {"prompt": P, "completion": S_GUESS + S_FIVE, "value": 1.0, "problem_id": "p1"},
    ]
    assert "- mean_value: 0.5000" in (out["value"] / "README.md").read_text()


# --- the whole export --------------------------------------------------------------------

def test_export_all_formats_excludes_errored_problems(run_dir: Path) -> None:
    out = export_run(run_dir, question_sep="")
    assert sorted(out) == ["pairs", "prm", "sft", "value"]
    for path in out.values():
        rows = rows_of(path)
        assert rows and all(r["problem_id"] != "p2" for r in rows)
        assert all(r["prompt"].startswith(QUESTION) and "Stale?" not in r["prompt"] for r in rows)
    assert rows_of(out["sft"])[0]["prompt"] == QUESTION  # question_sep="": the bare question


def test_empty_datasets_keep_their_columns_and_say_so(tmp_path: Path) -> None:
    builder = RunBuilder(tmp_path / "r").result("p3")
    tree = Tree()
    add(tree, 0, "No idea.", terminal=True, scores={"verifier": 0.0})
    builder.trace("p3", tree)
    out = export_run(builder.path, formats=("prm", "sft"), soft=True)
    for fmt, columns in {"prm": ["prompt", "completions", "labels", "problem_id"],
                         "sft": ["prompt", "completion", "problem_id"]}.items():
        ds = datasets.load_from_disk(str(out[fmt]))
        assert len(ds) == 0 and ds.column_names == columns
        assert "EMPTY" in (out[fmt] / "README.md").read_text()
    assert "label files: none found" in (out["prm"] / "README.md").read_text()


def test_reexport_overwrites_cleanly(run_dir: Path) -> None:
    first = export_run(run_dir, formats=("sft",))["sft"]
    datasets.load_from_disk(str(first))  # a loaded (memory-mapped) copy must not block it
    (first / "stray.txt").write_text("left over")
    second = export_run(run_dir, formats=("sft",), min_chars=30)["sft"]
    assert second == first and not (first / "stray.txt").exists()
    assert len(rows_of(second)) == 1
    assert "- rows: 1" in (second / "README.md").read_text()
    assert [p.name for p in first.parent.iterdir()] == ["sft"]  # no staging folders left


def test_bad_options_are_config_errors(run_dir: Path) -> None:
    with pytest.raises(ConfigError, match="formats"):
        export_run(run_dir, formats=("dpo",))
    with pytest.raises(ConfigError, match="margin"):
        export_run(run_dir, formats=("pairs",), margin=-0.1)
    with pytest.raises(ConfigError, match="nonsense"):
        export_run(run_dir, nonsense=1)
