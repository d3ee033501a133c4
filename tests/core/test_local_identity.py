"""The local API's shared rules: a unix user's tool, and where the socket is."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.errors import ConfigurationError, InvalidInputError, Problem
from tjf_core.identity import ToolIdentity
from tjf_core.local_identity import (
    SYSTEM_SOCKET,
    default_socket_path,
    socket_candidates,
    tool_from_username,
)
from tjf_core.settings import IdentitySettings

TOOL_NAMES = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
#: Unix user names as systems allow them, and then some (upper case, dots, '_', '$').
USER_NAMES = st.text(alphabet="abcXYZ019-._$", min_size=0, max_size=24)


# --- tool_from_username -----------------------------------------------------------------------


def test_the_toolforge_prefix_is_taken_off() -> None:
    assert tool_from_username("tools.mytool") == "mytool"
    assert tool_from_username("alice") == "alice"
    assert tool_from_username("tools-x") == "tools-x"  # not the prefix: a name of its own
    assert tool_from_username("tk.mytool", prefix="tk.") == "mytool"
    with pytest.raises(InvalidInputError):  # without a prefix to take off, the dot stays
        tool_from_username("tools.mytool", prefix="")


@pytest.mark.parametrize(("name", "summary"), [
    ("tools.My_Tool", "the unix user 'tools.My_Tool' (tool 'My_Tool') names no tool"),
    ("John", "the unix user 'John' names no tool"),
    ("tools.", "the unix user 'tools.' (tool '') names no tool"),
    ("tools.tools.x", "the unix user 'tools.tools.x' (tool 'tools.x') names no tool"),
])
def test_a_user_that_names_no_tool_is_invalid_input(name: str, summary: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        tool_from_username(name)
    assert str(raised.value).startswith(f"{summary}: tool: ")
    assert "is not a valid tool name" in str(raised.value)
    assert [problem.path for problem in raised.value.problems] == ["tool"]


def test_the_namespace_rule_of_the_settings_applies() -> None:
    long = "a" * 60
    with pytest.raises(InvalidInputError, match="is too long"):
        tool_from_username(f"tools.{long}")
    roomy = IdentitySettings(namespace_template="{tool}")
    assert tool_from_username(f"tools.{long}", settings=roomy) == long


@settings(max_examples=300)
@given(TOOL_NAMES)
def test_a_tools_user_is_its_tool(tool: str) -> None:
    assert tool_from_username(f"tools.{tool}") == tool
    assert tool_from_username(tool) == tool


@settings(max_examples=300)
@given(USER_NAMES)
def test_the_rule_is_the_cores_tool_name_rule(name: str) -> None:
    # Without a prefix, a user name is accepted exactly when the core accepts it as a tool.
    try:
        expected: str | list[Problem] = ToolIdentity.for_tool(
            name, settings=IdentitySettings()).tool
    except InvalidInputError as error:
        expected = list(error.problems)
    try:
        found: str | list[Problem] = tool_from_username(name, prefix="")
    except InvalidInputError as error:
        found = list(error.problems)
    assert found == expected


# --- where the socket is ----------------------------------------------------------------------


def test_the_variable_wins_for_everyone() -> None:
    env = {"TJF_LOCAL_SOCKET": "/srv/tjf.sock", "XDG_RUNTIME_DIR": "/run/user/1000"}
    for uid in (0, 1000):
        assert default_socket_path(env, uid=uid) == PurePosixPath("/srv/tjf.sock")
        assert socket_candidates(env, uid=uid) == (PurePosixPath("/srv/tjf.sock"),)


def test_a_relative_variable_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"TJF_LOCAL_SOCKET 'api\.sock' is not an "
                                                 r"absolute path"):
        default_socket_path({"TJF_LOCAL_SOCKET": "api.sock"}, uid=1000)


def test_a_user_with_a_runtime_directory_has_a_socket_there() -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    mine = PurePosixPath("/run/user/1000/tjf/api.sock")
    assert default_socket_path(env, uid=1000) == mine
    assert socket_candidates(env, uid=1000) == (mine, SYSTEM_SOCKET)


@pytest.mark.parametrize(("env", "uid"), [
    ({}, 1000), ({}, 0), ({"XDG_RUNTIME_DIR": "/run/user/0"}, 0),
    ({"XDG_RUNTIME_DIR": "relative/dir"}, 1000), ({"XDG_RUNTIME_DIR": ""}, 1000),
    ({"TJF_LOCAL_SOCKET": ""}, 1000)])
def test_otherwise_the_machines_socket(env: dict[str, str], uid: int) -> None:
    assert default_socket_path(env, uid=uid) == SYSTEM_SOCKET == PurePosixPath(
        "/run/tjf/api.sock")
    assert socket_candidates(env, uid=uid) == (SYSTEM_SOCKET,)


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["TJF_LOCAL_SOCKET", "XDG_RUNTIME_DIR", "HOME"]),
                       st.sampled_from(["", "/a", "/run/user/7", "b/c", "/x/y.sock"])),
       st.integers(min_value=0, max_value=70000))
def test_a_client_looks_first_where_its_own_server_would_listen(env: dict[str, str],
                                                                uid: int) -> None:
    try:
        own = default_socket_path(env, uid=uid)
    except ConfigurationError:
        with pytest.raises(ConfigurationError):
            socket_candidates(env, uid=uid)
        return
    candidates = socket_candidates(env, uid=uid)
    assert candidates[0] == own
    assert candidates[-1] == (own if env.get("TJF_LOCAL_SOCKET") else SYSTEM_SOCKET)
    assert len(set(candidates)) == len(candidates)
    assert all(candidate.is_absolute() for candidate in candidates)


@pytest.mark.parametrize("name", ["alpha", "root", "nobody", "www-data"])
def test_a_multi_user_server_requires_the_prefix(name: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"the unix user '{name}' names no tool: only "
                                                r"users named tools\.<tool> are tools"):
        tool_from_username(name, require_prefix=True)
    assert tool_from_username(f"tools.{name}", require_prefix=True) == name
    assert tool_from_username(name) == name  # the lenient rule, a single-user server's
