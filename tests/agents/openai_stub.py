"""A local OpenAI-compatible chat server that answers the way llama-cpp-python's server does.

It is a real HTTP server on loopback, so the real `ChatOpenAI` (langchain-openai and the
openai SDK, as a user configures them with `OPENAI_BASE_URL`) talks to it unchanged. Like
llama-cpp-python 0.3's server it refuses `response_format: json_schema` with HTTP 500
("only text / json_object"); it can also refuse tools (as servers whose model cannot call
tools do, HTTP 400) or every response format. Everything else is answered from a queue of replies, in order, with
server-counted usage, and every request body is kept for asserts.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What llama-cpp-python 0.3.36's server answers (HTTP 500) to a json_schema response format, as seen here.
JSON_SCHEMA_REFUSAL = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}"
)

NULL_CONTENT_REFUSAL = (
    "7 validation errors: ('body', 'messages', 2, 'ChatCompletionRequestAssistantMessage', 'content')"
)


@dataclass
class StubReply:
    """One answer: text, or tool calls `[(name, args)]`, with the usage the "server" counted."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    prompt_tokens: int = 100
    completion_tokens: int = 10


@dataclass
class OpenAIStub:
    replies: deque[StubReply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # What this server refuses, as llama-cpp-python's does json_schema: "json_schema", "json_object", "tools".
    refuse: frozenset[str] = frozenset({"json_schema"})
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: StubReply) -> None:
        self.replies.extend(replies)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append(body)
        if any(m.get("role") == "assistant" and m.get("content") is None for m in body.get("messages", [])):
            # llama-cpp-python's server validates an assistant message's content as a string (HTTP 500).
            return 500, {"error": {"message": NULL_CONTENT_REFUSAL, "type": "internal_server_error", "code": None}}
        response_format = (body.get("response_format") or {}).get("type")
        if response_format in self.refuse:
            return 500, {"error": {"message": JSON_SCHEMA_REFUSAL, "type": "internal_server_error", "code": 500}}
        if "tools" in self.refuse and body.get("tools"):
            return 400, {"error": {"message": "this model does not support tools", "type": "invalid_request_error"}}
        if not self.replies:
            return 503, {"error": {"message": "the stub has no reply queued", "type": "server_error"}}
        reply = self.replies.popleft()
        calls = [
            {"id": f"call_{len(self.requests)}_{n}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for n, (name, args) in enumerate(reply.tool_calls)
        ]  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": usage,
        }


@contextmanager
def openai_stub(**options: Any) -> Iterator[OpenAIStub]:
    """The stub, serving on a free loopback port until the block ends."""
    stub = OpenAIStub(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            status, payload = stub.answer(json.loads(self.rfile.read(length)))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
