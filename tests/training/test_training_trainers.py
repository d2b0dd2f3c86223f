"""Trainers on a tiny random Llama built in the test (character tokenizer, no download).

Each stage trains a few dozen steps on a dataset in the exporters' format: its loss goes
down and it writes a checkpoint that loads and passes models/checkpoint.py's checks. The
generative PRM's examples are the prompts GenerativePRM sends (one shared format), and the
trained judge, read by GenerativePRM through a mocked vLLM, tells its labels apart.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import string
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import httpx
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    TrainerCallback,
)
from typer.testing import CliRunner

from models.checkpoint import structure_problem
from models.client import VLLMClient
from models.pooling_prm import PoolingPRM
from models.prm_format import JudgeFormat
from models.reward import GenerativePRM
from models.tokenizer import HFTokenizer
from ponder.cli.main import app
from search.protocols import ConfigError, Problem
from training.train import make_config, run_stage
from training.train.data import question_and_prefix
from training.train.policy import dpo_examples, sft_examples
from training.train.prm import JudgeTrainer, balance_weights, freeze_below, judge_examples
from training.train.scoring import PadCollator
from training.train.value import value_examples

torch.set_num_threads(1)

SPECIAL = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SHORT_TEMPLATE = "{question}\n{steps}\n?"  # keeps the judge prompts short (seconds, not minutes)
FAST = {"learning_rate": 3e-3, "batch_size": 4, "logging_steps": 2, "save_steps": 200, "eval_fraction": 0.25}
JUDGE = {**FAST, "learning_rate": 5e-3, "max_steps": 100, "logging_steps": 10}  # the verdict needs ~100 steps


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (hidden 32) with a one-token-per-character tokenizer and a
    ChatML-style chat template, saved as a Hugging Face checkpoint."""
    path = tmp_path_factory.mktemp("base")
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(SPECIAL + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=0, bos_token_id=None, eos_token_id=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def save(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    path = tmp_path / name
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def question(i: int) -> str:
    return f"Q{i}: what is {i} + 1?"


def prm_rows(soft: bool = False) -> list[dict]:
    """Per problem: a correct chain, a chain that goes wrong at step 2 (its first step is the
    same judge prompt), and a row whose first step is folded into the prompt."""
    yes, no = (0.8, 0.2) if soft else (True, False)
    rows = []
    for i in range(12):
        p = question(i) + "\n\n"
        rows += [
            {"prompt": p, "completions": [f"{i}+1 ok", f"so {i + 1} ok"], "labels": [yes, yes], "problem_id": f"p{i}"},
            {"prompt": p, "completions": [f"{i}+1 ok", f"so {i + 2} no"], "labels": [yes, no], "problem_id": f"p{i}"},
            {"prompt": p + f"{i}+1 ok\n\n", "completions": [f"so {i + 3} no"], "labels": [no], "problem_id": f"p{i}"},
        ]
    return rows


def losses(result) -> list[float]:
    return [h["loss"] for h in result.metrics["log_history"] if "loss" in h]


def assert_learned(result, factor: float = 0.8) -> None:
    """The last logged training loss is below ``factor`` times the first; eval loss fell."""
    train = losses(result)
    assert len(train) >= 3 and train[-1] < factor * train[0], train
    assert result.metrics["eval_after"]["eval_loss"] < result.metrics["eval_before"]["eval_loss"]


def assert_servable(model_dir: Path, auto_class=AutoModelForCausalLM):
    assert structure_problem(model_dir) is None
    assert not list(model_dir.glob("adapter_*"))  # LoRA adapters are merged, not left beside
    assert AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True).chat_template == CHAT_TEMPLATE
    return auto_class.from_pretrained(str(model_dir), local_files_only=True)


class _NoClient:
    """Stands in for the vLLM client where only prompt building is used."""


# --- generative PRM -----------------------------------------------------------------------

@pytest.mark.parametrize("judge", [JudgeFormat(), JudgeFormat(template=SHORT_TEMPLATE, response_prefix="Verdict:")])
def test_prm_examples_are_the_prompts_and_labels_generative_prm_reads(base: Path, judge: JudgeFormat) -> None:
    reader = HFTokenizer(base)
    prm = GenerativePRM(_NoClient(), reader, template=judge.template, response_prefix=judge.response_prefix)
    rows = prm_rows()[:3]
    built = judge_examples(rows, reader, judge)
    steps = [["0+1 ok"], ["0+1 ok", "so 1 ok"], ["0+1 ok", "so 2 no"], ["0+1 ok", "so 3 no"]]
    problem = Problem(id="p0", question=question(0))
    assert [e["input_ids"] for e in built.examples] == [prm.prompt(problem, s) for s in steps]
    assert [e["target"] for e in built.examples] == [1.0, 1.0, 0.0, 0.0]
    assert built.duplicates == 1  # the second row's first step
    assert judge.label_ids(reader) == (prm.positive_ids, prm.negative_ids) == ((reader.encode("+")[0],),
                                                                               (reader.encode("-")[0],))


async def test_prm_trains_the_verdict_generative_prm_reads(base: Path, tmp_path: Path) -> None:
    config = make_config("prm", dataset=save(tmp_path, "prm", prm_rows()), base=base, out=tmp_path / "out",
                         template=SHORT_TEMPLATE, **JUDGE)
    result = run_stage("prm", config)
    assert_learned(result)
    model = assert_servable(result.model_dir)
    assert result.metrics["counts"]["duplicates"] > 0

    def handler(request: httpx.Request) -> httpx.Response:  # vLLM's reply, computed by the model
        body = json.loads(request.content)
        with torch.no_grad():
            logp = model(torch.tensor([body["prompt"]])).logits[0, -1].log_softmax(-1)
        top = {f"token_id:{t}": float(logp[t]) for t in body["logprob_token_ids"]}
        choice = {"index": 0, "text": "+", "token_ids": [0], "finish_reason": "length", "stop_reason": None,
                  "logprobs": {"token_logprobs": [-0.1], "tokens": ["+"], "top_logprobs": [top]}}
        return httpx.Response(200, json={"choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    client = VLLMClient("http://prm:1", "judge", transport=httpx.MockTransport(handler), backoff_s=0.001, max_retries=1)
    prm = GenerativePRM(client, HFTokenizer(result.model_dir), template=SHORT_TEMPLATE)
    scores = (await prm.score(Problem(id="p5", question=question(5)), [["5+1 ok", "so 6 ok"], ["5+1 ok", "so 7 no"]])).scores
    await client.aclose()
    assert scores[0][1] > 0.5 > scores[1][1]


def test_prm_soft_labels_train_as_target_probabilities(base: Path, tmp_path: Path) -> None:
    config = make_config("prm", dataset=save(tmp_path, "soft", prm_rows(soft=True)), base=base,
                         out=tmp_path / "out", template=SHORT_TEMPLATE, **JUDGE)
    result = run_stage("prm", config)
    assert_learned(result)
    before, after = result.metrics["eval_before"], result.metrics["eval_after"]
    assert after["eval_mae"] < before["eval_mae"]  # |P / (P + N) - q| shrinks towards 0.8 / 0.2
    assert_servable(result.model_dir)


def test_balance_weights_give_both_classes_half_the_weight() -> None:
    examples = [{"target": t} for t in (1.0, 0.0, 0.0, 0.2, 0.5)]  # soft: >= 0.5 counts as right
    counts = balance_weights(examples)
    assert (counts["positive"], counts["negative"]) == (2, 3)
    assert [e["weight"] for e in examples] == pytest.approx([5 / 4, 5 / 6, 5 / 6, 5 / 6, 5 / 4])
    assert sum(e["weight"] for e in examples) == pytest.approx(len(examples))  # mean weight 1
    one_class = [{"target": 0.0}, {"target": 0.0}]
    balance_weights(one_class)
    assert [e["weight"] for e in one_class] == [1.0, 1.0]


def test_the_judge_loss_weighs_each_example() -> None:
    """loss = mean_i w_i * -(q_i log P_i + (1 - q_i) log N_i), P and N read at the last position."""
    logits = torch.tensor([[[2.0, 0.0, 1.0]], [[0.0, 1.0, 3.0]]])  # vocab: 0 = '+', 1 = '-', 2 = other

    class Fixed:
        def __call__(self, **kwargs):
            return type("Out", (), {"logits": logits})()

    judge = type("J", (), {"positive_ids": [0], "negative_ids": [1]})()
    batch = PadCollator(0, "left")([{"input_ids": [5], "target": 1.0, "weight": 3.0},
                                    {"input_ids": [6], "target": 0.0, "weight": 0.5}])
    loss, scores = JudgeTrainer.score_loss(judge, Fixed(), batch)
    logp = logits[:, -1].log_softmax(-1)
    expected = (3.0 * -logp[0, 0] + 0.5 * -logp[1, 1]) / 2
    assert float(loss) == pytest.approx(float(expected))
    assert scores.tolist() == pytest.approx([float(torch.sigmoid(logp[0, 0] - logp[0, 1])),
                                             float(torch.sigmoid(logp[1, 0] - logp[1, 1]))])
    unweighted = PadCollator(0, "left")([{"input_ids": [5], "target": 1.0, "weight": 3.0},
                                         {"input_ids": [6], "target": 0.0}])  # not every example has one
    assert "weight" not in unweighted
    loss, _ = JudgeTrainer.score_loss(judge, Fixed(), unweighted)
    assert float(loss) == pytest.approx(float((-logp[0, 0] - logp[1, 1]) / 2))


def imbalanced_rows() -> list[dict]:
    """One right step per problem and four wrong ones (20 % True, as Math-Shepherd labels of a weak policy)."""
    rows = []
    for i in range(12):
        p = question(i) + "\n\n"
        rows.append({"prompt": p, "completions": [f"{i}+1 ok"], "labels": [True], "problem_id": f"p{i}"})
        rows += [{"prompt": p, "completions": [f"{i}+{j} no"], "labels": [False], "problem_id": f"p{i}"}
                 for j in range(2, 6)]
    return rows


def test_prm_balance_lifts_the_minority_class(base: Path, tmp_path: Path) -> None:
    """On 20 % True labels, the unbalanced judge learns to say '-' (its right steps score
    low); the balanced one scores right steps higher than the unbalanced one does."""
    data = save(tmp_path, "imbalanced", imbalanced_rows())
    scores = {}
    for balance in (False, True):
        config = make_config("prm", dataset=data, base=base, out=tmp_path / f"out-{balance}", template=SHORT_TEMPLATE,
                             balance=balance, **{**JUDGE, "max_steps": 60, "eval_fraction": 0.0})
        result = run_stage("prm", config)
        counts = result.metrics["counts"]
        assert counts["train_positive"] == 12 and counts["train_examples"] == 60
        assert ("weight_positive" in counts) is balance
        model = AutoModelForCausalLM.from_pretrained(str(result.model_dir), local_files_only=True)
        reader = HFTokenizer(result.model_dir)
        built = judge_examples(imbalanced_rows(), reader, JudgeFormat(template=SHORT_TEMPLATE))
        pos, neg = JudgeFormat().label_ids(reader)
        with torch.no_grad():
            right = [e for e in built.examples if e["target"] == 1.0]
            out = [model(torch.tensor([e["input_ids"]])).logits[0, -1].log_softmax(-1) for e in right]
        scores[balance] = sum(float(torch.sigmoid(o[pos[0]] - o[neg[0]])) for o in out) / len(out)
    assert counts["weight_positive"] == pytest.approx(60 / 24) and counts["weight_negative"] == pytest.approx(60 / 96)
    assert scores[False] < 0.5 < scores[True], scores


def test_prm_train_layers_trains_only_the_top_layers(base: Path, tmp_path: Path) -> None:
    config = make_config("prm", dataset=save(tmp_path, "prm", prm_rows()), base=base, out=tmp_path / "out",
                         template=SHORT_TEMPLATE, train_layers=1, **{**JUDGE, "max_steps": 20})
    result = run_stage("prm", config)
    before = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True).state_dict()
    after = AutoModelForCausalLM.from_pretrained(str(result.model_dir), local_files_only=True).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed), changed
    assert not any(k.startswith("model.layers.1.") for k in set(before) - changed)  # every top-layer weight moved
    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    with pytest.raises(ConfigError, match="has 2 decoder layers"):
        freeze_below(model, 3)
    with pytest.raises(ConfigError, match="lora"):
        run_stage("prm", make_config("prm", dataset=tmp_path / "prm", base=base, out=tmp_path / "lora",
                                     train_layers=1, lora=True))


def test_prm_resumes_from_its_checkpoint_and_then_is_done(base: Path, tmp_path: Path) -> None:
    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt

    options = dict(dataset=save(tmp_path, "prm", prm_rows()), base=base, out=tmp_path / "out",
                   template=SHORT_TEMPLATE, max_steps=4, **{**FAST, "save_steps": 2})
    config = make_config("prm", **options)
    with pytest.raises(KeyboardInterrupt):
        run_stage("prm", config, callbacks=[Kill()])
    out = tmp_path / "out"
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "done.json").exists()
    resumed = run_stage("prm", config)
    assert resumed.resumed_from == out / "checkpoints" / "checkpoint-2"
    assert resumed.metrics["global_step"] == 4 and resumed.metrics["eval_before"] is None
    assert [h["step"] for h in resumed.metrics["log_history"] if "loss" in h] == [1, 2, 4]
    assert_servable(resumed.model_dir)
    assert not (out / "checkpoints").exists()  # done: the resume points are removed
    again = run_stage("prm", config)
    assert again.already_done and again.model_dir == resumed.model_dir
    with pytest.raises(ConfigError, match="learning_rate"):
        run_stage("prm", make_config("prm", **{**options, "learning_rate": 1e-4}))


# --- policy ---------------------------------------------------------------------------------

def sft_rows() -> list[dict]:
    return [{"prompt": question(i) + "\n\n", "completion": f"{i} + 1 = {i + 1}\n\nThe answer is {i + 1}.",
             "problem_id": f"p{i}"} for i in range(12)]


def test_sft_trains_on_the_policy_prompt(base: Path, tmp_path: Path) -> None:
    config = make_config("sft", dataset=save(tmp_path, "sft", sft_rows()), base=base, out=tmp_path / "out",
                         system_prompt="Be brief.", max_steps=20, **FAST)
    reader = HFTokenizer(base)
    [example], _ = sft_examples(sft_rows()[:1], reader, config)
    prompt = reader.chat_prompt(question(0), "Be brief.")  # the policy's root prefix
    completion = reader.encode("0 + 1 = 1\n\nThe answer is 1.") + [reader.eos_token_id]
    assert example["input_ids"] == prompt + completion
    assert example["labels"] == [-100] * len(prompt) + completion
    result = run_stage("sft", config)
    assert_learned(result)
    assert_servable(result.model_dir)


def test_sft_on_chat_rows_with_lora(base: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    rows = [{"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": question(i)}],
             "completion": [{"role": "assistant", "content": f"The answer is {i + 1}."}], "problem_id": f"p{i}"}
            for i in range(12)]
    config = make_config("sft", dataset=save(tmp_path, "chat", rows), base=base, out=tmp_path / "out", lora=True,
                         lora_rank=8, max_steps=30, **{**FAST, "learning_rate": 2e-2})
    [example], _ = sft_examples(rows[:1], HFTokenizer(base), config)
    assert example["input_ids"][: example["labels"].count(-100)] == HFTokenizer(base).chat_prompt(question(0), "S")
    result = run_stage("sft", config)
    assert_learned(result, factor=0.97)  # rank-8 adapters on a random model learn slowly
    assert_servable(result.model_dir)


def test_dpo_prefers_the_chosen_step(base: Path, tmp_path: Path) -> None:
    rows = []
    for i in range(12):  # per problem: a pair of first steps, and a pair after the chosen one
        rows += [{"prompt": question(i) + "\n\n", "chosen": f"{i} + 1\n\n", "rejected": f"{i} - 1\n\n",
                  "margin": 1.0, "problem_id": f"p{i}"},
                 {"prompt": question(i) + f"\n\n{i} + 1\n\n", "chosen": f"= {i + 1} ok\n\n",
                  "rejected": f"= {i + 1} no\n\n", "margin": 1.0, "problem_id": f"p{i}"}]
    config = make_config("dpo", dataset=save(tmp_path, "pairs", rows), base=base, out=tmp_path / "out",
                         max_steps=20, **FAST)
    reader = HFTokenizer(base)
    examples, _ = dpo_examples(rows[:2], reader, config)
    assert examples[0]["prompt_ids"] == reader.chat_prompt(question(0))
    assert examples[1]["prompt_ids"] == reader.chat_prompt(question(0)) + reader.encode("0 + 1\n\n")
    assert examples[1]["chosen_ids"] == reader.encode("= 1 ok\n\n")  # a step: no EOS after it
    result = run_stage("dpo", config)
    assert losses(result)[0] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at the start
    assert_learned(result)
    assert result.metrics["eval_after"]["eval_rewards/accuracies"] > 0.5
    assert_servable(result.model_dir)


# --- value ----------------------------------------------------------------------------------

def test_value_head_regresses_targets_on_the_pooling_prm_input(base: Path, tmp_path: Path) -> None:
    rows = []
    for i in range(12):
        rows += [{"prompt": question(i) + "\n\n", "completion": f"{i} + 1 ok\n\n", "value": 0.9, "problem_id": f"p{i}"},
                 {"prompt": question(i) + "\n\n", "completion": f"{i} + 1 ok\n\nthen {i} no\n\n", "value": 0.1,
                  "problem_id": f"p{i}"}]
    config = make_config("value", dataset=save(tmp_path, "value", rows), base=base, out=tmp_path / "out",
                         max_steps=30, **FAST)
    reader = HFTokenizer(base)
    examples, _ = value_examples(rows[:2], reader, config)
    pooling = PoolingPRM(_NoClient(), reader, mode="classify")  # type: ignore[arg-type]
    problem = Problem(id="p0", question=question(0))
    assert [e["input_ids"] for e in examples] == [pooling.classify_input(problem, ["0 + 1 ok"]),
                                                 pooling.classify_input(problem, ["0 + 1 ok", "then 0 no"])]
    result = run_stage("value", config)
    assert_learned(result)
    model = assert_servable(result.model_dir, AutoModelForSequenceClassification)
    assert model.config.num_labels == 1 and model.config.architectures == ["LlamaForSequenceClassification"]


def test_questions_are_recovered_from_plain_prompts() -> None:
    q = "First paragraph.\n\nSecond paragraph?"
    rows = [{"prompt": q + "\n\nA\n\n", "problem_id": "a"}, {"prompt": q + "\n\n", "problem_id": "a"},
            {"prompt": "Q\n\nS\n\n", "problem_id": "b", "question": "Q"}, {"prompt": "R\n\nS1\n\nS2"}]
    assert question_and_prefix(rows, "\n\n") == [(q, "A\n\n"), (q, ""), ("Q", "S\n\n"), ("R", "S1\n\nS2")]


# --- errors and the command line --------------------------------------------------------------

def test_bad_inputs_are_config_errors(base: Path, tmp_path: Path) -> None:
    pairs = save(tmp_path, "pairs", [{"prompt": "q", "chosen": "a", "rejected": "b", "problem_id": "p"}])
    with pytest.raises(ConfigError, match="lacks column"):
        run_stage("sft", make_config("sft", dataset=pairs, base=base, out=tmp_path / "o1"))
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(base / "config.json", bare)
    with pytest.raises(ConfigError, match="no chat template"):
        run_stage("sft", make_config("sft", dataset=pairs, base=bare, out=tmp_path / "o2"))
    with pytest.raises(ConfigError, match="would overwrite the dataset"):
        run_stage("sft", make_config("sft", dataset=pairs, base=base, out=pairs, resume=False))
    previous = shutil.copytree(base, tmp_path / "run" / "model")  # training on from a run's own result
    with pytest.raises(ConfigError, match="would overwrite the base"):
        run_stage("sft", make_config("sft", dataset=pairs, base=previous, out=tmp_path / "run", resume=False))
    assert pairs.is_dir() and previous.is_dir()
    with pytest.raises(ConfigError, match="beta"):
        make_config("sft", dataset=pairs, base=base, out=tmp_path / "o3", beta=0.1)
    with pytest.raises(ConfigError, match="stage"):
        make_config("ppo", dataset=pairs, base=base, out=tmp_path / "o4")


def test_cli_trains_a_stage_and_reruns_as_done(base: Path, tmp_path: Path) -> None:
    data, out = save(tmp_path, "sft", sft_rows()), tmp_path / "out"
    args = ["train", "sft", str(data), "--base", str(base), "--out", str(out), "--max-steps", "2", "--lr", "1e-3"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "model:" in first.output and (out / "model" / "model.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 2
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "already trained" in again.output
    bad = CliRunner().invoke(app, ["train", "ppo", str(data), "--base", str(base), "--out", str(out)])
    assert bad.exit_code == 2 and "stage" in bad.output


def test_cli_passes_prm_options_and_refuses_them_for_other_stages(base: Path, tmp_path: Path, monkeypatch) -> None:
    """`--train-layers` / `--no-balance` reach the PRM stage's config; on sft they are refused
    at the door (exit 2, the field named), before any training."""
    import training.train as train_pkg

    seen = {}

    def fake_run(stage, config):
        seen[stage] = config
        raise ConfigError("stop", None, "seen")

    monkeypatch.setattr(train_pkg, "run_stage", fake_run)
    data = save(tmp_path, "sft", sft_rows())
    out = CliRunner().invoke(app, ["train", "prm", str(data), "--base", str(base), "--out", str(tmp_path / "p"),
                                   "--train-layers", "2", "--no-balance"])
    assert out.exit_code == 2 and seen["prm"].train_layers == 2 and seen["prm"].balance is False, out.output
    bad = CliRunner().invoke(app, ["train", "sft", str(data), "--base", str(base), "--out", str(tmp_path / "s"),
                                   "--train-layers", "2"])
    assert bad.exit_code == 2 and "train_layers" in bad.output and "sft" not in seen, bad.output
