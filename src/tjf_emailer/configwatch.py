"""The emailer's ConfigMap, watched: its keys (REFERENCE §9) take effect while it runs.

Operators tune the emailer by editing one ConfigMap (``send_emails_for_real``, the digest
window, the SMTP server, ...). :class:`ConfigWatcher` list+watches that one object (a field
selector on its name, through :class:`~tjf_emailer.kube.ListWatch`, so a 410 or an outage is
survived like the pod watch survives it) and puts its ``data`` over the settings the emailer
started with (defaults < TOML file < environment < ConfigMap), then hands the result to
``apply`` (the daemon's ``update_settings``).

* A ConfigMap with an invalid value changes nothing: every problem is logged as an error
  naming the key and the value, and the previous configuration stays.
* A deleted ConfigMap (or one missing at start) means the start settings.
* Keys read at start only (:data:`~tjf_emailer.settings.START_ONLY_KEYS`: where the
  Kubernetes objects are, the spool) are logged and keep their running values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import attrs

from tjf_emailer.health import EmailerMetrics
from tjf_emailer.kube import ListWatch, WatchItem
from tjf_emailer.kubeapi import KubeApi
from tjf_emailer.settings import (
    START_ONLY_KEYS,
    EmailerSettings,
    InvalidSettingsError,
    settings_from_mapping,
)

__all__ = ["ConfigWatcher"]

log = logging.getLogger("tjf_emailer.config")


class ConfigWatcher:
    """Turns the sightings of one ConfigMap into settings; :meth:`run` watches it."""

    def __init__(
        self, *, namespace: str, name: str, base: EmailerSettings,
        apply: Callable[[EmailerSettings], None], metrics: EmailerMetrics | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.base = base
        self.current = base
        self._apply = apply
        self._metrics = metrics
        #: The data last taken (applied, or rejected): None before the first sighting.
        self._data: dict[str, str] | None = None
        self._listed = False

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    async def run(self, api: KubeApi, *, timeout_seconds: float = 60.0) -> None:
        """Watch the ConfigMap until cancelled, applying every valid change."""
        watch = ListWatch(
            api, paths=[f"/api/v1/namespaces/{self.namespace}/configmaps"],
            field_selector=f"metadata.name={self.name}", timeout_seconds=timeout_seconds,
        )
        async for item in watch:
            self.handle(item)

    def handle(self, item: WatchItem) -> EmailerSettings | None:
        """Take one sighting; the new settings when they changed (already applied)."""
        if item.type == "BOOKMARK":
            return None
        if item.type == "SYNCED":
            listed, self._listed = self._listed, False
            if listed:
                return None
            if self._data:
                log.warning("%s is gone: back to the start settings", self.where)
            return self._take({})
        if item.type == "LISTED":
            self._listed = True
        if item.type == "DELETED":
            log.warning("%s was deleted: back to the start settings", self.where)
            return self._take({})
        raw = item.object.get("data")
        data = ({str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {})
        return self._take(data)

    def _take(self, data: dict[str, str]) -> EmailerSettings | None:
        before = self._data
        if data == before:
            return None  # seen again (a relist): nothing new
        self._data = data
        try:
            settings = settings_from_mapping(data, base=self.base)
        except InvalidSettingsError as error:
            for problem in error.problems:
                log.error("%s: %s: rejected, the previous configuration stays",
                          self.where, problem)
            self._count("rejected")
            return None
        settings = self._keep_start_only(settings, data, before or {})
        changed = sorted(k for k in data.keys() | (before or {}).keys()
                         if data.get(k) != (before or {}).get(k))
        self.current = settings
        self._apply(settings)
        self._count("applied")
        log.info("%s applied (changed: %s)", self.where, ", ".join(changed) or "nothing")
        return settings

    def _keep_start_only(
        self, settings: EmailerSettings, data: Mapping[str, str], before: Mapping[str, str]
    ) -> EmailerSettings:
        for key in sorted(START_ONLY_KEYS & data.keys()):
            if data[key] != before.get(key):
                log.warning("%s: %s = %r is read at start only (config file or environment): "
                            "not applied", self.where, key, data[key])
        running = self.current
        return attrs.evolve(
            settings, cluster=running.cluster,
            send=attrs.evolve(settings.send, spool_dir=running.send.spool_dir),
        )

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.config_reloads.labels(outcome).inc()
