"""The emulator's HTTP server on 127.0.0.1: Google's REST APIs, the OAuth2 token endpoint, the admin routes.

A plain threading HTTP/1.1 server (the clients keep connections alive). Every API call
is matched to a Route, passes the Gate (401/403/injected fault), runs its handler under
the emulator's lock and is recorded; `POST /token` is the OAuth2 JWT-bearer grant;
`/emulator/…` goes to the admin surface, which needs no credential (loopback only).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from opsgraph.gcp_emulator.auth import GrantError
from opsgraph.gcp_emulator.errors import ApiError
from opsgraph.gcp_emulator.gate import Call, EmulatorRequest, Gate, Route

AdminHandler = Callable[[str, str, dict[str, Any]], tuple[int, dict[str, Any]]]
logger = logging.getLogger(__name__)


class RestServer:
    """Bound at construction (so its URL is known to the services), serving after `start`."""

    def __init__(self, gate: Gate, lock: threading.RLock, port: int = 0) -> None:
        self._gate = gate
        self._lock = lock
        self.routes: list[Route] = []
        self.admin: AdminHandler | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.rest = self  # type: ignore[attr-defined]  # how the handler finds its server
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gcp-emulator-rest", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def dispatch(self, verb: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(target)
        path = url.path
        if path == "/emulator" or path.startswith("/emulator/"):
            if self.admin is None:
                return 404, {"error": "the admin surface is not mounted"}
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return 400, {"error": "the body must be JSON"}
            return self.admin(verb, path, body if isinstance(body, dict) else {})
        if verb == "POST" and path == "/token":
            return self._token(raw)
        status, reply, permission, principal = self._call(verb, path, dict(parse_qsl(url.query)), headers, raw)
        self._gate.record(EmulatorRequest(verb, path, permission, status, principal))
        return status, reply

    def _token(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            reply: dict[str, Any] = self._gate.authority.grant(dict(parse_qsl(raw.decode("utf-8", "replace"))))
            status = 200
        except GrantError as error:
            reply, status = error.body(), 400
        self._gate.record(EmulatorRequest("POST", "/token", None, status, None))
        return status, reply

    def _call(
        self, verb: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any], str | None, str | None]:
        matched = next(
            ((route, params) for route in self.routes if (params := route.match(verb, path)) is not None), None
        )
        if matched is None:
            error = ApiError(404, f"The emulator has no method {verb} {path}.", legacy_reason="notFound")
            return error.code, error.body(), None, None
        route, params = matched
        principal: str | None = None
        try:
            account = self._gate.authenticate(headers.get("authorization"))
            principal = account.email
            resource = route.resource.format(**params)
            self._gate.authorize(account, route.permission, route.method_id, resource, params.get("project", ""))
            body = _json_object(raw)
            with self._lock:
                reply = route.handler(Call(params, query, body, account))
        except ApiError as error:
            return error.code, error.body(), route.permission, principal
        return 200, reply, route.permission, principal


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as error:
        raise ApiError(400, f"Invalid JSON payload received. {error}") from error
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received: the body must be a JSON object.")
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcp-emulator"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        rest: RestServer = self.server.rest  # type: ignore[attr-defined]
        try:
            status, reply = rest.dispatch(self.command, self.path, headers, raw)
        except Exception:  # a bug of the emulator: answer 500 as Google would, and log it loudly
            logger.exception("GCP emulator: %s %s failed", self.command, self.path)
            error = ApiError(500, "Internal error encountered in the GCP emulator.")
            status, reply = error.code, error.body()
        payload = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("GCP emulator: " + format, *args)
