"""The kubernetes runtime's tool -> uid lookup (``identity.uid_user_template``)."""

from __future__ import annotations

import os
import pwd
from types import SimpleNamespace

import pytest

from tjf_core.errors import RuntimeUnavailableError
from tjf_http.runtimes import uid_lookup


def test_no_template_gives_no_uid() -> None:
    assert uid_lookup("")("anything") is None


def test_the_template_names_a_real_unix_user() -> None:
    me = pwd.getpwuid(os.geteuid())
    # The template maps the "tool" to this process's own user, which surely exists.
    assert uid_lookup("{tool}")(me.pw_name) == me.pw_uid


def test_a_tool_without_a_user_is_refused_naming_the_user(
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = r"'tools\.surely-no-such-tool' on this server yet"
    with caplog.at_level("WARNING", logger="tjf_http"), pytest.raises(
            RuntimeUnavailableError, match=expected) as refused:
        uid_lookup("tools.{tool}")("surely-no-such-tool")
    assert refused.value.http_status == 503
    assert "tools.surely-no-such-tool" in caplog.text


class Directory:
    """A user database that counts its lookups; users can be added later."""

    def __init__(self) -> None:
        self.users: dict[str, int] = {}
        self.asked = 0

    def getpwnam(self, name: str) -> SimpleNamespace:
        self.asked += 1
        if name not in self.users:
            raise KeyError(name)
        return SimpleNamespace(pw_uid=self.users[name])


def test_answers_are_kept_for_a_while_and_a_new_user_is_seen_soon() -> None:
    directory, now = Directory(), [0.0]
    uid_of = uid_lookup("tools.{tool}", ttl_seconds=300, clock=lambda: now[0],
                        getpwnam=directory.getpwnam)
    with pytest.raises(RuntimeUnavailableError):
        uid_of("new")
    directory.users["tools.new"] = 52001
    now[0] = 10.0  # the miss is still remembered
    with pytest.raises(RuntimeUnavailableError):
        uid_of("new")
    now[0] = 31.0  # a miss is kept a tenth of the ttl
    assert uid_of("new") == 52001
    for _ in range(100):
        assert uid_of("new") == 52001
    assert directory.asked == 2
    now[0] = 332.0
    assert uid_of("new") == 52001
    assert directory.asked == 3
