"""A small OpenAI-compatible fake of a vLLM server, one process per replica (not vLLM).

``python -m benchmarks.fake_server --port P [--tokens-per-s R] [--latency-s L] ...`` serves
``/health``, ``/v1/models``, ``/v1/completions`` (token-id or text prompts, ``n`` choices,
``return_token_ids``, ``logprobs``, ``usage.prompt_tokens_details.cached_tokens``),
``/reset_prefix_cache`` (POST, as vLLM's dev mode) and ``/metrics`` (Prometheus text:
``vllm:prefix_cache_queries_total`` / ``vllm:prefix_cache_hits_total``, the prompt /
generation / request counters, and ``fake:busy_seq_seconds_total`` with the
``fake:max_num_seqs`` gauge, from which a benchmark reads the share of the replica's capacity
it used, and ``fake:connections_total``, the connections clients opened).

The replica is modelled as vLLM's continuous batching is, coarsely: at most ``max_num_seqs``
sequences run at once (a request of ``n`` choices takes ``n``; the rest wait in FIFO order),
and a request takes ``latency_s`` + its prompt tokens *not* in the prefix cache at
``prefill_tokens_per_s`` + its longest choice's tokens at ``tokens_per_s`` (one sequence's
decode speed). Its capacity is so ``max_num_seqs`` sequence-seconds per second. Prefix caching
is modelled in blocks of ``block_size`` tokens, as vLLM's is: a prompt's leading whole blocks
seen before are hits; at most ``cache_blocks`` blocks are kept (least recently used go first;
0: no prefix cache).

A reply's choices are steps: with ``--steps-file`` (JSON ``{"steps": [{"text", "token_ids",
"offsets", "eos"}]}``, token ids that decode to the text with the policy's tokenizer), a step
drawn from that pool by the prompt, the seed and the choice's index (an ``eos`` step is an
answer: ``finish_reason: stop`` with no stop string, as vLLM reports the EOS token); without
one, ``"tok{id} "`` per generated token id, the last ending a step with a blank line.

It exists where the thing measured or tested is ponder's side: routing, recovery, the Ray
replicas' orchestration (tests), and the driver's ceiling (issue 26 §4, ``ponder bench
driver``). The HTTP/1.1 is h11's (httpx's own parser) on asyncio streams, so one process
answers thousands of requests a second on one core. :func:`start_fake` starts one and returns
a :class:`~models.records.ServerRecord` like ``start_server`` does; :func:`start_fakes` many.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import h11

MODEL = "fake"


@dataclasses.dataclass(frozen=True)
class Replica:
    """What one fake replica is like (every field a command-line option of the server)."""

    tokens_per_s: float = 2000.0
    """One sequence's decode speed, tokens per second."""
    latency_s: float = 0.005
    """Fixed seconds per request (scheduling, the first token)."""
    max_num_seqs: int = 256
    """Sequences decoded at once; more wait."""
    prefill_tokens_per_s: float = 0.0
    """Prompt tokens computed per second (those not in the prefix cache); 0: free."""
    block_size: int = 16
    cache_blocks: int = 1_000_000
    """Prefix-cache blocks kept (LRU); 0: no prefix caching."""
    steps_file: str | None = None

    def args(self) -> list[str]:
        out = ["--tokens-per-s", str(self.tokens_per_s), "--latency-s", str(self.latency_s),
               "--max-num-seqs", str(self.max_num_seqs), "--prefill-tokens-per-s", str(self.prefill_tokens_per_s),
               "--block-size", str(self.block_size), "--cache-blocks", str(self.cache_blocks)]
        return out + (["--steps-file", self.steps_file] if self.steps_file else [])


class FakeEngine:
    """The fake's state: the sequence slots, a block prefix cache and vLLM-named counters."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.block_size = replica.block_size
        self.blocks: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.steps: list[dict[str, Any]] = []
        if replica.steps_file:
            self.steps = json.loads(Path(replica.steps_file).read_text())["steps"]
        self.counters: dict[str, float] = {
            "vllm:prefix_cache_queries_total": 0, "vllm:prefix_cache_hits_total": 0,
            "vllm:prompt_tokens_total": 0, "vllm:generation_tokens_total": 0,
            "vllm:request_success_total": 0, "fake:busy_seq_seconds_total": 0.0, "fake:connections_total": 0}
        self.running = 0
        self.waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    # -- the prefix cache -------------------------------------------------------------------
    def cached(self, ids: list[int]) -> int:
        """Tokens of ``ids`` found in the cache (whole leading blocks); caches the rest."""
        if self.replica.cache_blocks <= 0:
            return 0
        hit, key, missed, bs = 0, 0, False, self.block_size
        for start in range(0, len(ids) - len(ids) % bs, bs):
            key = hash((key, *ids[start:start + bs]))
            if not missed and key in self.blocks:
                hit += bs
                self.blocks.move_to_end(key)
            else:
                missed = True
                self.blocks[key] = None
        while len(self.blocks) > self.replica.cache_blocks:
            self.blocks.popitem(last=False)
        return hit

    # -- the batch --------------------------------------------------------------------------
    async def _admit(self, n: int) -> None:
        cap = self.replica.max_num_seqs
        if not self.waiting and (self.running + n <= cap or self.running == 0):
            self.running += n
            return
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((n, future))
        await future  # _release admitted it (and counted it running)

    def _release(self, n: int) -> None:
        self.running -= n
        cap = self.replica.max_num_seqs
        while self.waiting and (self.running + self.waiting[0][0] <= cap or self.running == 0):
            k, future = self.waiting.popleft()
            self.running += k
            future.set_result(None)

    # -- a completion -----------------------------------------------------------------------
    def _choice(self, ids: list[int], i: int, max_tokens: int, seed: int, logprobs: bool) -> dict[str, Any]:
        if self.steps:
            tail = ids[-8:]
            step = self.steps[zlib.crc32(repr((tail, len(ids), seed, i)).encode()) % len(self.steps)]
            tokens, text, offsets = list(step["token_ids"]), step["text"], list(step["offsets"])
            finish, stop = "stop", (None if step["eos"] else "\n\n")
            if len(tokens) > max_tokens:
                cut = offsets[max_tokens] if max_tokens < len(offsets) else len(text)
                tokens, text, offsets, finish, stop = tokens[:max_tokens], text[:cut], offsets[:max_tokens], \
                    "length", None
        else:
            gen = max(1, min(max_tokens, 4))
            tokens = [(sum(ids) + 7 * i + k) % 30000 + 1000 for k in range(gen)]
            pieces = [f"tok{t} " for t in tokens[:-1]] + ["step.\n\n"]
            text = "".join(pieces)
            offsets = [sum(len(p) for p in pieces[:k]) for k in range(len(pieces))]
            finish, stop = "stop", "\n\n"
        choice: dict[str, Any] = {"index": i, "text": text, "token_ids": tokens, "finish_reason": finish,
                                  "stop_reason": stop, "logprobs": None}
        if logprobs:
            ends = offsets[1:] + [len(text)]
            pieces = [text[a:b] for a, b in zip(offsets, ends, strict=True)]
            choice["logprobs"] = {"token_logprobs": [-0.1] * len(tokens), "tokens": pieces,
                                  "text_offset": offsets, "top_logprobs": [{p: -0.1} for p in pieces]}
        return choice

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        ids = [int(t) for t in prompt] if isinstance(prompt, list) else [ord(c) % 5000 for c in str(prompt)]
        n, max_tokens = int(body.get("n", 1)), int(body.get("max_tokens", 16))
        seed = int(body.get("seed") or 0)
        choices = [self._choice(ids, i, max_tokens, seed, body.get("logprobs") is not None) for i in range(n)]
        generated = sum(len(c["token_ids"]) for c in choices)
        longest = max(len(c["token_ids"]) for c in choices)
        await self._admit(n)
        try:
            cached = self.cached(ids)  # when it runs, as vLLM looks its blocks up then
            r = self.replica
            seconds = r.latency_s + longest / r.tokens_per_s
            if r.prefill_tokens_per_s > 0:
                seconds += (len(ids) - cached) / r.prefill_tokens_per_s
            await asyncio.sleep(seconds)
        finally:
            self._release(n)
        c = self.counters
        c["vllm:prefix_cache_queries_total"] += len(ids)
        c["vllm:prefix_cache_hits_total"] += cached
        c["vllm:prompt_tokens_total"] += len(ids)
        c["vllm:generation_tokens_total"] += generated
        c["vllm:request_success_total"] += 1
        c["fake:busy_seq_seconds_total"] += n * seconds
        return {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()), "model": MODEL,
                "choices": choices,
                "usage": {"prompt_tokens": len(ids), "completion_tokens": generated,
                          "total_tokens": len(ids) + generated, "prompt_tokens_details": {"cached_tokens": cached}}}

    def metrics(self) -> str:
        lines = [f'{k}{{model_name="{MODEL}"}} {v}' for k, v in self.counters.items()]
        lines += [f'fake:max_num_seqs{{model_name="{MODEL}"}} {self.replica.max_num_seqs}',
                  f'vllm:num_requests_running{{model_name="{MODEL}"}} {self.running}',
                  f'vllm:num_requests_waiting{{model_name="{MODEL}"}} {len(self.waiting)}']
        return "\n".join(lines) + "\n"

    # -- HTTP -------------------------------------------------------------------------------
    async def route(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if method == "GET" and path == "/health":
            return 200, "application/json", b""
        if method == "GET" and path == "/v1/models":
            return 200, "application/json", json.dumps(
                {"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
        if method == "GET" and path == "/metrics":
            return 200, "text/plain", self.metrics().encode()
        if method == "POST" and path == "/reset_prefix_cache":  # as vLLM's dev mode
            self.blocks.clear()
            return 200, "application/json", b""
        if method == "POST" and path == "/v1/completions":
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                return 400, "application/json", b'{"error": {"message": "body is not JSON"}}'
            return 200, "application/json", json.dumps(await self.complete(request)).encode()
        return 404, "application/json", b'{"error": {"message": "not found"}}'

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: requests in turn (keep-alive), parsed by h11."""
        conn = h11.Connection(h11.SERVER)
        self.counters["fake:connections_total"] += 1
        method = path = ""
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    method, path, body = event.method.decode(), event.target.decode(), bytearray()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    status, kind, payload = await self.route(method, path, bytes(body))
                    out = conn.send(h11.Response(status_code=status, headers=[
                        ("Content-Type", kind), ("Content-Length", str(len(payload)))]))
                    writer.write(out + conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                else:  # ConnectionClosed, PAUSED
                    break
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def serve(port: int, host: str, engine: FakeEngine) -> None:
    server = await asyncio.start_server(engine.handle, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def _spawn(settings: Any, replica: Replica, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    from models.server import state_dir

    log_path = state_dir() / "logs" / f"fake-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.fake_server", "--port", str(port), "--host", settings.host,
           "--parent", str(os.getpid()), *replica.args()]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, log_path


def start_fakes(settings: Any, count: int, replica: Replica | None = None, *, timeout_s: float = 60.0) -> list[Any]:
    """Starts ``count`` fake servers at once on ``settings.host`` (free ports; each ends with
    this process) and returns their :class:`~models.records.ServerRecord` s once each
    ``/health`` answers."""
    import httpx

    from models.records import ServerRecord
    from models.server import free_port, log_tail

    replica = replica or Replica()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    taken: set[int] = set()

    def new_port() -> int:  # a port not given to another of these (free_port may hand one out twice)
        while (port := free_port(settings.host)) in taken:
            pass
        taken.add(port)
        return port

    started = []
    for _ in range(count):
        port = settings.port if (settings.port and count == 1) else new_port()
        started.append((port, *_spawn(settings, replica, port)))
    deadline = time.monotonic() + timeout_s
    pending = list(started)
    rebinds = 0
    try:
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake servers on ports {[p for p, _, _ in pending]} not healthy after "
                                   f"{timeout_s} s")
            for item in list(pending):
                port, proc, log_path = item
                if proc.poll() is not None:
                    if "address already in use" in log_tail(log_path, 3) and rebinds < count:  # taken meanwhile
                        rebinds += 1
                        port = new_port()
                        fresh = (port, *_spawn(settings, replica, port))
                        started[started.index(item)] = fresh
                        pending[pending.index(item)] = fresh
                        continue
                    raise RuntimeError(f"fake server exited with {proc.returncode}: {log_tail(log_path)}")
                try:
                    if httpx.get(f"http://{host}:{port}/health", timeout=1.0).status_code == 200:
                        pending.remove(item)
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
    except BaseException:
        for _, proc, _ in started:
            proc.kill()
        raise
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return [ServerRecord(pid=proc.pid, port=port, model=MODEL, checkpoint="fake", started_at=now,
                         host=settings.host, log_path=str(log_path)) for port, proc, log_path in started]


def start_fake(settings: Any, *, tokens_per_s: float = 2000.0, latency_s: float = 0.005,
               timeout_s: float = 30.0, replica: Replica | None = None) -> Any:
    """Starts a fake server on ``settings.host`` and a free port (ends with this process) and
    returns its :class:`~models.records.ServerRecord` once ``/health`` answers."""
    replica = replica or Replica(tokens_per_s=tokens_per_s, latency_s=latency_s)
    return start_fakes(settings, 1, replica, timeout_s=timeout_s)[0]


def _exit_with(parent: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except OSError:
            os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    d = Replica()
    ap.add_argument("--tokens-per-s", type=float, default=d.tokens_per_s)
    ap.add_argument("--latency-s", type=float, default=d.latency_s)
    ap.add_argument("--max-num-seqs", type=int, default=d.max_num_seqs)
    ap.add_argument("--prefill-tokens-per-s", type=float, default=d.prefill_tokens_per_s)
    ap.add_argument("--block-size", type=int, default=d.block_size)
    ap.add_argument("--cache-blocks", type=int, default=d.cache_blocks)
    ap.add_argument("--steps-file", default=None)
    ap.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    args = ap.parse_args()
    if args.parent:
        threading.Thread(target=_exit_with, args=(args.parent,), daemon=True).start()
    replica = Replica(args.tokens_per_s, args.latency_s, args.max_num_seqs, args.prefill_tokens_per_s,
                      args.block_size, args.cache_blocks, args.steps_file)
    asyncio.run(serve(args.port, args.host, FakeEngine(replica)))


if __name__ == "__main__":
    main()
