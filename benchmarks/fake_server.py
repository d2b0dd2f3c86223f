"""A small OpenAI-compatible fake of a vLLM server, one process per replica (not vLLM).

``python -m benchmarks.fake_server --port P [--tokens-per-s R] [--latency-s L]`` serves
``/health``, ``/v1/models``, ``/v1/completions`` (token-id or text prompts, ``n`` choices,
``return_token_ids``, ``logprobs``, ``usage.prompt_tokens_details.cached_tokens``) and
``/reset_prefix_cache`` (POST, as vLLM's dev mode) and ``/metrics`` (``vllm:prefix_cache_queries_total`` / ``vllm:prefix_cache_hits_total`` and the
prompt / generation token counters, Prometheus text). A reply takes ``latency_s`` plus its
generated tokens at ``tokens_per_s``; its text is ``"tok{id} "`` per generated token id, the
last choice token ending a step with a blank line. Prefix caching is modelled in blocks of
``block_size`` tokens, as vLLM's is: a prompt's leading whole blocks seen before are hits.

It exists where the thing measured or tested is ponder's side: routing, recovery, the Ray
replicas' orchestration (tests), and the driver's ceiling (issue 26 §4). :func:`start_fake`
starts one and returns a :class:`~models.records.ServerRecord` like ``start_server`` does.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODEL = "fake"


class FakeEngine:
    """The fake's state: a block prefix cache and vLLM-named counters."""

    def __init__(self, tokens_per_s: float, latency_s: float, block_size: int) -> None:
        self.tokens_per_s, self.latency_s, self.block_size = tokens_per_s, latency_s, block_size
        self.blocks: set[bytes] = set()
        self.counters = {"vllm:prefix_cache_queries_total": 0, "vllm:prefix_cache_hits_total": 0,
                         "vllm:prompt_tokens_total": 0, "vllm:generation_tokens_total": 0,
                         "vllm:request_success_total": 0}
        self.lock = threading.Lock()

    def cached(self, ids: list[int]) -> int:
        """Tokens of ``ids`` found in the cache (whole leading blocks); caches the rest."""
        hit, digest, missed = 0, hashlib.blake2b(digest_size=16), False
        for start in range(0, len(ids) - len(ids) % self.block_size, self.block_size):
            digest.update(json.dumps(ids[start:start + self.block_size]).encode())
            key = digest.copy().digest()
            with self.lock:
                if not missed and key in self.blocks:
                    hit += self.block_size
                else:
                    missed = True
                    self.blocks.add(key)
        return hit

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        ids = [int(t) for t in prompt] if isinstance(prompt, list) else [ord(c) % 5000 for c in str(prompt)]
        n, max_tokens = int(body.get("n", 1)), int(body.get("max_tokens", 16))
        cached = self.cached(ids)
        gen = max(1, min(max_tokens, 4))
        time.sleep(self.latency_s + n * gen / self.tokens_per_s)
        choices = []
        for i in range(n):
            tokens = [(sum(ids) + 7 * i + k) % 30000 + 1000 for k in range(gen)]
            text = "".join(f"tok{t} " for t in tokens[:-1]) + "step.\n\n"
            choice: dict[str, Any] = {"index": i, "text": text, "token_ids": tokens, "finish_reason": "stop",
                                      "stop_reason": "\n\n"}
            choice["logprobs"] = {"token_logprobs": [-0.1] * gen, "top_logprobs": None,
                                  "text_offset": None, "tokens": None} if body.get("logprobs") is not None else None
            choices.append(choice)
        with self.lock:
            self.counters["vllm:prefix_cache_queries_total"] += len(ids)
            self.counters["vllm:prefix_cache_hits_total"] += cached
            self.counters["vllm:prompt_tokens_total"] += len(ids)
            self.counters["vllm:generation_tokens_total"] += n * gen
            self.counters["vllm:request_success_total"] += 1
        return {"id": "cmpl-fake", "object": "text_completion", "model": MODEL, "choices": choices,
                "usage": {"prompt_tokens": len(ids), "completion_tokens": n * gen,
                          "total_tokens": len(ids) + n * gen, "prompt_tokens_details": {"cached_tokens": cached}}}

    def metrics(self) -> str:
        with self.lock:
            return "".join(f'{k}{{model_name="{MODEL}"}} {v}\n' for k, v in self.counters.items())


def serve(port: int, host: str, engine: FakeEngine) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, payload: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/health":
                self._send(200, b"")
            elif self.path == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode())
            elif self.path == "/metrics":
                self._send(200, engine.metrics().encode(), "text/plain")
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/reset_prefix_cache":  # as vLLM's dev mode
                with engine.lock:
                    engine.blocks.clear()
                self._send(200, b"")
                return
            if self.path != "/v1/completions":
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            self._send(200, json.dumps(engine.complete(body)).encode())

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer((host, port), Handler).serve_forever()


def start_fake(settings: Any, *, tokens_per_s: float = 2000.0, latency_s: float = 0.005,
               timeout_s: float = 30.0) -> Any:
    """Starts a fake server on ``settings.host`` and a free port (ends with this process) and
    returns its :class:`~models.records.ServerRecord` once ``/health`` answers."""
    import httpx

    from models.records import ServerRecord
    from models.server import free_port, log_tail, state_dir

    port = settings.port or free_port(settings.host)
    log_path = state_dir() / "logs" / f"fake-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.fake_server", "--port", str(port), "--host", settings.host,
           "--tokens-per-s", str(tokens_per_s), "--latency-s", str(latency_s), "--parent", str(os.getpid())]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fake server exited with {proc.returncode}: {log_tail(log_path)}")
        try:
            if httpx.get(f"http://{host}:{port}/health", timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError(f"fake server on port {port} not healthy after {timeout_s} s")
    return ServerRecord(pid=proc.pid, port=port, model=MODEL, checkpoint="fake",
                        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                        host=settings.host, log_path=str(log_path))


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
    ap.add_argument("--tokens-per-s", type=float, default=2000.0)
    ap.add_argument("--latency-s", type=float, default=0.005)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    args = ap.parse_args()
    if args.parent:
        threading.Thread(target=_exit_with, args=(args.parent,), daemon=True).start()
    serve(args.port, args.host, FakeEngine(args.tokens_per_s, args.latency_s, args.block_size))


if __name__ == "__main__":
    main()
