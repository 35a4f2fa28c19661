"""How a flush's packed commands are joined into writes: few writes, no giant copies."""

from __future__ import annotations

from fluxabee._backends import WRITE_CHUNK, _chunks


def test_a_usual_flush_is_one_write() -> None:
    parts = [b"a" * 100, b"b" * 200, b"c"]
    assert list(_chunks(parts)) == [b"".join(parts)]


def test_nothing_to_send_is_no_write() -> None:
    assert list(_chunks([])) == []


def test_a_big_part_goes_alone_and_the_order_is_kept() -> None:
    big = b"B" * WRITE_CHUNK
    assert list(_chunks([b"x", big, b"y"])) == [b"x", big, b"y"]


def test_many_small_parts_make_writes_of_about_the_chunk_size() -> None:
    part = b"p" * 1000
    parts = [part] * (3 * WRITE_CHUNK // 1000)
    writes = list(_chunks(parts))
    assert b"".join(writes) == b"".join(parts)
    assert len(writes) == 3
    assert all(WRITE_CHUNK <= len(w) < WRITE_CHUNK + len(part) for w in writes[:-1])
