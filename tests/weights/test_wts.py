"""weights/wts: the text parser's memory stays bounded, and a declared count the line cannot hold is an error."""

from __future__ import annotations

from ._crafted import refused


def test_wts_parser_memory_is_bounded(loader, tmp_path):
    # One value per two bytes in a non-standard layout ('0 0 0 ...'): parsed in pieces, within the limit.
    n = 20_000_000
    (tmp_path / "w.wts").write_bytes(b"1\nw %d " % n + b"0 " * n + b"\n")
    result = loader.sound(tmp_path / "w.wts")
    assert result["ok"]["w"][:2] == [[n], "float32"]
    (tmp_path / "lie.wts").write_bytes(b"1\nw 999999999999 0 0\n")
    refused(loader, tmp_path / "lie.wts", r"declares 999999999999 values but its line has room for at most 2")
