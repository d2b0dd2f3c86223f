"""Async client for vLLM's OpenAI-compatible ``/v1/completions``, and the Policy built on it.

Prompts are sent as token ids (``prompt: list[int]``) so that every expansion of a node
reuses the server's prefix cache exactly; the reply's token ids come back too
(``return_token_ids``), so a child's prefix is ``parent prefix + step token ids`` with no
re-tokenisation. Requests are spread over one or more endpoints (replicas) that a shared
:class:`~models.breaker.CircuitBreaker` keeps track of: a problem's requests stay on the
replica it was bound to (``routing="tree"``, :mod:`models.routing`), or each goes to the
least-loaded one (``routing="request"``).

Two kinds of failure are kept apart. A permanent one (HTTP 4xx such as a context overflow,
a malformed reply) raises :class:`~search.protocols.ModelServerError` at once: the search
marks that node errored and goes on. A transient one is the engine's: timeouts, 429 and 5xx
are retried with exponential backoff; an endpoint that does not answer at all (connection
refused or reset), or still fails after ``max_retries``, is reported to the breaker, which
takes it out of rotation and recovers it (restarts a server ponder owns, waits for an
external one) while the request waits and is then re-issued. Only when recovery fails does
the request raise :class:`~search.protocols.EngineFault`.

Nothing from httpx or vLLM leaves this module: replies become :class:`Completion` /
:class:`~search.protocols.Generation`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from models.breaker import CircuitBreaker, EndpointState, EventFn, RestartFn
from models.completion import (  # re-exported: the parsed reply types belong with the client
    Completion,
    error_message,
    finish_reason,  # noqa: F401
    parse_completion,
    parse_usage,  # noqa: F401
)
from models.pools import Pools
from models.routing import Router, RoutingMode
from search.protocols import (
    ConfigError,
    EngineFault,
    ModelServerError,
    problem_affinity,
)

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def normalize_endpoint(url: str) -> str:
    """``host:port``, ``http://host:port/`` or ``.../v1`` -> ``http://host:port`` (no /v1)."""
    url = url.strip().rstrip("/")
    if not url:
        raise ConfigError("endpoints", url, "empty endpoint URL")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


class VLLMClient:
    """Async client for one or more vLLM OpenAI-compatible servers serving the same model.

    Requests to an endpoint go through up to ``max_connections`` keep-alive connections, each
    one request at a time (:mod:`models.pools`; created on first use, in the running event loop);
    call :meth:`aclose` (or use ``async with``) when done.

    Args:
        endpoints: Base URLs (``http://host:port``; a trailing ``/v1`` is accepted).
        model: The served model name sent with every request.
        timeout: Seconds allowed per request (read/write/pool); connecting gets at most 10 s.
        max_retries: Extra attempts after a transient failure before the endpoint is
            reported to the breaker (0 = report at the first failure).
        backoff_s: First backoff in seconds; doubles per retry, capped at ``backoff_max_s``.
        max_connections: Connections per endpoint (>= the concurrency you run at).
        restart_fns: Endpoint -> restart function, for servers ponder owns (see
            :mod:`models.managed`); other endpoints are external and waited for.
        max_restarts: Restarts of owned servers allowed over the client's life.
        outage_timeout_s: How long to wait for an external endpoint to answer again.
        on_event: Receives the breaker's outage / restart / recovered / failed events, and a
            ``reissued`` event for each request sent again after its endpoint was taken out, and a
            ``moved`` event when tree routing moves a problem off its replica.
        routing: ``tree``: the requests of one problem (the scheduler's
            :data:`~search.protocols.problem_affinity`) go to one replica while it is up and
            not saturated; ``request``: each request to the least-loaded replica.
        rebind_factor: Tree routing moves a problem off a replica holding this many times the
            mean requests in flight (see :mod:`models.routing`).
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        model: str,
        *,
        timeout: float = 300.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_connections: int = 256,
        restart_fns: Mapping[str, RestartFn] | None = None,
        max_restarts: int = 5,
        outage_timeout_s: float = 300.0,
        on_event: EventFn | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        routing: RoutingMode = "tree",
        rebind_factor: float = 2.0,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ConfigError("endpoints", list(endpoints), "at least one endpoint is needed")
        if timeout <= 0:
            raise ConfigError("timeout", timeout, "must be > 0 seconds")
        if max_retries < 0:
            raise ConfigError("max_retries", max_retries, "must be >= 0")
        if max_connections < 1:
            raise ConfigError("max_connections", max_connections, "must be >= 1")
        self.endpoints: tuple[str, ...] = tuple(normalize_endpoint(e) for e in endpoints)
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_connections = max_connections
        self.pools = Pools(timeout, max_connections, transport)
        self._in_flight = dict.fromkeys(self.endpoints, 0)
        self.router = Router(routing, rebind_factor=rebind_factor)
        self.on_event = on_event
        self.requests_sent = dict.fromkeys(self.endpoints, 0)
        """Attempts sent to each endpoint (retries included); for tests and reports."""
        self.breaker = CircuitBreaker(
            self.endpoints,
            self._probe,
            restart_fns={normalize_endpoint(k): v for k, v in (restart_fns or {}).items()},
            max_restarts=max_restarts,
            outage_timeout_s=outage_timeout_s,
            on_event=on_event,
        )

    # -- plumbing -------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client of the running event loop for probes and metrics (created on
        first use); completions go through lanes (:mod:`models.pools`)."""
        return self.pools.http

    async def aclose(self) -> None:
        """Stops recoveries in progress and closes the connection pools."""
        self.breaker.close()
        await self.pools.aclose()

    async def __aenter__(self) -> VLLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _pick(self, live: list[EndpointState]) -> EndpointState:
        """The live endpoint for a request of the running problem (see :mod:`models.routing`);
        a problem moved off its replica is a ``moved`` event."""
        affinity = problem_affinity.get()
        choice = self.router.pick(live, self._in_flight, affinity)
        if self.router.last_move is not None and affinity is not None and self.on_event is not None:
            source, reason = self.router.last_move
            self.on_event({"event": "moved", "problem": affinity.key, "endpoint": source, "to": choice.name,
                           "reason": reason, "time": time.time()})
        return choice

    async def _probe(self, url: str) -> bool:
        try:
            r = await self.http.get(url + "/health", timeout=10.0)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    async def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None,
                      *, endpoint: str | None = None) -> tuple[Any, str, float]:
        """Sends one JSON request; returns ``(json body, endpoint, seconds)``.

        Transient failures are retried with backoff; an unreachable or persistently failing
        endpoint goes to the breaker and the request waits for a live one, then is re-issued.
        ``endpoint`` pins the request to one server (no spreading).

        Raises:
            ModelServerError: a permanent failure (4xx, malformed reply): a node-level one.
            EngineFault: the endpoint(s) could not be recovered, or the request kept failing
                on a server that answers its health checks.
        """
        pinned = normalize_endpoint(endpoint) if endpoint is not None else None
        failures = trips = 0
        while True:
            state = await self.breaker.acquire(self._pick, pinned)
            generation = state.generation
            try:
                return await self._request_once(method, path, payload, state)
            except ModelServerError as e:
                if not e.retryable:
                    raise
                failures += 1
                if not e.unreachable and failures <= self.max_retries:
                    await asyncio.sleep(min(self.backoff_s * 2 ** (failures - 1), self.backoff_max_s))
                    continue
                if not e.unreachable:
                    trips += 1
                    if trips > 2:  # recovered twice and it still fails: not an outage
                        raise EngineFault(state.name, f"request keeps failing on a live server: {e.cause}") from e
                self.breaker.report(state, generation, e.cause)
                failures = 0
                if self.on_event is not None:  # sent again below, to whichever replica is up
                    affinity = problem_affinity.get()
                    self.on_event({"event": "reissued", "endpoint": state.name, "path": path,
                                   "problem": affinity.key if affinity is not None else None,
                                   "time": time.time()})

    async def _request_once(self, method: str, path: str, payload: Mapping[str, Any] | None,
                            state: EndpointState) -> tuple[Any, str, float]:
        endpoint = state.name
        url = state.url + path
        self._in_flight[endpoint] += 1
        self.requests_sent[endpoint] += 1
        lane = self.pools.lease(endpoint)
        started = time.perf_counter()
        try:
            response = await lane[0].request(method, url, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                httpx.WriteError) as e:  # nobody answered, or the connection died under the request
            raise ModelServerError(url, f"{type(e).__name__}: {e or 'connection failed'}",
                                   retryable=True, unreachable=True) from e
        except httpx.TimeoutException as e:
            raise ModelServerError(url, f"timed out ({type(e).__name__})", retryable=True) from e
        except httpx.TransportError as e:
            raise ModelServerError(url, f"{type(e).__name__}: {e or 'transport error'}",
                                   retryable=True) from e
        finally:
            self._in_flight[endpoint] -= 1
            self.pools.release(endpoint, lane)
        seconds = time.perf_counter() - started
        if response.status_code >= 400:
            raise ModelServerError(
                url,
                f"HTTP {response.status_code}: {error_message(response.text, response.reason_phrase)}",
                retryable=response.status_code in _RETRYABLE_STATUS,
            )
        try:
            body = response.json() if response.content else None
        except json.JSONDecodeError as e:
            raise ModelServerError(url, f"reply is not JSON: {response.text[:200]!r}",
                                   retryable=False) from e
        return body, endpoint, seconds

    # -- API ------------------------------------------------------------------------------

    async def complete(
        self,
        prompt: Sequence[int] | str,
        *,
        n: int = 1,
        max_tokens: int = 128,
        temperature: float = 0.7,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        include_stop_str_in_output: bool = True,
        logprobs: int | None = 0,
        seed: int | None = None,
        tokens_as_ids: bool = False,
        extra: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> Completion:
        """One ``/v1/completions`` request.

        Args:
            prompt: Token ids (preferred: exact prefix-cache reuse) or text.
            n: Number of completions to sample from the prompt.
            max_tokens: Maximum generated tokens per completion.
            temperature: Sampling temperature (0 = greedy).
            top_p: Nucleus sampling mass in (0, 1].
            stop: Stop strings (e.g. a blank line ``"\\n\\n"`` ends a step).
            include_stop_str_in_output: Keep the stop string at the end of the text.
            logprobs: Top alternatives per token (0: only the sampled token's logprob;
                None: no logprobs).
            seed: Per-request sampling seed.
            tokens_as_ids: Key ``top_logprobs`` by token id instead of token text.
            extra: Further vLLM request fields (e.g. ``{"logprob_token_ids": [...]}``).
            endpoint: Pin the request to this endpoint instead of spreading.
        """
        if isinstance(prompt, str):
            prompt_field: str | list[int] = prompt
        else:
            prompt_field = [int(t) for t in prompt]
            if not prompt_field:
                raise ConfigError("prompt", prompt_field, "an empty token-id prompt")
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt_field,
            "n": n,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stop": list(stop),
            "include_stop_str_in_output": include_stop_str_in_output,
            "return_token_ids": True,
        }
        if logprobs is not None:
            payload["logprobs"] = logprobs
            if tokens_as_ids:
                payload["return_tokens_as_token_ids"] = True
        if seed is not None:
            payload["seed"] = seed
        if extra:
            payload.update(extra)
        body, used, seconds = await self.request("POST", "/v1/completions", payload,
                                                 endpoint=endpoint)
        return parse_completion(body, endpoint=used, wall_seconds=seconds,
                                tokens_as_ids=tokens_as_ids)

    async def health(self) -> dict[str, bool]:
        """``GET /health`` on every endpoint (no retries): endpoint -> healthy."""

        results = await asyncio.gather(*(self._probe(self.breaker.url(e)) for e in self.endpoints))
        return dict(zip(self.endpoints, results, strict=True))

    async def metrics(self, endpoint: str | None = None) -> str:
        """The Prometheus text of ``GET /metrics`` on one endpoint (default: the first)."""
        url = self.breaker.url(normalize_endpoint(endpoint or self.endpoints[0])) + "/metrics"
        try:
            r = await self.http.get(url, timeout=10.0)
        except httpx.HTTPError as e:
            raise ModelServerError(url, f"{type(e).__name__}: {e}", retryable=True) from e
        if r.status_code != 200:
            raise ModelServerError(url, f"HTTP {r.status_code}", retryable=r.status_code >= 500)
        return r.text


async def served_model(endpoint: str, *, timeout: float = 10.0) -> str:
    """The id of the first model that ``endpoint`` serves (``GET /v1/models``).

    Raises:
        ModelServerError: the endpoint is unreachable or lists no model.
    """
    probe = VLLMClient(endpoint, model="", timeout=timeout, max_retries=1, outage_timeout_s=timeout)
    try:
        body, used, _ = await probe.request("GET", "/v1/models")
    finally:
        await probe.aclose()
    try:
        return str(body["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise ModelServerError(used, f"/v1/models lists no model: {body!r}", retryable=False) from None
