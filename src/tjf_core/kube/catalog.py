"""The image catalog as the cluster publishes it, read again now and then, never lost.

Toolforge publishes the images jobs may use in a ConfigMap (``image-config/image-config``, key
``images-v1.yaml``); admins change it while the service runs. :class:`CatalogCache` reads it
(or a file, ``images_file``) when its copy is older than ``images_refresh_seconds``, measured
with an injected clock. A read that fails after a good one keeps the good copy and logs why:
a typo in the ConfigMap must not stop every ``run``. With no good copy yet, the failure is the
caller's: a :class:`ConfigurationError` naming the source, or :class:`RuntimeUnavailableError`
when the API cannot be reached (then "try again" is the truthful advice, not "fix the config").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from tjf_core.errors import ConfigurationError, RuntimeUnavailableError, TjfError
from tjf_core.images import ImageCatalog

__all__ = ["CatalogCache", "file_fetcher"]

log = logging.getLogger(__name__)


def file_fetcher(path: str) -> Callable[[], str]:
    """A fetcher reading the catalog document from the file ``path``."""

    def fetch() -> str:
        try:
            return Path(path).read_text("utf-8")
        except OSError as error:
            raise ConfigurationError(
                f"the image catalog file {path} cannot be read: {error.strerror}"
            ) from None
        except UnicodeDecodeError as error:
            raise ConfigurationError(f"the image catalog file {path} is not UTF-8: {error}") \
                from None

    return fetch


class CatalogCache:
    """The last good catalog from ``fetch``, refreshed every ``refresh_seconds``. Thread-safe."""

    def __init__(
        self, *, fetch: Callable[[], str], source: str, refresh_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._fetch = fetch
        self._source = source
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._catalog: ImageCatalog | None = None
        self._due = 0.0
        #: How many times the source was read (successfully or not): for tests and metrics.
        self.reads = 0

    def get(self) -> ImageCatalog:
        with self._lock:
            now = self._clock()
            if self._catalog is not None and now < self._due:
                return self._catalog
            self.reads += 1
            try:
                catalog = ImageCatalog.from_yaml(self._fetch())
            except TjfError as error:
                if self._catalog is None:
                    if isinstance(error, RuntimeUnavailableError):
                        raise
                    raise ConfigurationError(
                        f"the image catalog ({self._source}) cannot be read: {error}"
                    ) from None
                # Try again after a full interval: a broken ConfigMap is not fixed in seconds,
                # and every request would otherwise pay for a failing read.
                self._due = now + self._refresh
                log.warning("keeping the image catalog read before: reading %s failed: %s",
                            self._source, error)
                return self._catalog
            self._catalog = catalog
            self._due = now + self._refresh
            return catalog
