"""Reading log files from a tool's home: tail, follow, and never a byte from outside the home."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.errors import ForbiddenError, NotFoundError
from tjf_core.logfiles import follow_lines, open_in_home, tail_lines


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("the other tool's secret\n")
    return secret


def tail(home: Path, *paths: str, lines: int | None = None) -> list[str]:
    return list(tail_lines(PurePosixPath(home), paths, lines=lines))


# --- tail ----------------------------------------------------------------------------------------


def test_tail_gives_the_last_lines_of_each_file_in_order(home: Path) -> None:
    (home / "job.out").write_text("1\n2\n3\n")
    (home / "job.err").write_text("e1\ne2\n")
    assert tail(home, "job.out", "job.err") == ["1", "2", "3", "e1", "e2"]
    assert tail(home, "job.out", "job.err", lines=2) == ["2", "3", "e1", "e2"]
    assert tail(home, "job.out", "job.err", lines=0) == []


def test_absolute_paths_inside_the_home_are_fine(home: Path) -> None:
    (home / "job.out").write_text("x\n")
    assert tail(home, str(home / "job.out")) == ["x"]


def test_one_file_for_both_streams_is_read_once(home: Path) -> None:
    (home / "both.log").write_text("a\nb\n")
    assert tail(home, "both.log", str(home / "both.log")) == ["a", "b"]


def test_an_unfinished_last_line_is_a_line(home: Path) -> None:
    (home / "job.out").write_text("a\nb\nstill writi")
    assert tail(home, "job.out", lines=2) == ["b", "still writi"]


def test_missing_files_are_skipped_but_all_missing_is_not_found(home: Path) -> None:
    with pytest.raises(NotFoundError, match="no log file yet") as missing:
        tail(home, "job.out", "job.err")
    assert missing.value.http_status == 404
    (home / "job.err").write_text("only errors\n")
    assert tail(home, "job.out", "job.err") == ["only errors"]


def test_undecodable_bytes_are_replaced_not_fatal(home: Path) -> None:
    (home / "job.out").write_bytes(b"caf\xe9\n")
    assert tail(home, "job.out") == ["caf\ufffd"]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_tail_dropped_unread_holds_no_file_open(home: Path) -> None:
    for name in ("job.out", "job.err"):
        (home / name).write_text("x\ny\n")
    before = _open_fds()
    unread = tail_lines(PurePosixPath(home), ["job.out", "job.err"], lines=None)
    half = tail_lines(PurePosixPath(home), ["job.out", "job.err"], lines=None)
    assert next(half) == "x"
    half.close()  # type: ignore[attr-defined]  # a generator
    assert _open_fds() == before
    del unread


line_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n\r"))


@settings(max_examples=200)
@given(lines=st.lists(line_text, max_size=30), count=st.none() | st.integers(0, 40))
def test_tail_is_the_end_of_what_was_written(lines: list[str], count: int | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "job.out").write_text("".join(f"{line}\n" for line in lines), "utf-8")
        got = tail(Path(directory), "job.out", lines=count)
    assert got == (lines if count is None else lines[max(len(lines) - count, 0):])


# --- follow --------------------------------------------------------------------------------------


class Writer:
    """Plays the job: each sleep of the follower runs the next step; then the job has ended."""

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self.steps = steps
        self.naps = 0

    def sleep(self, seconds: float) -> None:
        assert seconds == 0.5
        self.steps[self.naps]()
        self.naps += 1

    def running(self) -> bool:
        return self.naps < len(self.steps)


def follow(home: Path, writer: Writer, *paths: str, lines: int | None = None) -> Iterator[str]:
    return follow_lines(PurePosixPath(home), paths, lines=lines, sleep=writer.sleep,
                        interval=0.5, keep_going=writer.running)


def append(path: Path, text: str) -> Callable[[], None]:
    def step() -> None:
        with path.open("a") as file:
            file.write(text)
    return step


def test_follow_tails_then_picks_up_appended_lines(home: Path) -> None:
    out = home / "job.out"
    out.write_text("old 1\nold 2\nold 3\n")
    writer = Writer([append(out, "new 1\n"), append(out, "new 2\nhalf"), append(out, " done\n")])
    assert list(follow(home, writer, "job.out", lines=1)) == [
        "old 3", "new 1", "new 2", "half done"]
    assert writer.naps == 3


def test_follow_finds_a_file_created_later(home: Path) -> None:
    (home / "job.out").write_text("out\n")
    writer = Writer([lambda: None, append(home / "job.err", "err 1\nerr 2\n")])
    assert list(follow(home, writer, "job.out", "job.err")) == ["out", "err 1", "err 2"]


def test_follow_stops_when_the_job_ends_and_flushes_the_last_line(home: Path) -> None:
    out = home / "job.out"
    out.write_text("a\n")
    writer = Writer([append(out, "b\nno newline")])
    assert list(follow(home, writer, "job.out")) == ["a", "b", "no newline"]


def test_follow_stops_at_once_for_a_finished_job_without_files(home: Path) -> None:
    writer = Writer([])
    assert list(follow(home, writer, "job.out")) == []
    assert writer.naps == 0


def test_follow_rereads_a_truncated_file(home: Path) -> None:
    out = home / "job.out"
    out.write_text("long line before truncation\n")
    def truncate() -> None:
        out.write_text("fresh\n")

    writer = Writer([truncate])
    assert list(follow(home, writer, "job.out")) == ["long line before truncation", "fresh"]


def test_follow_reads_a_file_rotated_by_renaming(home: Path) -> None:
    out = home / "job.out"
    out.write_text("before\n")

    def rotate() -> None:
        with out.open("a") as file:
            file.write("last of old\n")
        out.rename(home / "job.out.1")
        out.write_text("first of new\n")

    writer = Writer([rotate])
    assert list(follow(home, writer, "job.out")) == ["before", "last of old", "first of new"]


def test_follow_refuses_a_file_swapped_for_a_symlink_out(home: Path, outside: Path) -> None:
    out = home / "job.out"
    out.write_text("innocent\n")

    def swap() -> None:
        out.unlink()
        out.symlink_to(outside)

    lines = follow(home, Writer([swap, lambda: None]), "job.out")
    assert next(lines) == "innocent"
    with pytest.raises(ForbiddenError):
        list(lines)


# --- never outside the home ----------------------------------------------------------------------


def test_dot_dot_out_of_the_home_is_refused(home: Path, outside: Path) -> None:
    with pytest.raises(ForbiddenError, match="outside the tool's home") as refused:
        tail(home, f"../{outside.name}")
    assert refused.value.http_status == 403


def test_an_absolute_path_outside_is_refused(home: Path, outside: Path) -> None:
    with pytest.raises(ForbiddenError):
        tail(home, str(outside))
    sibling = home.parent / f"{home.name}2"  # its name merely starts like the home's
    sibling.mkdir()
    (sibling / "job.out").write_text("x\n")
    with pytest.raises(ForbiddenError):
        tail(home, str(sibling / "job.out"))


def test_a_symlink_in_the_home_pointing_out_is_refused(home: Path, outside: Path) -> None:
    (home / "job.out").symlink_to(outside)
    with pytest.raises(ForbiddenError):
        tail(home, "job.out")
    (home / "logs").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(ForbiddenError):
        tail(home, f"logs/{outside.name}")
    with pytest.raises(ForbiddenError):
        list(follow(home, Writer([]), "job.out"))


def test_a_symlink_even_to_a_file_inside_the_home_is_refused(home: Path) -> None:
    # Following none is what makes the walk safe against a tool swapping links mid-open.
    (home / "real.log").write_text("inside\n")
    (home / "job.out").symlink_to(home / "real.log")
    with pytest.raises(ForbiddenError, match="may not go through symbolic links"):
        tail(home, "job.out")
    (home / "logs").mkdir()
    (home / "logs" / "real.log").write_text("nested\n")
    (home / "alias").symlink_to(home / "logs", target_is_directory=True)
    with pytest.raises(ForbiddenError, match="may not go through symbolic links"):
        tail(home, "alias/real.log")
    assert tail(home, "logs/real.log") == ["nested"]


def test_files_in_subdirectories_and_dot_components_are_read(home: Path) -> None:
    (home / "logs" / "deep").mkdir(parents=True)
    (home / "logs" / "deep" / "job.out").write_text("deep\n")
    assert tail(home, "logs/deep/job.out") == ["deep"]
    assert tail(home, "./logs/./deep//job.out") == ["deep"]
    assert tail(home, str(home / "logs" / "deep" / "job.out")) == ["deep"]


def test_dot_dot_is_refused_even_when_it_stays_inside(home: Path) -> None:
    (home / "logs").mkdir()
    (home / "job.out").write_text("x\n")
    with pytest.raises(ForbiddenError, match="outside the tool's home"):
        tail(home, "logs/../job.out")
    with pytest.raises(ForbiddenError, match="outside the tool's home"):
        tail(home, "logs/../../home/job.out")


def test_a_missing_directory_or_a_file_used_as_one_is_reported(home: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        open_in_home(PurePosixPath(home), "nowhere/job.out")
    (home / "plain").write_text("x\n")
    with pytest.raises(ForbiddenError, match="'plain' in its path is not a directory"):
        tail(home, "plain/job.out")


def test_the_home_itself_and_nul_characters_are_refused(home: Path) -> None:
    with pytest.raises(ForbiddenError, match="the tool's home itself"):
        open_in_home(PurePosixPath(home), ".")
    with pytest.raises(ForbiddenError, match="the tool's home itself"):
        open_in_home(PurePosixPath(home), str(home))
    with pytest.raises(ForbiddenError, match="NUL"):
        open_in_home(PurePosixPath(home), "job\0.out")


def test_a_missing_home_means_no_file_yet(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        open_in_home(PurePosixPath(tmp_path / "absent"), "job.out")


def test_an_intermediate_directory_linked_outside_is_refused(home: Path, outside: Path) -> None:
    (home / "logs").symlink_to(outside.parent, target_is_directory=True)
    for path in (f"logs/{outside.name}", str(home / "logs" / outside.name)):
        with pytest.raises(ForbiddenError, match="may not go through symbolic links"):
            open_in_home(PurePosixPath(home), path)


def test_opening_leaves_no_descriptor_behind_on_refusal(home: Path, outside: Path) -> None:
    (home / "a" / "b").mkdir(parents=True)
    (home / "a" / "b" / "c").symlink_to(outside.parent, target_is_directory=True)
    (home / "a" / "b" / "dir.out").mkdir()
    before = _open_fds()
    for path in ("a/b/c/x", "a/b/dir.out", "a/b/none", "a/../a"):
        with pytest.raises((ForbiddenError, NotFoundError)):
            open_in_home(PurePosixPath(home), path)
    assert _open_fds() == before


def test_a_home_reached_through_a_symlink_works(home: Path, tmp_path: Path) -> None:
    (home / "job.out").write_text("via link\n")
    link = tmp_path / "link-to-home"
    link.symlink_to(home, target_is_directory=True)
    assert tail(link, "job.out") == ["via link"]


def test_a_fifo_is_refused_without_blocking(home: Path) -> None:
    fifo = home / "job.out"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            tail(home, "job.out")
            outcome.append(None)
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    if reader.is_alive():  # unblock it before failing, so the run can end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("opening a FIFO blocked")
    [error] = outcome
    assert isinstance(error, ForbiddenError)
    assert "not a regular file" in str(error)


def test_a_directory_is_refused(home: Path) -> None:
    (home / "job.out").mkdir()
    with pytest.raises(ForbiddenError), open_in_home(PurePosixPath(home), "job.out"):
        pass
