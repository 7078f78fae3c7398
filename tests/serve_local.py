"""An OpenAI-compatible server on 127.0.0.1 over ealign's local backend, for tests: a real base model
and real PEFT adapters served by name, as `vllm serve BASE --enable-lora --lora-modules NAME=PATH ...`
serves them. A request's `model` picks the base (its served name) or an adapter; any other name is a
404, as vLLM answers it.

What ealign's endpoint client uses is implemented: GET /v1/models and POST /v1/chat/completions
(greedy or seeded sampling through the local sampler, usage counts, and the first reply token's
top log-probabilities for `logprobs` requests of one token). The server holds its own copy of the
weights, as a separate server process does: adapters attached in the test process under the same
names never reach it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from ealign_dagster.core.chat import LocalChat, Request, load_chat
from ealign_dagster.core.config import ModelConfig
from ealign_dagster.core.paths import Home
from tests.fake_endpoint import Served

MAX_LOGPROBS = 20  # vLLM's default --max-logprobs


def parse_lora_modules(args: list[str]) -> dict[str, str]:
    """vLLM's `--lora-modules` values (`name=path` each; a shell passes them as separate words) as
    {name: path}; a name given twice is refused, as vLLM refuses to load it twice."""
    out: dict[str, str] = {}
    for arg in args:
        name, sep, path = arg.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--lora-modules: '{arg}' is not NAME=PATH")
        if name in out:
            raise ValueError(f"--lora-modules: the adapter '{name}' is given twice")
        out[name] = path
    return out


def _own_weights(cfg: ModelConfig, home: Home) -> LocalChat:
    """A LocalChat with weights of its own: LocalChat shares loaded models within a process."""
    shared = LocalChat._loaded
    LocalChat._loaded = {}
    try:
        return load_chat(cfg, home)
    finally:
        LocalChat._loaded = shared


class LocalServer(Served):
    """`with LocalServer(cfg, home, "tiny", {"virtue-broad": path}) as s:` then point an OpenAI client
    at `s.url`. cfg: the local model (the profile's student); served_model_name: the base's name."""

    def __init__(self, cfg: ModelConfig, home: Home, served_model_name: str, lora_modules: dict[str, str]):
        if served_model_name in lora_modules:
            raise ValueError(f"--lora-modules: '{served_model_name}' is the base model's name")
        self.chat = _own_weights(cfg.model_copy(update={"backend": "local"}), home)
        for name, path in lora_modules.items():
            self.chat.attach(name, path)
        self.base = served_model_name
        self.roots = {served_model_name: self.chat.path, **lora_modules}
        self.asked: list[str] = []  # the `model` of every chat completion request, in order
        self.lock = threading.Lock()  # one request at a time on the model
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass

            def _error(self, code: int, kind: str, message: str, param: str | None = None):
                self._send(code, {"error": {"message": message, "type": kind, "param": param, "code": code}})

            def do_GET(self):
                if self.path.rstrip("/") != "/v1/models":
                    return self._send(404, {"detail": "Not Found"})
                self._send(200, {"object": "list", "data": server.model_cards()})

            def do_POST(self):
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"detail": "Not Found"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model = body.get("model")
                with server.lock:
                    server.asked.append(model)
                if model not in server.roots:
                    return self._error(404, "NotFoundError", f"The model `{model}` does not exist.", "model")
                try:
                    self._send(200, server.complete(body))
                except ValueError as e:
                    self._error(400, "BadRequestError", str(e))
                except Exception as e:  # a bug here, said to the client instead of a dropped connection
                    self._error(500, "InternalServerError", f"{type(e).__name__}: {e}")

        self.serve(Handler)

    def model_cards(self) -> list[dict]:
        """vLLM's /v1/models: the base (root: its weights) and each adapter (root: its folder, parent: the base)."""
        return [{"id": name, "object": "model", "created": 0, "owned_by": "vllm", "root": root,
                 "parent": None if name == self.base else self.base, "permission": []}
                for name, root in self.roots.items()]  # fmt: skip

    def complete(self, body: dict) -> dict:
        """One chat completion from the local backend (ValueError: a request vLLM would refuse, or
        one this server does not implement)."""
        model = body["model"]
        adapter = None if model == self.base else model
        if body.get("n", 1) != 1 or body.get("stream"):
            raise ValueError("this server answers n=1 without streaming")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 256
        temperature = 1.0 if body.get("temperature") is None else float(body["temperature"])
        top_p = 1.0 if body.get("top_p") is None else float(body["top_p"])
        seed = int(body["seed"]) if body.get("seed") is not None else time.monotonic_ns()
        req = Request.chat(body["messages"], max_new_tokens=max_tokens, temperature=temperature, top_p=top_p,
                           seed=seed, adapter=adapter)  # fmt: skip
        logprobs = None
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            if k > MAX_LOGPROBS:
                raise ValueError(f"top_logprobs must be at most {MAX_LOGPROBS}, got {k}")
            if max_tokens != 1 or temperature != 0:
                raise ValueError("this server returns log-probabilities for one greedy token only")
        with self.lock:
            _, (result,) = next(iter(self.chat.generate_batches([req])))
            if body.get("logprobs"):
                top = self.chat.next_token_logprobs([body["messages"]], max(k, 1), adapter=adapter)[0]
                ranked = sorted(top.items(), key=lambda kv: -kv[1])
                entries = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked]
                logprobs = {"content": [{**entries[0], "top_logprobs": entries[:k]}]}
        finish = "length" if result.completion_tokens >= max_tokens else "stop"
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }
            ],  # fmt: skip
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },  # fmt: skip
        }
