"""TransformersPolicy on the embedded checkpoint, in-process (no server).

Alphabetically before test_integration_models.py, so it runs before the session's vLLM
server starts competing for the CPU.
"""

from __future__ import annotations

import asyncio

import pytest

from search.protocols import Sampling

pytestmark = pytest.mark.integration

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now? Think step by step."


def test_transformers_policy_matches_vllm_semantics(embedded_checkpoint_dir, embedded_tokenizer):
    from models.transformers_backend import TransformersPolicy

    policy = TransformersPolicy(embedded_checkpoint_dir)
    prompt = embedded_tokenizer.chat_prompt(QUESTION)
    gen = asyncio.run(policy.propose(prompt, Sampling(n=2, temperature=0.9, max_tokens=24,
                                                      stop=("\n\n",), seed=5)))
    assert len(gen.proposals) == 2
    for p in gen.proposals:
        assert len(p.logprobs) == len(p.token_ids) and all(lp <= 0 for lp in p.logprobs)
        if p.finish_reason == "stop":
            assert p.text.endswith("\n\n") and "\n\n" not in p.text[:-2]
        elif p.finish_reason == "eos":
            assert p.token_ids[-1] == embedded_tokenizer.eos_token_id
        else:
            assert p.finish_reason == "length" and len(p.token_ids) == 24
    assert gen.usage.generated_tokens == sum(len(p.token_ids) for p in gen.proposals)
