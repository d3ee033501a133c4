"""The kubernetes runtime's tool -> uid lookup (``identity.uid_user_template``)."""

from __future__ import annotations

import os
import pwd

import pytest

from tjf_http.runtimes import uid_lookup


def test_no_template_gives_no_uid() -> None:
    assert uid_lookup("")("anything") is None


def test_the_template_names_a_real_unix_user() -> None:
    me = pwd.getpwuid(os.geteuid())
    # The template maps the "tool" to this process's own user, which surely exists.
    assert uid_lookup("{tool}")(me.pw_name) == me.pw_uid


def test_a_tool_without_a_user_gives_no_uid_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="tjf_http"):
        assert uid_lookup("tools.{tool}")("surely-no-such-tool-here") is None
    assert "tools.surely-no-such-tool-here" in caplog.text
