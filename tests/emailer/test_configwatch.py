"""The ConfigMap watch: valid changes applied live, invalid ones rejected and logged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import pytest

from tjf_emailer.configwatch import ConfigWatcher
from tjf_emailer.health import EmailerMetrics
from tjf_emailer.kube import WatchItem
from tjf_emailer.settings import ClusterSettings, EmailerSettings

BASE = attrs.evolve(EmailerSettings(), cluster=ClusterSettings(namespace="tjf"))


def configmap(kind: str, **data: str) -> WatchItem:
    return WatchItem(kind, {"metadata": {"name": "tjf-emailer", "resourceVersion": "1"},
                            "data": data})


def synced() -> WatchItem:
    return WatchItem("SYNCED", {"metadata": {"resourceVersion": "2"}})


@pytest.fixture
def watcher() -> tuple[ConfigWatcher, list[EmailerSettings], EmailerMetrics]:
    applied: list[EmailerSettings] = []
    metrics = EmailerMetrics()
    return (ConfigWatcher(namespace="tjf", name="tjf-emailer", base=BASE,
                          apply=applied.append, metrics=metrics), applied, metrics)


Watcher = tuple[ConfigWatcher, list[EmailerSettings], EmailerMetrics]


def outcome(metrics: EmailerMetrics, which: str) -> Any:
    return metrics.registry.get_sample_value("tjf_emailer_config_reloads_total",
                                             {"outcome": which})


def test_a_change_is_applied_over_the_start_settings(watcher: Watcher) -> None:
    config, applied, metrics = watcher
    config.handle(configmap("LISTED", send_emails_for_real="yes"))
    assert config.handle(synced()) is None
    config.handle(configmap("MODIFIED", send_emails_for_real="yes", smtp_server_port="2525"))
    assert [s.send.for_real for s in applied] == [True, True]
    assert applied[-1].smtp.port == 2525
    assert applied[-1].cluster == BASE.cluster
    # Seen again after a relist: nothing new.
    assert config.handle(configmap("LISTED", send_emails_for_real="yes",
                                   smtp_server_port="2525")) is None
    assert outcome(metrics, "applied") == 2


def test_an_invalid_value_is_logged_with_key_and_value_and_changes_nothing(
    watcher: Watcher, caplog: pytest.LogCaptureFixture
) -> None:
    config, applied, metrics = watcher
    config.handle(configmap("ADDED", task_send_emails_max="5"))
    with caplog.at_level(logging.ERROR, logger="tjf_emailer.config"):
        assert config.handle(configmap("MODIFIED", task_send_emails_max="5",
                                       smtp_server_port="lots")) is None
    assert len(applied) == 1
    assert config.current.send.max_per_round == 5
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == (
        "ConfigMap tjf/tjf-emailer: smtp_server_port: 'lots' is not a whole number: "
        "rejected, the previous configuration stays")
    assert outcome(metrics, "rejected") == 1


def test_a_deleted_or_missing_configmap_means_the_start_settings(watcher: Watcher) -> None:
    config, applied, _ = watcher
    config.handle(configmap("ADDED", debug="yes"))
    config.handle(configmap("DELETED", debug="yes"))
    assert [s.debug for s in applied] == [True, False]
    config.handle(configmap("ADDED", debug="yes"))
    config.handle(synced())  # a relist that found no ConfigMap: it was deleted meanwhile
    assert applied[-1] == BASE
    assert config.handle(WatchItem("BOOKMARK", {"metadata": {"resourceVersion": "9"}})) is None


def test_keys_read_at_start_only_keep_their_running_values(
    watcher: Watcher, caplog: pytest.LogCaptureFixture
) -> None:
    config, applied, _ = watcher
    with caplog.at_level(logging.WARNING, logger="tjf_emailer.config"):
        config.handle(configmap("ADDED", spool_dir="/elsewhere", lease_name="other",
                                group_wait="5"))
    assert applied[-1].send.spool_dir == BASE.send.spool_dir
    assert applied[-1].cluster.lease_name == "tjf-emailer"
    assert applied[-1].digest.group_wait.total_seconds() == 5
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "lease_name = 'other' is read at start only" in warned
    assert "spool_dir = '/elsewhere' is read at start only" in warned
    assert Path("/elsewhere") != applied[-1].send.spool_dir
