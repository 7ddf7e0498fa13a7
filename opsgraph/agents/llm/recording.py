"""Model runs recorded to a JSON file, and replayed offline, deterministically, by the scripted model.

A run made once against a real provider (Gemini with a key, the local llama-cpp server)
becomes a regression test that needs no network: `Recorder` — a LangChain callback on the
chat model, so every call is seen whatever wraps it (tools bound, structured output) —
writes each reply as it arrives: the digest and size of the prompt that was sent, what
the request asked for (tools offered, a forced tool, a response format), the reply's text
and tool calls, and the token usage the provider reported (None when it reported none).
A refused or failed call is recorded as an error with its HTTP status, and replayed as a
`RecordedError` carrying that status, so the structured-output negotiation takes the same
path offline that it took online.

`replay(path)` serves a recording (or the older plain list of replies) through the scripted
model, in the recorded order. Inside the incident graph each node builds its own model, so
the position in the recording is kept per incident thread (the run's ``thread_id``), not per
model object: the planner's model goes on where the diagnostician's stopped, and a re-plan
where the first plan stopped (incident ids are unique per run, as the CLI makes them, so two
runs never share a position). Prompt digests are kept for reading and diffing, not enforced:
prompts carry ports, times and ids that differ from run to run.

    {"format": "opsgraph-model-recording/1", "source": "model" | "emulator", "model": "...",
     "about": "how it was made", "replies": [{"prompt_digest": "...", "prompt_messages": 3,
     "prompt_chars": 2100, "request": {...}, "text": "...", "tool_calls": [{"name", "args"}],
     "usage": {"input_tokens": 900, "output_tokens": 40}} | {..., "error": {"type", "message", "status"}}]}
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import LLMResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsgraph.agents.llm.budget import message_chars
from opsgraph.agents.llm.scripted import Reply, ScriptedChatModel, ScriptExhausted, tool_calls, usage
from opsgraph.tools.atomic_file import write_atomic

FORMAT: Literal["opsgraph-model-recording/1"] = "opsgraph-model-recording/1"
RECORD_VARIABLE = "OPSGRAPH_MODEL_RECORD"


class RecordingError(ValueError):
    """A file that is not a recording (or list of replies) the scripted model can serve; names the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordedCall(_Strict):
    name: str
    args: dict[str, Any]


class RecordedUsage(_Strict):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class RecordedFailure(_Strict):
    type: str
    message: str
    status: int | None = None


class RecordedReply(_Strict):
    """One model call: what was sent (digest, size, shape) and what came back, or how it failed."""

    node: str | None = Field(None, description="The graph node that asked (langgraph_node), when in a graph")
    prompt_digest: str | None = None
    prompt_messages: int | None = None
    prompt_chars: int | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    text: str = ""
    tool_calls: list[RecordedCall] = Field(default_factory=list)
    usage: RecordedUsage | None = None
    error: RecordedFailure | None = None


class Recording(_Strict):
    format: Literal["opsgraph-model-recording/1"] = FORMAT
    source: Literal["model", "emulator"] = Field(
        description="model: a real provider answered; emulator: a hand-written script did (ScriptedChatModel)"
    )
    model: str
    about: str = Field("", description="How the recording was made, in a sentence or two")
    replies: list[RecordedReply] = Field(default_factory=list)


class RecordedError(RuntimeError):
    """A failure replayed from a recording, with the HTTP status the provider answered (if any)."""

    def __init__(self, failure: RecordedFailure) -> None:
        super().__init__(f"{failure.type}: {failure.message}")
        self.status_code = failure.status


def prompt_digest(messages: Sequence[BaseMessage]) -> str:
    """A short fingerprint of a prompt: role, content and tool calls of every message, in order."""
    canonical = [
        [message.type, message.content, [[c["name"], c["args"]] for c in getattr(message, "tool_calls", [])]]
        for message in messages
    ]
    encoded = json.dumps(canonical, sort_keys=True, default=str, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()[:16]


class Recorder(BaseCallbackHandler):
    """Writes every call of the chat model it is attached to into `path`, rewriting the file after each reply."""

    raise_error = False  # a recorder that cannot write must not break the run it records

    def __init__(self, path: Path, model: str, source: Literal["model", "emulator"] = "model", about: str = "") -> None:
        self.path = path
        self.recording = Recording(source=source, model=model, about=about)
        self._sent: dict[UUID, RecordedReply] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        prompt = messages[0] if messages else []
        request = _request_shape(kwargs.get("invocation_params") or {})
        node = (metadata or {}).get("langgraph_node")
        with self._lock:
            self._sent[run_id] = RecordedReply(
                node=node if isinstance(node, str) else None,
                prompt_digest=prompt_digest(prompt),
                prompt_messages=len(prompt),
                prompt_chars=message_chars(prompt),
                request=request,
            )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        message = getattr(generation, "message", None)
        with self._lock:
            entry = self._sent.pop(run_id, RecordedReply())
            if isinstance(message, AIMessage):
                entry.text = message.content if isinstance(message.content, str) else json.dumps(message.content)
                entry.tool_calls = [RecordedCall(name=c["name"], args=c["args"]) for c in message.tool_calls]
                if message.usage_metadata:
                    entry.usage = RecordedUsage(
                        input_tokens=message.usage_metadata["input_tokens"],
                        output_tokens=message.usage_metadata["output_tokens"],
                    )
            self._keep(entry)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            entry = self._sent.pop(run_id, RecordedReply())
            status = getattr(error, "status_code", None)
            entry.error = RecordedFailure(
                type=type(error).__name__, message=str(error)[:500], status=status if isinstance(status, int) else None
            )
            self._keep(entry)

    def _keep(self, entry: RecordedReply) -> None:
        self.recording.replies.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, self.recording.model_dump_json(indent=1, exclude_none=True) + "\n")


_recorders: dict[Path, Recorder] = {}
_recorders_lock = threading.Lock()


def recorder_for(path: str | Path, model: str, source: Literal["model", "emulator"] = "model") -> Recorder:
    """The process's recorder for `path`: every model built with the same path records into one file, in order."""
    resolved = Path(path).expanduser().resolve()
    with _recorders_lock:
        if resolved not in _recorders:
            _recorders[resolved] = Recorder(resolved, model, source)
        return _recorders[resolved]


def load_recording(path: str | Path) -> Recording:
    """A recording file, or the older plain list of replies (read as an emulator recording named after the file)."""
    where = Path(path)
    try:
        data = json.loads(where.read_text())
        if isinstance(data, list):
            data = {"source": "emulator", "model": where.name, "replies": data}
        return Recording.model_validate(data)
    except OSError as error:
        raise RecordingError(f"{where}: cannot read ({error.strerror or error})") from error
    except ValueError as error:  # json.JSONDecodeError and pydantic's ValidationError
        detail = _fields(error) if isinstance(error, ValidationError) else str(error)
        raise RecordingError(f"{where}: not a model recording or list of replies ({detail})") from error


def replies(recording: Recording) -> list[Reply]:
    """The recording as the scripted model's script: messages with usage, and failures to raise."""
    script: list[Reply] = []
    for entry in recording.replies:
        if entry.error is not None:
            script.append(RecordedError(entry.error))
            continue
        tokens = (entry.usage.input_tokens, entry.usage.output_tokens) if entry.usage else None
        if entry.tool_calls:
            script.append(tool_calls(*((c.name, c.args) for c in entry.tool_calls), tokens=tokens, text=entry.text))
        else:
            script.append(AIMessage(content=entry.text, usage_metadata=usage(*tokens) if tokens else None))
    return script


class ReplayedChatModel(ScriptedChatModel):
    """The scripted model serving a recording; inside a graph run, its position is the incident thread's."""

    source: str = ""  # the recording's resolved path: threads replaying it share positions

    def _next_reply(self, run_manager: CallbackManagerForLLMRun | None) -> Reply:
        thread = run_manager.metadata.get("thread_id") if run_manager is not None else None
        if not isinstance(thread, str):
            return super()._next_reply(run_manager)
        with _positions_lock:
            position = _positions.get((self.source, thread), 0)
            _positions[(self.source, thread)] = position + 1
        if position >= len(self.script):
            raise ScriptExhausted(f"the recording {self.model} has no reply left for {thread} (all {position} used)")
        reply: Reply = self.script[position]
        self.replied += 1
        return reply


_positions: dict[tuple[str, str], int] = {}
_positions_lock = threading.Lock()


def replay(path: str | Path) -> ScriptedChatModel:
    """The scripted model serving the recording at `path`, reply by reply, named ``scripted:`` + what recorded it.

    So a report says whose replies were replayed: ``scripted:gemma-3-270m``, ``scripted:emulator``.
    """
    recording = load_recording(path)
    source = str(Path(path).expanduser().resolve())
    name = f"scripted:{recording.model}"
    return ReplayedChatModel(messages=iter(()), script=replies(recording), model=name, source=source)


def _request_shape(params: dict[str, Any]) -> dict[str, Any]:
    """What a request asked for besides the prompt: tools offered, a forced tool, a response format."""
    shape: dict[str, Any] = {}
    tools = params.get("tools") or []
    names = [t.get("function", {}).get("name") or t.get("name") for t in tools if isinstance(t, dict)]
    if names:
        shape["tools"] = [n for n in names if n]
    if (choice := params.get("tool_choice")) is not None:
        shape["tool_choice"] = choice.get("function", {}).get("name", choice) if isinstance(choice, dict) else choice
    if isinstance(response_format := params.get("response_format"), dict):
        shape["response_format"] = response_format.get("type")
    elif isinstance(response_format, type):
        shape["response_format"] = "json_schema"  # a schema class, sent as a json_schema format
    return shape


def _fields(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in error.errors())[:300]
