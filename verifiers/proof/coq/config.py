"""Settings of :class:`~verifiers.proof.coq.env.CoqEnv`, and whether Coq can run here."""

from __future__ import annotations

import shutil

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import PonderError

DEFAULT_PREAMBLE = ("Require Import Arith.", "Require Import Bool.", "Require Import List.",
                    "Import ListNotations.", "Require Import Lia.")


class CoqUnavailable(PonderError):
    """``coqidetop`` / ``coqc`` are not installed (``apt-get install coq``)."""


class CoqConfig(BaseModel):
    """Settings of :class:`CoqEnv`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coqidetop: str = Field("", description="coqidetop executable; empty: coqidetop, else coqidetop.opt, on PATH.")
    coqc: str = Field("coqc", description="coqc executable (final checks).")
    coq_args: tuple[str, ...] = Field((), description="Extra arguments for coqidetop and coqc, e.g. a user "
                                                      "file's load path: ['-Q', 'theories', 'MyLib'].")
    num_workers: int = Field(2, ge=1, le=64, description="coqidetop worker processes.")
    tactic_timeout_s: float = Field(5.0, gt=0, description="Per-tactic limit (Coq's own Timeout) in seconds.")
    kill_grace_s: float = Field(2.0, gt=0, description="Seconds past the tactic limit before the worker is killed.")
    inner_timeout: bool = Field(True, description="Wrap tactics in Coq's Timeout (off: only the hard kill).")
    context_timeout_s: float = Field(300.0, gt=0, description="Limit for loading a theorem's context (its "
                                                              "file's text before it) into a worker, in seconds.")
    check_timeout_s: float = Field(120.0, gt=0, description="Limit for each coqc run of the final check in "
                                                            "seconds (process group killed past it).")
    preamble: tuple[str, ...] = Field(DEFAULT_PREAMBLE, description="Trusted sentences loaded before every "
                                                                    "built-in theorem (a file's lemmas use the file).")
    allowed_assumptions: tuple[str, ...] = Field((), description="Assumptions the final check accepts besides "
                                                 "those a lemma's file declares (a name or a qualified suffix, "
                                                 "e.g. Classical_Prop.classic).")


def coqidetop_path(config: CoqConfig) -> str | None:
    if config.coqidetop:
        return shutil.which(config.coqidetop)
    return shutil.which("coqidetop") or shutil.which("coqidetop.opt")


def coq_available(config: CoqConfig | None = None) -> str | None:
    """None when Coq can run here, else why not."""
    cfg = config or CoqConfig()
    missing = [exe for exe, path in ((cfg.coqidetop or "coqidetop", coqidetop_path(cfg)),
                                     (cfg.coqc, shutil.which(cfg.coqc))) if path is None]
    return f"{', '.join(missing)} not found (install Coq: apt-get install -y coq)" if missing else None
