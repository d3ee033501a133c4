"""Log files the local runtime appends to: created inside the tool's home, never outside it.

The runtime may run as root, so a tool that could steer the open out of its home (a ``..``, a
symlinked directory, a directory swapped for a symlink mid-open) could create files such as
``/etc/nologin``. Each test checks both the refusal and that nothing appeared outside.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.errors import ForbiddenError, NotFoundError
from tjf_core.local.processes import open_in_home_for_append
from tjf_core.logfiles import open_fd_in_home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory the tool must not create files in (stands for /etc)."""
    outside = tmp_path / "etc"
    outside.mkdir()
    return outside


def append(home: Path, path: str, text: bytes) -> None:
    fd = open_in_home_for_append(home, path)
    try:
        os.write(fd, text)
    finally:
        os.close(fd)


def test_a_new_file_is_created_then_appended_to(home: Path) -> None:
    append(home, "job.out", b"one\n")
    append(home, "job.out", b"two\n")
    assert (home / "job.out").read_bytes() == b"one\ntwo\n"
    umask = os.umask(0)
    os.umask(umask)
    assert (home / "job.out").stat().st_mode & 0o777 == 0o644 & ~umask


def test_the_descriptor_appends_blocks_and_is_not_inherited(home: Path) -> None:
    fd = open_in_home_for_append(home, "job.out")
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert flags & os.O_APPEND
        assert not flags & os.O_NONBLOCK
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)


def test_nested_and_absolute_paths_inside_the_home_work(home: Path, tmp_path: Path) -> None:
    (home / "logs" / "deep").mkdir(parents=True)
    append(home, "logs/deep/job.out", b"a\n")
    append(home, "./logs//deep/./job.out", b"b\n")
    append(home, str(home / "logs" / "deep" / "job.out"), b"c\n")
    link = tmp_path / "link-to-home"  # the home itself may be reached through a link
    link.symlink_to(home, target_is_directory=True)
    append(link, "logs/deep/job.out", b"d\n")
    append(link, str(home / "logs" / "deep" / "job.out"), b"e\n")
    assert (home / "logs" / "deep" / "job.out").read_bytes() == b"a\nb\nc\nd\ne\n"


def test_a_missing_directory_is_not_created(home: Path) -> None:
    with pytest.raises(ForbiddenError, match="directory 'logs' does not exist"):
        open_in_home_for_append(home, "logs/job.out")
    assert list(home.iterdir()) == []


def test_a_symlinked_directory_pointing_outside_is_refused(home: Path, outside: Path) -> None:
    (home / "logs").symlink_to(outside, target_is_directory=True)
    for path in ("logs/nologin", str(home / "logs" / "nologin")):
        with pytest.raises(ForbiddenError, match="may not go through symbolic links"):
            open_in_home_for_append(home, path)
    assert list(outside.iterdir()) == []


def test_a_deeper_symlinked_directory_is_refused(home: Path, outside: Path) -> None:
    (home / "a" / "b").mkdir(parents=True)
    (home / "a" / "b" / "c").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ForbiddenError, match="outside the tool's home"):
        open_in_home_for_append(home, "a/b/c/nologin")
    assert list(outside.iterdir()) == []


def test_a_directory_swapped_for_a_symlink_during_the_open_is_refused(
    home: Path, outside: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reviewed attack: ``logs`` is a real directory when looked at, a link when used."""
    (home / "logs").mkdir()
    real_open = os.open
    swapped: list[str] = []

    def swapping_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if not swapped and "logs" in str(path):
            (home / "logs").rename(home / "logs.old")
            (home / "logs").symlink_to(outside, target_is_directory=True)
            swapped.append(str(path))
        result: int = real_open(path, *args, **kwargs)
        return result

    monkeypatch.setattr(os, "open", swapping_open)
    with pytest.raises(ForbiddenError, match="may not go through symbolic links"):
        open_in_home_for_append(home, "logs/nologin")
    monkeypatch.undo()
    assert swapped
    assert list(outside.iterdir()) == []


def test_dot_dot_is_refused(home: Path, outside: Path) -> None:
    (home / "logs").mkdir()
    for path in ("../etc/nologin", "logs/../../etc/nologin", "logs/../job.out",
                 str(home / ".." / "etc" / "nologin")):
        with pytest.raises(ForbiddenError, match="outside the tool's home"):
            open_in_home_for_append(home, path)
    assert list(outside.iterdir()) == []
    assert not (home / "job.out").exists()


def test_an_absolute_path_elsewhere_is_refused(home: Path, outside: Path) -> None:
    sibling = home.parent / f"{home.name}2"  # its name merely starts like the home's
    sibling.mkdir()
    for path in (str(outside / "nologin"), str(sibling / "job.out")):
        with pytest.raises(ForbiddenError, match="outside the tool's home"):
            open_in_home_for_append(home, path)
    assert list(outside.iterdir()) == []
    assert list(sibling.iterdir()) == []


def test_a_dangling_or_outside_file_link_is_not_followed(home: Path, outside: Path) -> None:
    (home / "dangling.out").symlink_to(outside / "nologin")
    (outside / "passwd").write_bytes(b"root\n")
    (home / "passwd.out").symlink_to(outside / "passwd")
    for path in ("dangling.out", "passwd.out"):
        with pytest.raises(ForbiddenError, match="outside the tool's home"):
            open_in_home_for_append(home, path)
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert (outside / "passwd").read_bytes() == b"root\n"


def test_a_fifo_is_refused_without_blocking(home: Path) -> None:
    os.mkfifo(home / "job.out")
    outcome: list[BaseException | None] = []

    def opener() -> None:
        try:
            os.close(open_in_home_for_append(home, "job.out"))
            outcome.append(None)
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    thread = threading.Thread(target=opener, daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():  # unblock it before failing, so the run can end
        os.close(os.open(home / "job.out", os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail("opening a FIFO blocked")
    [error] = outcome
    assert isinstance(error, ForbiddenError)


def test_a_directory_and_the_home_itself_are_refused(home: Path) -> None:
    (home / "job.out").mkdir()
    for path, message in (("job.out", "not a regular file"), (".", "the tool's home itself"),
                          (str(home), "the tool's home itself")):
        with pytest.raises(ForbiddenError, match=message):
            open_in_home_for_append(home, path)


# --- the law: whatever the path, an opened file is inside the home --------------------------------

#: Names in the tree below: directories, a file, links in and out, and the tricky ones.
COMPONENTS = ["a", "b", "f", "new", "in_dir", "out_dir", "in_file", "out_file", "dangling",
              "..", ".", ""]


def _tree(root: Path) -> tuple[Path, Path]:
    home, outside = root / "home", root / "outside"
    (home / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret\n")
    (home / "f").write_bytes(b"f\n")
    (home / "a" / "f").write_bytes(b"af\n")
    (home / "in_dir").symlink_to(home / "a", target_is_directory=True)
    (home / "a" / "out_dir").symlink_to(outside, target_is_directory=True)
    (home / "in_file").symlink_to(home / "f")
    (home / "a" / "b" / "out_file").symlink_to(outside / "secret")
    (home / "dangling").symlink_to(outside / "created")
    return home, outside


def _opener(home: Path, path: str, *, mode: str) -> Callable[[], int]:
    if mode == "append":
        return lambda: open_in_home_for_append(home, path)
    return lambda: open_fd_in_home(home, path, flags=os.O_RDONLY)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=5),
       absolute=st.booleans(), mode=st.sampled_from(["append", "read"]))
def test_an_opened_log_file_is_always_inside_the_home(
    parts: list[str], absolute: bool, mode: str,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        home, outside = _tree(Path(directory))
        path = "/".join(parts)
        if absolute:
            path = f"{home}/{path}"
        try:
            fd = _opener(home, path, mode=mode)()
        except (ForbiddenError, NotFoundError):
            opened = None
        else:
            try:
                opened = os.readlink(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
        if opened is not None:
            assert opened.startswith(f"{os.path.realpath(home)}/")
            # No link followed, no ".." taken: the file is the one the path spells out.
            spelled = [part for part in parts if part not in {".", ""}]
            assert opened == os.path.join(os.path.realpath(home), *spelled)
            assert ".." not in parts
        assert sorted(p.name for p in outside.iterdir()) == ["secret"]
        assert (outside / "secret").read_bytes() == b"secret\n"
