"""The exact REST request a client call would send, for a tool's `dry_run`: method, URL and JSON body.

Built by the client library's own transcoding (its URI templates and field mapping, as its
REST transport uses them) against the client's own host, so that what a dry run shows is
what the call sends, not a second description that could drift from it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode


def rest_request(http_options: list[dict[str, str]], request: Any, host: str) -> dict[str, Any]:
    """{"method", "url", "body"} of `request` (a proto-plus request message) under these URI templates."""
    from google.api_core import path_template
    from google.protobuf import json_format

    transcoded = path_template.transcode(http_options, type(request).pb(request))  # type: ignore[no-untyped-call]
    body = transcoded.get("body")
    query = transcoded.get("query_params")
    params = json_format.MessageToDict(query) if query is not None else {}
    url = f"{host}{transcoded['uri']}" + (f"?{urlencode(params)}" if params else "")
    return {
        "method": str(transcoded["method"]).upper(),
        "url": url,
        "body": json_format.MessageToDict(body) if body is not None else None,
    }


def client_host(client: Any) -> str:
    """The scheme and host a client sends its requests to (its transport's, after client_options)."""
    host = str(client._transport._host)
    return host if host.startswith(("http://", "https://")) else f"https://{host}"
