"""The emailer's raw-JSON client of the Kubernetes API, and its watch streams.

Split from :mod:`tjf_emailer.kube` (what to watch and how to keep watching) because this part
is only about talking to the API. It is a thin layer over the core's
:class:`~tjf_core.kube.transport.Transport`, so sending, the line splitting of a streamed
answer and the shutting of a stream from another thread exist once: :class:`KubeApi` adds the
emailer's own credentials (a kubeconfig or the in-cluster service account, from
:class:`tjf_core.kube.CredentialStore`; the server's certificate is always verified) and says a
refusal as :class:`ApiRefusal`, since the emailer must tell statuses (404, 409, 410) apart;
:class:`WatchStream` decodes a watch's lines into events. Other failures come out as the
core's errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tjf_core.errors import TjfError
from tjf_core.kube import Credentials, CredentialStore, KubeSettings
from tjf_core.kube.errors import error_from_status
from tjf_core.kube.transport import FollowedLog, Transport

__all__ = ["ApiRefusal", "Json", "KubeApi", "WatchStream"]

Json = dict[str, Any]


class ApiRefusal(TjfError):
    """The API answered with an error status; ``status`` tells 404, 409 and 410 apart."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _refusal(status: int, data: bytes) -> ApiRefusal:
    return ApiRefusal(status, str(error_from_status(status, data)))


class KubeApi:
    """Blocking raw-JSON requests with the emailer's own credentials; safe to share by threads."""

    def __init__(
        self, credentials: Callable[[], Credentials], *, request_timeout: float = 30.0,
        connect_timeout: float = 5.0, close: Callable[[], None] | None = None,
    ) -> None:
        self._credentials = credentials
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._close = close
        self._transport = Transport(request_timeout=request_timeout,
                                    connect_timeout=connect_timeout)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None) -> KubeApi:
        """With a kubeconfig file, or the in-cluster service account when None.

        The credentials are loaded here, so a wrong file fails at once (ConfigurationError).
        """
        store = CredentialStore(KubeSettings(
            service_kubeconfig=str(kubeconfig) if kubeconfig is not None else None))
        store.service()
        return cls(store.service, close=store.close)

    @property
    def server(self) -> str:
        return self._credentials().server

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def request(
        self, method: str, path: str, *, query: Mapping[str, str] | None = None,
        body: Json | None = None, timeout: float | None = None,
    ) -> Json:
        """The JSON object answered; :class:`ApiRefusal` or another core error otherwise."""
        return self._transport.json(self._credentials(), method, path, query=query, body=body,
                                    read_timeout=timeout, refusal=_refusal)

    def stream(self, path: str, *, query: Mapping[str, str], read_timeout: float) -> WatchStream:
        """Open a watch; its events are read from the returned stream as they come."""
        lines = self._transport.lines(self._credentials(), path, query=query, follow=True,
                                      read_timeout=read_timeout, refusal=_refusal)
        return WatchStream(lines)


class WatchStream:
    """One open watch: its events as dicts; :meth:`abort` ends a read blocked in another thread.

    An aborted watch simply ends (no error): it was ended on purpose.
    """

    def __init__(self, lines: FollowedLog) -> None:
        self._lines = lines

    def events(self) -> Iterator[Json]:
        for line in self._lines:
            if line.strip():
                yield _event(line)

    def abort(self) -> None:
        self._lines.abort()

    def close(self) -> None:
        self._lines.close()


def _event(line: str) -> Json:
    try:
        event = json.loads(line)
    except ValueError:
        raise TjfError("the Kubernetes API sent a watch event that is not JSON") from None
    if not isinstance(event, dict):
        raise TjfError("the Kubernetes API sent a watch event that is not a JSON object")
    return event
