"""Cluster slots and derived keys: the lock and the dead letters share the stream's slot."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fluxabee._keys import crc16, dead_letter_key, derived_key, hash_tag, key_slot, lock_key


def test_crc16_is_the_xmodem_checksum_redis_cluster_uses() -> None:
    assert crc16(b"123456789") == 0x31C3
    assert crc16(b"") == 0
    assert key_slot("foo") == 12182  # CLUSTER KEYSLOT foo
    assert key_slot("{user1000}.following") == key_slot("user1000") == 3443


def test_hash_tags_follow_the_first_brace_rule() -> None:
    assert hash_tag(b"{a}b") == b"a"
    assert hash_tag(b"x{a}{b}") == b"a"
    assert hash_tag(b"a{}b") is None  # empty: the whole key is hashed
    assert hash_tag(b"a{b") is None
    assert hash_tag(b"a}b{c}") == b"c"
    assert hash_tag(b"{{a}}") == b"{a"


def test_usual_names_keep_fluxaorm_style_keys() -> None:
    assert dead_letter_key("orders") == "{orders}:dead"
    assert lock_key("orders") == "{orders}:lock"
    assert dead_letter_key("{orders}.eu") == "{orders}.eu:dead"


def test_a_name_with_a_stray_closing_brace_gets_a_tag_of_its_slot() -> None:
    stream = "a{}b"
    assert key_slot(stream) == 13694
    assert key_slot("{a{}b}:dead") == 14311  # what the naive wrapping gave: another slot
    key = dead_letter_key(stream)
    assert key_slot(key) == key_slot(stream)
    assert key.endswith("a{}b:dead")


# No deadline: a name with a stray "}" searches a tag of its slot (milliseconds, once).
@settings(deadline=None)
@given(st.text(alphabet="ab{}:-", min_size=1, max_size=12), st.sampled_from([":dead", ":lock"]))
def test_every_derived_key_lives_in_its_streams_slot(stream: str, suffix: str) -> None:
    key = derived_key(stream, suffix)
    assert key_slot(key) == key_slot(stream)
    assert stream in key and key.endswith(suffix)


@settings(deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_any_unicode_name_too(stream: str) -> None:
    assert key_slot(dead_letter_key(stream)) == key_slot(stream)
