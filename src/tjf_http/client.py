"""A synchronous client of the jobs API, for scripts and the command line client.

:class:`JobsClient` offers the operations of :class:`~tjf_core.service.JobService` (list, get,
run, upsert, delete, flush, restart, apply, logs, quota, images) over the modern routes. Over
``https://`` it presents the tool's client certificate (:class:`ClientCertificate`, usually
read from the kubeconfig's current context by :func:`certificate_from_kubeconfig`) and
verifies the server against a given CA, else the system's; verification cannot be turned off.
A local ``tjf-api`` (no cluster) listens on a unix socket instead, ``unix:///path/api.sock``:
plain HTTP/1.1 without TLS or certificate, since the server knows the caller by the socket's
peer credentials; the tool is then the caller's unix user (:mod:`tjf_core.local_identity`).

Answers come back in the core's terms: jobs as :class:`RemoteJob` (the :class:`~tjf_core.model.
JobSpec` read back with :mod:`tjf_core.convert`, the status as the view's dict), the rest as the
dicts of :mod:`tjf_core.views`. Refusals are the core's errors (:func:`error_from_answer`: the
class the body's ``type`` names, else one chosen by the HTTP status) with the server's message,
problems and status (``http_status``), and the request id as a note.

Importing this module is cheap (the command line client imports it for ``--help``): ssl,
socket, http.client, PyYAML, cattrs and cryptography are imported when first needed; aiohttp
and kubernetes never. Plain ``http.client`` over ``ssl`` (or an AF_UNIX socket) does: one
kept-alive connection per client (a client is not thread-safe), and one per log stream.
"""

from __future__ import annotations

import builtins
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import attrs

from tjf_core import errors as _errors
from tjf_core.errors import (
    AlreadyExistsError,
    AuthenticationError,
    CertificateError,
    ConfigurationError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    NotRestartableError,
    Problem,
    QuotaExceededError,
    RuntimeUnavailableError,
    TjfError,
)
from tjf_http.credentials import ClientCertificate, certificate_from_kubeconfig, unix_user_name

if TYPE_CHECKING:
    import http.client
    import ssl

    from tjf_core.model import JobSpec

__all__ = [
    "ClientCertificate",
    "JobsClient",
    "LogLines",
    "RemoteJob",
    "RemoteJobs",
    "certificate_from_kubeconfig",
    "error_from_answer",
    "error_type",
    "is_unix_url",
]

#: Keys of the job view that are not fields of the spec.
_VIEW_ONLY = ("image_state", "schedule_actual", "status", "status_short", "status_long")
_BY_STATUS: dict[int, type[TjfError]] = {
    401: AuthenticationError, 403: ForbiddenError, 404: NotFoundError,
    502: RuntimeUnavailableError, 503: RuntimeUnavailableError, 504: RuntimeUnavailableError,
}


#: The ``type`` an error body names an error class by: ``NotFoundError`` -> ``not_found``.
error_type = _errors.type_name


@attrs.frozen(kw_only=True)
class RemoteJob:
    """A job as the API shows it: its definition and how it is doing."""

    spec: JobSpec
    #: The structured status: ``short``, ``duration``, ``up_to_date``, ``messages`` …
    status: Mapping[str, Any]
    status_short: str
    status_long: str
    image_state: str
    schedule_actual: str | None = None

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> RemoteJob:
        from tjf_core.convert import job_from_api

        try:
            spec = job_from_api({k: v for k, v in view.items() if k not in _VIEW_ONLY})
        except InvalidInputError as error:
            raise TjfError(f"the jobs API answered a job this client cannot read ({error}): "
                           "is the client older than the server?") from None
        return cls(spec=spec, status=view["status"], status_short=view["status_short"],
                   status_long=view["status_long"], image_state=view["image_state"],
                   schedule_actual=view.get("schedule_actual"))


@attrs.frozen(kw_only=True)
class RemoteJobs:
    jobs: tuple[RemoteJob, ...]
    #: Jobs the server could not read, each explained.
    warnings: tuple[str, ...] = ()


def error_from_answer(status: int, body: bytes, *, url: str, restarting: bool = False,
                      retry_after: str | None = None) -> TjfError:
    """The core error a refusal stands for, with the server's message and problems.

    The body's ``type`` names the error's class (:func:`error_type`); an answer without one
    (an older server, a proxy) is judged by its status. ``restarting``: the answer is to a
    restart, whose only 400 without a type is "cannot be restarted".
    """
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    lines: list[str] = []
    problems: list[Problem] = []
    request_id = None
    named: type[TjfError] | None = None
    if isinstance(data, dict):
        messages = data.get("messages")
        if isinstance(messages, dict):
            lines = [str(line) for line in messages.get("error") or ()]
        elif isinstance(data.get("error"), str):  # a legacy route's answer
            lines = [data["error"]]
        problems = [Problem(str(p.get("field", "")), str(p.get("message", "")))
                    for p in data.get("problems") or () if isinstance(p, dict)]
        request_id = data.get("request_id")
        named = _errors.ERRORS_BY_TYPE.get(str(data.get("type")))
    message = "; ".join(lines) or f"the jobs API at {url} answered HTTP {status}"
    error: TjfError
    if named is not None and issubclass(named, InvalidInputError):
        error = _invalid_input(named, problems, lines, message)
    elif named is not None:
        error = named(message)
    elif status == 400 and problems:
        error = _invalid_input(InvalidInputError, problems, lines, message)
    elif status == 400:
        error = NotRestartableError(message) if restarting else InvalidInputError(message)
    elif status == 409:
        # Both refusals are 409; only a quota's message names the quota.
        error = (QuotaExceededError if "quota" in message.lower() else AlreadyExistsError)(message)
    else:
        error = _BY_STATUS.get(status, TjfError)(message)
    error.http_status = status
    if request_id:
        error.add_note(f"request id: {request_id}")
    if retry_after:
        error.add_note(f"the server asks to retry after {retry_after} s")
    return error


def _invalid_input(kind: type[InvalidInputError], problems: list[Problem], lines: list[str],
                   message: str) -> InvalidInputError:
    """An input error with the server's problems, its summary line kept when it has one."""
    if not problems:
        return kind(message)
    shown = [str(problem) for problem in problems]
    summary = lines[0] if lines and lines[0] not in shown else None
    return kind(problems, summary=summary)


_UNIX_SCHEMES = ("unix", "http+unix")
_UNIX_FORMS = ("unix:///absolute/path/api.sock (or http+unix://%2Fabsolute%2Fpath%2Fapi.sock"
               "[/prefix])")


def is_unix_url(url: str) -> bool:
    """Whether ``url`` names a local API's unix socket (``unix:``, ``http+unix:``)."""
    return urlsplit(url).scheme.lower() in _UNIX_SCHEMES


def _unix_address(url: str) -> tuple[str, str] | None:
    """The socket path and the path prefix of a unix URL; None for any other URL.

    ``unix:///run/tjf/api.sock``: the whole path is the socket's, so no prefix.
    ``http+unix://%2Frun%2Ftjf%2Fapi.sock/prefix``: the socket is the host, percent-encoded.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _UNIX_SCHEMES:
        return None
    if scheme == "unix":
        path, prefix = ("" if parts.netloc else unquote(parts.path).rstrip("/")), ""
    else:
        path, prefix = unquote(parts.netloc), parts.path.rstrip("/")
    if not path.startswith("/") or "\x00" in path or parts.query or parts.fragment:
        raise ConfigurationError(f"jobs API url {url!r} is not allowed: a local API's socket "
                                 f"is named by its absolute path, {_UNIX_FORMS}")
    return path, prefix


class JobsClient:
    """The jobs API of one tool at ``url``: ``https://…`` (a path prefix allowed), or a local
    ``tjf-api``'s unix socket, ``unix:///path/api.sock``."""

    def __init__(self, url: str, *, certificate: ClientCertificate | None,
                 tool: str | None = None, ca_file: str | Path | None = None,
                 timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._certificate = certificate
        self._tool = tool
        self._ca_file = Path(ca_file) if ca_file is not None else None
        self._conn: http.client.HTTPConnection | None = None
        self._context: ssl.SSLContext | None = None
        #: The unix socket's path, for a local API; None over TLS.
        self.socket_path: str | None = None
        unix = _unix_address(url)
        if unix is not None:
            self.socket_path, self._prefix = unix
            self._host, self._port = "localhost", 0
            if certificate is not None or ca_file is not None:
                # Silently dropping them would let a caller believe it is authenticated (or
                # the server verified) by them.
                raise ConfigurationError(
                    f"jobs API url {url!r} is a unix socket: no TLS, so no client certificate "
                    "and no ca_file (the server knows the caller by its unix user); give "
                    "certificate=None and no ca_file")
            return
        parts = urlsplit(url)
        try:
            port = parts.port or 443
        except ValueError:
            port = 0
        if parts.scheme != "https" or not parts.hostname or not port:
            raise ConfigurationError(f"jobs API url {url!r} is not allowed: use https://host"
                                     "[:port][/prefix] (the API is only served over TLS), or "
                                     f"for a local tjf-api {_UNIX_FORMS}")
        self._host, self._port = parts.hostname, port
        self._prefix = parts.path.rstrip("/")
        self._context = self._tls_context()

    @classmethod
    def from_kubeconfig(cls, url: str, *, kubeconfig: str | Path | None = None,
                        context: str | None = None, tool: str | None = None,
                        ca_file: str | Path | None = None, timeout: float = 30.0) -> JobsClient:
        """A client presenting the certificate of the kubeconfig's (current) context."""
        certificate = certificate_from_kubeconfig(
            Path(kubeconfig) if kubeconfig is not None else None, context=context)
        return cls(url, certificate=certificate, tool=tool, ca_file=ca_file, timeout=timeout)

    @property
    def tool(self) -> str:
        """The tool whose jobs these are: as given, else the certificate's CN, or on a unix
        socket the tool this process's unix user is
        (:func:`~tjf_core.local_identity.tool_from_username`)."""
        if self._tool is None:
            if self.socket_path is not None:
                self._tool = self._local_tool()
            elif self._certificate is None:
                raise ConfigurationError("no tool: give tool=... or a client certificate")
            else:
                self._tool = self._certificate.common_name()
        return self._tool

    def _local_tool(self) -> str:
        from tjf_core.local_identity import tool_from_username

        try:
            return tool_from_username(unix_user_name())
        except InvalidInputError as error:
            raise ConfigurationError(
                f"the jobs API at {self.url} knows a caller by its unix user, and {error}: "
                "run this as the tool's user (`become TOOLNAME`), or name the tool "
                "(tool=...)") from None

    # --- the operations -------------------------------------------------------------------

    def list(self) -> RemoteJobs:
        answer = self._call("GET", "/jobs")
        return RemoteJobs(jobs=tuple(RemoteJob.from_view(view) for view in answer["jobs"]),
                          warnings=tuple(answer["messages"]["warning"]))

    def get(self, name: str) -> RemoteJob:
        return RemoteJob.from_view(self._call("GET", f"/jobs/{_segment(name)}")["job"])

    def run(self, spec: JobSpec) -> RemoteJob:
        """Create a job; AlreadyExistsError when one of that name exists (unless finished)."""
        return RemoteJob.from_view(self._call("POST", "/jobs", json_body=_api(spec))["job"])

    def upsert(self, spec: JobSpec) -> tuple[RemoteJob, bool]:
        """Create the job or make the existing one equal to ``spec``; and whether it changed."""
        answer = self._call("PATCH", "/jobs", json_body=_api(spec))
        return RemoteJob.from_view(answer["job"]), bool(answer["job_changed"])

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/jobs/{_segment(name)}")

    def flush(self) -> None:
        self._call("DELETE", "/jobs")

    def restart(self, name: str) -> None:
        self._call("POST", f"/jobs/{_segment(name)}/restart", restarting=True)

    def apply(self, jobs: Sequence[JobSpec] | str, *, only: str | None = None,
              dry_run: bool = False) -> dict[str, Any]:
        """Make the tool's jobs equal to ``jobs`` (specs, or a jobs.yaml's text); the plan.

        Nothing changes unless every job is valid. The plan: ``{dry_run, changed, jobs:
        [{name, action, changed_fields, stale}], counts}``.
        """
        query: dict[str, str] = {"dry_run": "true" if dry_run else "false"}
        if only is not None:
            query["job"] = only
        if isinstance(jobs, str):
            answer = self._call("POST", "/apply", query=query, body=jobs.encode(),
                                content_type="application/yaml")
        else:
            answer = self._call("POST", "/apply", query=query,
                                json_body=[_api(spec) for spec in jobs])
        return dict(answer["plan"])

    def logs(self, name: str, *, lines: int | None = None,
             follow: bool = False) -> LogLines:
        """The job's output, line by line; with ``follow``, until the job stops running.

        The request is made here (a missing job raises NotFoundError now); the lines come
        as they are read (:class:`LogLines`: close it, or use ``with``, to stop early).
        """
        import http.client

        query = {"follow": "true" if follow else "false"}
        if lines is not None:
            query["lines"] = str(lines)
        path = self._path(f"/jobs/{_segment(name)}/logs", query)
        conn = self._connect()
        try:
            conn.request("GET", path, headers={"Accept": "text/plain"})
            response = conn.getresponse()
            if response.status != 200:
                raise self._error(response)
            if follow and conn.sock is not None:
                conn.sock.settimeout(None)  # a quiet job may write nothing for a long time
        except BaseException as error:
            conn.close()
            if isinstance(error, OSError | http.client.HTTPException):
                raise self._unreachable(error) from None
            raise
        return LogLines(conn, response, url=self.url)

    def quota(self) -> builtins.list[dict[str, Any]]:
        """The quota's categories: ``[{name, items: [{name, limit, used}]}]``."""
        return list(self._call("GET", "/quotas")["quota"]["categories"])

    def images(self) -> builtins.list[dict[str, str]]:
        """The images jobs can use: ``[{shortname, image}]``."""
        return list(self._call("GET", "/images")["images"])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the transport --------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        import ssl

        try:
            context = ssl.create_default_context(
                cafile=str(self._ca_file) if self._ca_file is not None else None)
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(f"ca_file {str(self._ca_file)!r} cannot be loaded: "
                                     f"{error}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self._certificate is not None:
            self._certificate.load_into(context)
        return context

    def _connect(self) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return _unix_connection()(self.socket_path, timeout=self.timeout)
        import http.client

        return http.client.HTTPSConnection(self._host, self._port, context=self._context,
                                           timeout=self.timeout)

    def _path(self, path: str, query: Mapping[str, str] | None = None) -> str:
        full = f"{self._prefix}/v1/tool/{_segment(self.tool)}{path}"
        return f"{full}?{urlencode(query)}" if query else full

    def _call(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
              json_body: Any = None, body: bytes | None = None,
              content_type: str | None = None, restarting: bool = False) -> Any:
        import http.client

        target = self._path(path, query)
        headers = {"Accept": "application/json"}
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or self._connect()
            self._conn = conn
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                # A kept-alive connection the server closed while idle never read the
                # request: send it again, once, on a new connection.
                if reused and attempt == 1:
                    continue
                raise self._unreachable(e) from None
            except (OSError, http.client.HTTPException) as error:
                self.close()
                raise self._unreachable(error) from None
            if response.will_close:
                self.close()
            if response.status >= 400:
                raise self._error(response, data, restarting=restarting)
            try:
                return json.loads(data)
            except ValueError:
                raise RuntimeUnavailableError(f"the jobs API at {self.url} answered "
                                              f"{response.status} with a body that is not "
                                              "JSON: is the url the jobs API's?") from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _error(self, response: http.client.HTTPResponse, data: bytes | None = None, *,
               restarting: bool = False) -> TjfError:
        return error_from_answer(response.status, response.read() if data is None else data,
                                 url=self.url, restarting=restarting,
                                 retry_after=response.getheader("Retry-After"))

    def _unreachable(self, error: OSError | http.client.HTTPException) -> TjfError:
        if self.socket_path is not None:
            return self._unreachable_socket(self.socket_path, error)
        import ssl

        if isinstance(error, ssl.SSLCertVerificationError):
            trusted = (f"the CA of ca_file {str(self._ca_file)!r}" if self._ca_file is not None
                       else "any CA of the system's store")
            return ConfigurationError(
                f"the jobs API at {self.url} presented a certificate not signed by {trusted} "
                f"({error.verify_message}): refusing to talk to it; give the CA that signed "
                "the server's certificate as ca_file")
        if isinstance(error, ssl.SSLError) and "alert" in (error.reason or "").lower():
            return self._refused(f"it sent TLS alert {error.reason}")
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            # With TLS 1.3 the server judges the client's certificate after the handshake,
            # and a refusal reaches us as a connection closed before any answer.
            return self._refused("it closed the connection without answering")
        if isinstance(error, OSError):
            reason = error.strerror or str(error) or type(error).__name__
            return RuntimeUnavailableError(f"cannot reach the jobs API at {self.url}: {reason}")
        return RuntimeUnavailableError(f"the jobs API at {self.url} did not answer in HTTP: "
                                       f"{type(error).__name__} {error}")

    def _unreachable_socket(self, path: str,
                            error: OSError | http.client.HTTPException) -> TjfError:
        start = ("start `tjf-api` in local mode (it listens there), or configure the jobs "
                 "API's URL (TJF_API_URL, or api_gateway.url)")
        if isinstance(error, FileNotFoundError):
            why = f"the socket {path} does not exist; {start}"
        elif isinstance(error, ConnectionRefusedError):
            why = f"nothing listens on the socket {path} (connection refused); {start}"
        elif isinstance(error, PermissionError):
            return ForbiddenError(
                f"cannot reach the jobs API at {self.url}: this user may not connect to the "
                f"socket {path} (permission denied): ask whoever runs tjf-api to let the "
                "tool's user in (its socket's mode and directory), or run this as a user it "
                "lets in")
        elif isinstance(error, ConnectionResetError | BrokenPipeError):
            why = "it closed the connection without answering"
        elif isinstance(error, TimeoutError):
            why = f"no answer within {self.timeout:g} s"
        elif isinstance(error, OSError):
            why = error.strerror or str(error) or type(error).__name__
        else:
            return RuntimeUnavailableError(f"the jobs API at {self.url} did not answer in "
                                           f"HTTP: {type(error).__name__} {error}")
        return RuntimeUnavailableError(f"cannot reach the jobs API at {self.url}: {why}")

    def _refused(self, how: str) -> TjfError:
        if self._certificate is None:
            return AuthenticationError(f"the jobs API at {self.url} wants a client "
                                       f"certificate and none was given ({how})")
        return CertificateError(
            f"the jobs API at {self.url} refused the client certificate of "
            f"{self._certificate.source} ({how}): is it the tool's, signed by the CA the "
            "API trusts, and not expired?")


class LogLines:
    """A job's log lines as they are read (no newlines); ``close()`` it, or use ``with``.

    A followed log ends by itself when the job stops running; closing it early lets the server
    free its follower.
    """

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                 *, url: str) -> None:
        self._conn = conn
        self._response = response
        self._url = url

    def __iter__(self) -> LogLines:
        return self

    def __next__(self) -> str:
        import http.client

        try:
            line = self._response.readline()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise RuntimeUnavailableError(f"the log stream from the jobs API at {self._url} "
                                          f"was cut short: {error}") from None
        if not line:
            self.close()
            raise StopIteration
        return line.decode("utf-8", errors="replace").removesuffix("\n")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@functools.cache
def _unix_connection() -> type[http.client.HTTPConnection]:
    """HTTP/1.1 over a unix socket: :class:`http.client.HTTPConnection` with its own connect.

    Made on first use, so that importing this module imports neither http.client nor socket.
    """
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path: str, *, timeout: float) -> None:
            # The Host header needs a name; the server does not read it.
            super().__init__("localhost", timeout=timeout)
            self.socket_path = path

        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
            except BaseException:
                sock.close()
                raise
            self.sock = sock

    return UnixConnection


def _segment(value: str) -> str:
    return quote(value, safe="")


def _api(spec: JobSpec) -> dict[str, Any]:
    from tjf_core.convert import job_to_api

    return job_to_api(spec)
