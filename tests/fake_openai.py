"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for the openai teacher's
tests and the HTTP bridging bench.

    with FakeOpenAI(script=[("status", 429), ("ok", "hi")]) as srv:
        OpenAITeacher(base_url=srv.base_url, model="fake", ...)

`script` actions are consumed one per request, in arrival order; after the script, every request
gets the default reply (`reply(request_json) -> text`, else "ok"). Actions:

  ("ok", text)                      200, finish_reason "stop"
  ("length", text)                  200, finish_reason "length" (the teacher hit max_tokens)
  ("reasoning", reasoning, content) 200, the thinking in message.reasoning_content (vLLM's reasoning parser)
  ("status", code)                  an error with a JSON body; sends `retry-after-ms` so the client retries fast
  ("sleep", seconds)                sleep, then the default reply (past the client's timeout: a timeout)

`latency_s` delays every request (a stand-in for generation time). Every request body is kept in
`srv.requests`, in arrival order. The server binds 127.0.0.1 only and is shut down on exit.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

ARITY = {"ok": 2, "length": 2, "reasoning": 3, "status": 2, "sleep": 2}  # action -> tuple length


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default listen backlog of 5 drops SYNs when 16 clients connect at
    # once, and the kernel resends them after 1 s: a 1 s stall measured under load


class FakeOpenAI:
    def __init__(self, script: list[tuple] | None = None, reply: Callable[[dict], str] | None = None,
                 latency_s: float = 0.0, retry_after_ms: int | None = 10):
        self.script = list(script or [])
        for action in self.script:
            if not action or action[0] not in ARITY or len(action) != ARITY[action[0]]:
                raise ValueError(f"bad FakeOpenAI action {action!r}; expected one of ('ok', text), ('length', text), "
                                 f"('reasoning', reasoning, content), ('status', code), ('sleep', seconds)")
        self.reply = reply
        self.latency_s = latency_s
        self.retry_after_ms = retry_after_ms  # None: no header, the client falls back to its own backoff
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0  # requests inside the latency sleep at once
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
            timeout = 10  # an idle keep-alive connection frees its thread after this long
            disable_nagle_algorithm = True  # headers and body go out in two writes; with Nagle on, the
            # body waits for the client's delayed ACK: +40 ms a request, measured

            def do_POST(self):
                fake._handle(self)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True  # a handler still sleeping must not block shutdown
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running; use it as `with FakeOpenAI(...) as srv:`")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- requests -----------------------------------------------------------------------------
    def _next_action(self, body: dict) -> tuple:
        with self._lock:
            self.requests.append(body)
            if self.script:
                return self.script.pop(0)
        return ("ok", None)

    def _default_text(self, body: dict) -> str:
        return self.reply(body) if self.reply is not None else "ok"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        if h.path.rstrip("/") != "/v1/chat/completions":
            return self._send(h, 404, {"error": {"message": f"no route {h.path}", "type": "not_found", "code": 404}})
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as e:
            return self._send(h, 400, {"error": {"message": f"bad JSON: {e}", "type": "invalid_request_error"}})
        action = self._next_action(body)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
        finally:
            with self._lock:
                self.in_flight -= 1
        kind = action[0]
        if kind == "status":
            code = int(action[1])
            headers = {"retry-after-ms": str(self.retry_after_ms)} if self.retry_after_ms is not None else {}
            err = {"error": {"message": f"scripted error {code}", "type": "server_error" if code >= 500
                             else "rate_limit_error" if code == 429 else "invalid_request_error", "code": code}}
            return self._send(h, code, err, headers)
        if kind == "sleep":
            time.sleep(float(action[1]))
            return self._ok(h, body, self._default_text(body))
        if kind == "ok":
            return self._ok(h, body, action[1] if action[1] is not None else self._default_text(body))
        if kind == "length":
            return self._ok(h, body, action[1], finish_reason="length")
        return self._ok(h, body, action[2], reasoning=action[1])  # "reasoning" (actions checked in __init__)

    def _ok(self, h, body: dict, text: str, finish_reason: str = "stop", reasoning: str | None = None) -> None:
        message = {"role": "assistant", "content": text}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(text.split()) + len((reasoning or "").split())
        self._send(h, 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    @staticmethod
    def _send(h, code: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout) before we answered: that is the scenario under test
