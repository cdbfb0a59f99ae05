"""pnpfast._atomic.atomic_open: the whole new file or the old one, never a part, no leftovers."""

import os
import stat

import pytest
import torch

from pnpfast._atomic import atomic_open


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class _Crash(Exception):
    pass


def test_crash_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"old content")
    with pytest.raises(_Crash), atomic_open(path) as f:
        f.write(b"half of the new")
        f.flush()  # the bytes are on disk in the temporary file when the writer dies
        raise _Crash
    assert path.read_bytes() == b"old content"
    assert _names(tmp_path) == ["w.pt"]


def test_crash_on_a_new_file_leaves_nothing(tmp_path):
    with pytest.raises(_Crash), atomic_open(tmp_path / "new.txt", "w") as f:
        f.write("partial")
        raise _Crash
    assert _names(tmp_path) == []


def test_interrupt_is_cleaned_up_too(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"kept")
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as f:
        f.write(b"new")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"kept" and _names(tmp_path) == ["x.bin"]


def test_torch_save_through_it_is_byte_identical_to_a_plain_write(tmp_path):
    obj = {"w": torch.randn(3, 5), "n": torch.arange(7), "meta": {"step": 3, "name": "é"}}
    # to a file object both times: saved to a path, torch names the archive after the file
    with open(tmp_path / "plain.pt", "wb") as f:
        torch.save(obj, f)
    with atomic_open(tmp_path / "atomic.pt") as f:
        torch.save(obj, f)
    assert (tmp_path / "atomic.pt").read_bytes() == (tmp_path / "plain.pt").read_bytes()
    assert _names(tmp_path) == ["atomic.pt", "plain.pt"]


def test_overwrite_text_and_bytes_match_a_plain_write(tmp_path):
    data = bytes(range(256)) * 300
    path = tmp_path / "b.bin"
    path.write_bytes(b"something older and longer than nothing" * 10000)
    with atomic_open(path) as f:
        f.write(data)
    assert path.read_bytes() == data
    text = "line 1\nλ = 0.5\n"
    with atomic_open(tmp_path / "t.txt", "w") as f:
        f.write(text)
    assert (tmp_path / "t.txt").read_bytes() == text.encode("utf-8")
    assert _names(tmp_path) == ["b.bin", "t.txt"]


def test_permissions_are_those_of_a_plain_open(tmp_path):
    with open(tmp_path / "plain", "wb") as f:
        f.write(b"1")
    with atomic_open(tmp_path / "atomic") as f:
        f.write(b"1")
    mode = stat.S_IMODE(os.stat(tmp_path / "atomic").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)


def test_errors(tmp_path):
    with (
        pytest.raises(ValueError, match="mode must be one of wb, w, not 'a'"),
        atomic_open(tmp_path / "f", "a"),
    ):
        pass
    with pytest.raises(FileNotFoundError), atomic_open(tmp_path / "no" / "folder" / "f"):
        pass
    assert _names(tmp_path) == []


def test_remove_stale_temporaries_removes_only_those_of_the_given_paths(tmp_path):
    from pnpfast._atomic import remove_stale_temporaries

    sub = tmp_path / "sub"
    sub.mkdir()
    stale = [tmp_path / ".a.png.0123456789ab.tmp", sub / ".c.tif.ffffffffffff.tmp"]
    kept = [
        tmp_path / ".b.png.0123456789ab.tmp",  # another path's: not ours to remove
        tmp_path / ".a.png.0123.tmp",  # not the temporary-file pattern
        tmp_path / "a.png.0123456789ab.tmp",
        tmp_path / "a.png",
    ]
    for p in stale + kept:
        p.write_bytes(b"x")
    paths = [tmp_path / "a.png", sub / "c.tif", tmp_path / "missing" / "d.png"]
    assert remove_stale_temporaries(paths) == 2
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    # the name atomic_open really gives is recognised: a copy of it, as a kill would leave
    with pytest.raises(_Crash), atomic_open(tmp_path / "e.png") as f:
        (tmp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".e.png.")]
        f.write(b"half")
        raise _Crash
    tmp.write_bytes(b"half")
    assert remove_stale_temporaries([tmp_path / "e.png"]) == 1 and not tmp.exists()
