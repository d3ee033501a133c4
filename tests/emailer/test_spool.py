"""The spool: durable, atomic, idempotent, ordered."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tjf_emailer.spool import Spool

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_put_read_remove(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    second = spool.put(b"two", message_id="<2@x>", now=T0 + timedelta(seconds=1))
    first = spool.put(b"one", message_id="<1@x>", now=T0)
    assert first is not None
    assert second is not None
    assert spool.pending() == [first, second]  # oldest first
    assert spool.read(first) == b"one"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    spool.remove(first)
    assert spool.pending() == [second]
    assert [p.name for p in (tmp_path / "spool").iterdir() if p.name.startswith(".")] == []


def test_the_same_email_is_spooled_once_even_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.put(b"x", message_id="<1@x>", now=T0) is not None
    assert spool.put(b"x", message_id="<1@x>", now=T0 + timedelta(seconds=5)) is None
    assert Spool(tmp_path).put(b"x", message_id="<1@x>", now=T0) is None
    assert len(Spool(tmp_path)) == 1


def test_a_half_written_email_from_a_crash_is_dropped_at_start(tmp_path: Path) -> None:
    (tmp_path / ".tmp-00000000000000001-abc.eml").write_bytes(b"half")
    spool = Spool(tmp_path)
    assert spool.pending() == []
    assert not (tmp_path / ".tmp-00000000000000001-abc.eml").exists()


def test_buried_emails_leave_the_queue_but_stay_on_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    item = spool.put(b"x", message_id="<1@x>", now=T0)
    assert item is not None
    target = spool.bury(item)
    assert spool.pending() == []
    assert target.read_bytes() == b"x"


def test_watermark_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.read_watermark() is None
    spool.write_watermark(T0)
    assert Spool(tmp_path).read_watermark() == T0
    (tmp_path / "watermark").write_text("garbage")
    assert spool.read_watermark() is None
