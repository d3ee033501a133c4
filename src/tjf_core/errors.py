"""The one error tree of tjf.

Every error a user can cause or meet is one of these. Each knows the HTTP status a front end
should answer with and carries a message a person can act on; front ends map them generically
(``error.http_status``, ``str(error)``) and never invent messages about jobs themselves.

::

    TjfError (500)                      root: anything tjf raises on purpose
    ├── InvalidInputError (400)         bad input; ``problems`` lists every problem at once
    │   ├── InvalidJobError (400)       a job definition that cannot be accepted
    │   ├── InvalidScheduleError (400)  cron text Kubernetes would refuse
    │   ├── InvalidQuantityError (400)  not a Kubernetes quantity
    │   ├── UnknownImageError (400)     image not in the catalog
    │   ├── LimitExceededError (400)    cpu/memory outside the namespace LimitRange
    │   └── InvalidCatalogError (400)   an image catalog document that cannot be parsed
    ├── NotRestartableError (400)       one-off jobs cannot be restarted
    ├── AuthenticationError (401)       no usable identity was presented
    │   └── CertificateError (401)      a client certificate was refused (and why)
    ├── ForbiddenError (403)            the identity may not do this
    ├── NotFoundError (404)             no such job
    ├── AlreadyExistsError (409)        a job with that name already exists
    ├── QuotaExceededError (409)        the namespace quota refuses the new object
    ├── ConfigurationError (500)        the service's own settings are wrong
    └── RuntimeUnavailableError (503)   the backing runtime (Kubernetes API) cannot be reached
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = [
    "ERRORS_BY_TYPE",
    "AlreadyExistsError",
    "AuthenticationError",
    "CertificateError",
    "ConfigurationError",
    "ForbiddenError",
    "InvalidCatalogError",
    "InvalidInputError",
    "InvalidJobError",
    "InvalidQuantityError",
    "InvalidScheduleError",
    "LimitExceededError",
    "NotFoundError",
    "NotRestartableError",
    "Problem",
    "QuotaExceededError",
    "RuntimeUnavailableError",
    "TjfError",
    "UnknownImageError",
    "type_name",
]


@attrs.frozen
class Problem:
    """One thing wrong with an input: where (``path``) and what (``message``).

    ``path`` names the field as the user spelled it (``retry``, ``health_check.path``,
    ``jobs[2].mem``); an empty path means the input as a whole.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def under(self, prefix: str) -> Problem:
        """The same problem, its path placed under ``prefix`` (``jobs[1]`` + ``retry``)."""
        if not prefix:
            return self
        if not self.path:
            return Problem(prefix, self.message)
        sep = "" if self.path.startswith("[") else "."
        return Problem(f"{prefix}{sep}{self.path}", self.message)


class TjfError(Exception):
    """Root of every error tjf raises on purpose."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInputError(TjfError):
    """Input that cannot be accepted; ``problems`` lists each problem with its field."""

    http_status = 400

    def __init__(self, problems: Iterable[Problem] | str, *, summary: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = [str(p) for p in self.problems]
        if summary is None:
            message = "; ".join(lines)
        else:
            message = summary + (": " + "; ".join(lines) if lines else "")
        super().__init__(message)

    def under(self, prefix: str) -> InvalidInputError:
        """The same error with every problem's path placed under ``prefix``."""
        return type(self)([p.under(prefix) for p in self.problems])


class InvalidJobError(InvalidInputError):
    """A job definition that cannot be accepted."""


class InvalidScheduleError(InvalidInputError):
    """A cron schedule Kubernetes would refuse."""


class InvalidQuantityError(InvalidInputError):
    """A string that is not a Kubernetes quantity."""


class UnknownImageError(InvalidInputError):
    """An image name that the catalog does not know."""


class LimitExceededError(InvalidInputError):
    """A cpu or memory request outside the namespace's LimitRange."""


class InvalidCatalogError(InvalidInputError):
    """An image catalog document that cannot be parsed."""


class NotRestartableError(TjfError):
    """Only scheduled and continuous jobs can be restarted."""

    http_status = 400


class AuthenticationError(TjfError):
    """No usable identity was presented."""

    http_status = 401


class CertificateError(AuthenticationError):
    """A client certificate or subject DN was refused; the message says why."""


class ForbiddenError(TjfError):
    """The identity is known but may not do this."""

    http_status = 403


class NotFoundError(TjfError):
    """No such job (or other object) for this tool."""

    http_status = 404


class AlreadyExistsError(TjfError):
    """A job with this name already exists."""

    http_status = 409


class QuotaExceededError(TjfError):
    """The namespace's ResourceQuota refuses the object; the message names the quota."""

    http_status = 409


class ConfigurationError(TjfError):
    """The service's own settings are wrong (an operator's problem, not a user's)."""

    http_status = 500


class RuntimeUnavailableError(TjfError):
    """The backing runtime cannot be reached; retrying later may work."""

    http_status = 503


def type_name(error_class: type[TjfError]) -> str:
    """The stable name an error class goes by between programs: ``NotFoundError`` ->
    ``not_found`` (the ``type`` of the API's error bodies)."""
    name = error_class.__name__.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


#: Every error class of this tree by its :func:`type_name`.
ERRORS_BY_TYPE: dict[str, type[TjfError]] = {
    type_name(found): found for found in list(globals().values())
    if isinstance(found, type) and issubclass(found, TjfError)
}
