import os
import stat

from alphahat.report.io import write_atomic


def test_write_atomic_writes_text_and_bytes_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    write_atomic(target, "a,b\n1,2\n")
    assert target.read_text(encoding="utf-8") == "a,b\n1,2\n"
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_write_atomic_gives_the_mode_a_plain_open_would(tmp_path):
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "atomic.txt", "x")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644
