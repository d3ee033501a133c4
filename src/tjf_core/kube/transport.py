"""One request to the Kubernetes API as raw JSON, its failure said as a core error.

The official client's typed models cost 3-6 times the time of the request itself on large
lists (testbed NOTES), so the runtime sends and receives plain dicts through the client's
transport (``ApiClient.call_api`` with urllib3 underneath, which reads nothing in advance):
``json.loads`` on the body and nothing else. Every failure leaves here as a
:class:`~tjf_core.errors.TjfError` (see :mod:`tjf_core.kube.errors`); no client exception or
traceback reaches a caller.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any, cast
from urllib.parse import urlencode

import urllib3
from kubernetes.client.exceptions import ApiException

from tjf_core.errors import TjfError
from tjf_core.kube.credentials import Credentials
from tjf_core.kube.errors import error_from_exception, error_from_status

__all__ = [
    "JSON", "STRATEGIC_MERGE_PATCH", "FollowedLog", "Json", "Refusal", "RequestHook", "Transport",
]

JSON = "application/json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
Json = dict[str, Any]
#: Called with (method, path) before each request: for metrics, and for tests that count calls.
RequestHook = Callable[[str, str], None]
#: Makes the error raised for a refusal from its (HTTP status, body), for a caller that must
#: tell statuses apart (a watch's 410 Gone); by default it is :func:`error_from_status`'s.
Refusal = Callable[[int, bytes], Exception]
#: What can go wrong below HTTP: urllib3's errors, sockets and TLS (OSError), and the
#: client's ApiException(status=0) for a TLS failure.
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError, ApiException)


class Transport:
    """Sends requests with given credentials; timeouts and the request hook are its own."""

    def __init__(
        self, *, request_timeout: float, connect_timeout: float, hook: RequestHook | None = None
    ) -> None:
        self._timeout = (connect_timeout, request_timeout)
        self._connect_timeout = connect_timeout
        self._hook = hook

    def json(
        self, credentials: Credentials, method: str, path: str, *,
        query: Mapping[str, str] | None = None, body: Json | None = None,
        content_type: str = JSON, kind: str | None = None, name: str | None = None,
        tool: str | None = None, read_timeout: float | None = None,
        refusal: Refusal | None = None,
    ) -> Json:
        """The JSON object the API answers; a core error when it refuses or cannot be reached.

        ``kind``, ``name`` and ``tool`` only shape error messages; ``read_timeout`` replaces
        the transport's request timeout for this request; ``refusal`` makes the error raised
        when the API refuses.
        """
        timeout = self._timeout if read_timeout is None else (self._connect_timeout, read_timeout)
        response = self._send(credentials, method, path, query=query, body=body,
                              content_type=content_type, timeout=timeout)
        try:
            data = response.read()
        except _TRANSPORT_ERRORS as error:
            raise error_from_exception(error, server=credentials.server) from None
        if not 200 <= response.status <= 299:
            if refusal is not None:
                raise refusal(response.status, data)
            raise error_from_status(response.status, data, kind=kind, name=name, tool=tool,
                                    credentials=credentials.description)
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise TjfError(f"the Kubernetes API answered {method} {path} with something that "
                           "is not a JSON object")
        return answer

    def lines(
        self, credentials: Credentials, path: str, *, query: Mapping[str, str], follow: bool,
        kind: str | None = None, name: str | None = None, tool: str | None = None,
        read_timeout: float | None = None, refusal: Refusal | None = None,
    ) -> FollowedLog:
        """The text the API answers, line by line as it arrives (a pod's log, a watch's events).

        The request is sent before the first line is asked for, so a refusal raises here (the
        error ``refusal`` makes, when given). When ``follow``, there is no read timeout unless
        ``read_timeout`` is given: a log may stay quiet for hours, while a watch the server
        ends after ``timeoutSeconds`` is known dead some time after.
        """
        if read_timeout is not None:
            timeout: tuple[float, float | None] = (self._connect_timeout, read_timeout)
        else:
            timeout = (self._connect_timeout, None) if follow else self._timeout
        response = self._send(credentials, "GET", path, query=query, body=None,
                              content_type=JSON, timeout=timeout, accept="*/*")
        raw = cast(urllib3.BaseHTTPResponse, response.response)
        if not 200 <= response.status <= 299:
            try:
                data = response.read()
            except _TRANSPORT_ERRORS:
                data = b""
            finally:
                raw.release_conn()
            if refusal is not None:
                raise refusal(response.status, data)
            raise error_from_status(response.status, data, kind=kind, name=name, tool=tool,
                                    credentials=credentials.description)
        return FollowedLog(raw, server=credentials.server)

    def _send(
        self, credentials: Credentials, method: str, path: str, *,
        query: Mapping[str, str] | None, body: Json | None, content_type: str,
        timeout: tuple[float, float | None], accept: str = JSON,
    ) -> Any:
        if self._hook is not None:
            self._hook(method, path)
        url = credentials.server + path
        if query:
            url += "?" + urlencode(query)
        client = credentials.client
        # A header dict that keeps repeated names: one Impersonate-Group line per group.
        headers = urllib3.HTTPHeaderDict(client.default_headers)
        headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = content_type
        for header, value in credentials.headers:
            headers.add(header, value)
        try:
            # A bearer token (the service's), refreshed by the client when it expires.
            client.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
            return client.call_api(method, url, header_params=headers, body=body,
                                   _request_timeout=timeout)
        except _TRANSPORT_ERRORS as error:
            raise error_from_exception(error, server=credentials.server) from None


class FollowedLog:
    """The lines of a pod log or a watch as they arrive (followed or not); ``abort()`` ends it
    from any thread.

    Read it in one thread (iterating, ``close()``); ``abort()`` is the one method another
    thread may call: it shuts the connection down, so a read waiting for the next line returns
    at once and the iteration simply ends (no error: it ended on purpose).
    """

    def __init__(self, raw: urllib3.BaseHTTPResponse, *, server: str) -> None:
        self._raw = raw
        self._server = server
        self._aborted = threading.Event()
        self._lines = self._read()

    def __iter__(self) -> FollowedLog:
        return self

    def __next__(self) -> str:
        return next(self._lines)

    def _read(self) -> Generator[str, None, None]:
        pending = b""
        try:
            for chunk in self._raw.stream(64 * 1024, decode_content=True):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", "replace")
        except _TRANSPORT_ERRORS as error:
            if self._aborted.is_set():
                return
            raise error_from_exception(error, server=self._server) from None
        finally:
            self._release()
        if pending and not self._aborted.is_set():
            yield pending.decode("utf-8", "replace")

    def abort(self) -> None:
        """End the stream now, from any thread: a read blocked on the socket returns."""
        self._aborted.set()
        # shutdown() wakes a recv() blocked in another thread; close() would not. It fails
        # (harmlessly) once the connection is closed or released already.
        with contextlib.suppress(ValueError, RuntimeError, OSError, AttributeError):
            self._raw.shutdown()

    def close(self) -> None:
        """Release the connection (closing, not draining: a followed log never ends)."""
        self._lines.close()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(*_TRANSPORT_ERRORS):
            self._raw.close()
            self._raw.release_conn()
