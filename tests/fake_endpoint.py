"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: scripted failures, counted requests.
Its answers are scripted, not a model's, so it cannot tell adapters apart: a real model with PEFT
adapters served by name is tests/serve_local.py."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ealign_dagster.core.chat import CANARY_PROMPTS


class Served:
    """An HTTP server on 127.0.0.1 (a free port) in a daemon thread while the `with` block runs."""

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Endpoint(Served):
    def __init__(self):
        self.script: list = []  # per request, in order: 200 | 429 | 500 | 404 | ("sleep", s)
        self.reply = None  # optional: request body -> reply text
        # optional: request body -> {token: logprob} or [(token, logprob), ...] (the first one is the reply's
        # token), the top log-probabilities of the first reply token
        self.top_logprobs = None
        self.requests: list[dict] = []
        # What is served: the answers to the canary prompts (the fingerprint) come from it; a test
        # changes it to re-serve a model. Canary requests are answered at once, outside script/requests.
        self.served = "weights-v1"
        self.fingerprints = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                last = body["messages"][-1]["content"]
                if last in CANARY_PROMPTS and not body.get("logprobs"):
                    with endpoint.lock:
                        endpoint.fingerprints += 1
                    text = f"{endpoint.served} as {body['model']}: {last}"
                    return self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                                            "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {"role": "assistant", "content": text}}]})  # fmt: skip
                with endpoint.lock:
                    endpoint.requests.append(body)
                    action = endpoint.script.pop(0) if endpoint.script else 200
                    endpoint.in_flight += 1
                    endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
                try:
                    if isinstance(action, tuple):
                        time.sleep(action[1])
                        action = 200
                    else:
                        time.sleep(0.05)  # long enough for concurrent requests to overlap
                    if action == "garbage":  # a proxy's error page, a truncated body
                        data = b"<html>502 Bad Gateway</html>"
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        return self.wfile.write(data)
                    if action == 429:
                        return self._send(
                            429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"retry-after-ms": "20"}
                        )
                    if action == 500:
                        return self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                    if action == 404:
                        return self._send(
                            404, {"error": {"message": f"model '{body['model']}' not found", "type": "not_found"}}
                        )
                    text = endpoint.reply(body) if endpoint.reply else f"reply to: {last}"
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    if body.get("logprobs") and endpoint.top_logprobs:
                        top = endpoint.top_logprobs(body)
                        pairs = top.items() if isinstance(top, dict) else top
                        top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in pairs]
                        choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
                    self._send(
                        200,
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [choice],
                            "usage": {
                                "prompt_tokens": len(last.split()),
                                "completion_tokens": len(text.split()),
                                "total_tokens": 0,
                            },
                        },
                    )
                finally:
                    with endpoint.lock:
                        endpoint.in_flight -= 1

        self.serve(Handler)
