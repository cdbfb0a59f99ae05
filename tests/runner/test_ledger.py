"""pnpfast.runner.ledger: append-only, fsync'd, resumable; torn lines; settings refusal; merge."""

import hashlib
import json
import os
import time

import pytest

from pnpfast.runner import ledger as ledger_module
from pnpfast.runner.ledger import (
    Ledger,
    SettingsMismatchError,
    file_sha256,
    merge,
    read_ledger,
    settings_fingerprint,
)

SETTINGS = {"task": "deblur", "method": "hqs", "sigma": 0.01, "denoiser": {"name": "drunet"}}


def _output(folder, name, data=b"image bytes"):
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _lines(path):
    return path.read_bytes().split(b"\n")


# ---------------------------------------------------------------------------------------------
# fingerprint


def test_fingerprint_is_sha256_of_canonical_json():
    want = hashlib.sha256(
        b'{"a":[1,2],"b":{"c":"x","d":0.5},"p":"out/dir"}'  # written out by hand
    ).hexdigest()
    from pathlib import Path

    got = settings_fingerprint({"p": Path("out/dir"), "b": {"d": 0.5, "c": "x"}, "a": (1, 2)})
    assert got == want
    assert settings_fingerprint({"a": 1}) != settings_fingerprint({"a": 1.0})


def test_fingerprint_rejects_what_json_cannot_hold():
    with pytest.raises(ValueError, match=r"settings\[lam\] must be finite"):
        settings_fingerprint({"lam": float("nan")})
    with pytest.raises(TypeError, match=r"settings\[d\.f\] must be JSON data.*not object"):
        settings_fingerprint({"d": {"f": object()}})
    with pytest.raises(TypeError, match="settings keys must be str"):
        settings_fingerprint({1: "a"})
    with pytest.raises(TypeError, match="settings must be a mapping"):
        settings_fingerprint(["a"])


# ---------------------------------------------------------------------------------------------
# append and resume


def test_record_appends_one_line_with_checksum_and_resumes(tmp_path):
    path = tmp_path / "ledger.jsonl"
    out = _output(tmp_path, "out/a.png", b"png data")
    led = Ledger(path, SETTINGS)
    assert led.done == set()
    rec = led.record("a.png", out, seconds=0.25, denoiser_s=0.2)
    lines = [json.loads(x) for x in _lines(path) if x]
    assert [x["type"] for x in lines] == ["header", "done"]
    assert lines[0]["settings"] == SETTINGS
    assert lines[0]["fingerprint"] == settings_fingerprint(SETTINGS)
    assert lines[1] == rec
    assert rec["sha256"] == hashlib.sha256(b"png data").hexdigest()
    assert rec["bytes"] == 8 and rec["output"] == os.path.join("out", "a.png")
    assert rec["seconds"] == 0.25
    assert led.done == {"a.png"}

    # a second process: what is done stays done, a new record is appended after the old bytes
    before = path.read_bytes()
    again = Ledger(path, dict(reversed(list(SETTINGS.items()))))  # key order does not matter
    assert again.done == {"a.png"}
    again.record("b.png", _output(tmp_path, "out/b.png"))
    assert path.read_bytes().startswith(before)
    assert Ledger(path, SETTINGS).done == {"a.png", "b.png"}


def test_done_needs_the_output_with_its_recorded_size(tmp_path):
    path = tmp_path / "l.jsonl"
    led = Ledger(path, SETTINGS)
    for name in ("a", "b", "c"):
        led.record(name, _output(tmp_path, f"{name}.png", b"12345"))
    (tmp_path / "a.png").unlink()  # deleted: redo
    (tmp_path / "b.png").write_bytes(b"123")  # truncated: redo
    (tmp_path / "c.png").write_bytes(b"54321")  # altered in place, same size
    assert Ledger(path, SETTINGS).done == {"c"}
    assert Ledger(path, SETTINGS, verify=True).done == set()  # the checksum sees it


def test_failures_are_recorded_and_a_later_success_clears_them(tmp_path):
    path = tmp_path / "l.jsonl"
    led = Ledger(path, SETTINGS)
    led.fail("bad.png", "cannot read image bad.png: corrupt")
    led.fail("oom.png", "out of memory")
    led.record("oom.png", _output(tmp_path, "oom.png"))
    again = Ledger(path, SETTINGS)
    assert again.failed == {"bad.png": "cannot read image bad.png: corrupt"}
    assert again.done == {"oom.png"}


def test_every_line_is_fsynced(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    path = tmp_path / "l.jsonl"
    led = Ledger(path, SETTINGS)
    n_header = len(calls)
    assert n_header >= 1  # the header line (and the folder)
    led.record("a", _output(tmp_path, "a.png"))
    led.fail("b", "broken")
    assert len(calls) == n_header + 2


def test_a_record_is_one_write(tmp_path, monkeypatch):
    writes = []
    real = os.write
    monkeypatch.setattr(
        os, "write", lambda fd, data: (writes.append(bytes(data)), real(fd, data))[1]
    )
    led = Ledger(tmp_path / "l.jsonl", SETTINGS)
    writes.clear()
    led.record("a", _output(tmp_path, "a.png"), seconds=1.0)
    assert len(writes) == 1 and writes[0].endswith(b"\n") and writes[0].count(b"\n") == 1


# ---------------------------------------------------------------------------------------------
# a kill mid-write


def test_torn_last_line_is_ignored_and_the_next_record_is_whole(tmp_path):
    path = tmp_path / "l.jsonl"
    led = Ledger(path, SETTINGS)
    led.record("a", _output(tmp_path, "a.png"))
    led.record("b", _output(tmp_path, "b.png"))
    whole = json.dumps({"type": "done", "key": "c", "output": "c.png", "sha256": "0" * 64})
    with open(path, "ab") as f:
        f.write(whole[: len(whole) // 2].encode())  # SIGKILL in the middle of the line
    _output(tmp_path, "c.png")

    again = Ledger(path, SETTINGS)
    assert again.done == {"a", "b"}
    assert again.skipped_lines == 1
    again.record("c", tmp_path / "c.png")
    third = Ledger(path, SETTINGS)
    assert third.done == {"a", "b", "c"}
    assert third.skipped_lines == 1  # the torn half stays, on a line of its own
    _header, records, skipped = read_ledger(path)
    assert [r["key"] for r in records] == ["a", "b", "c"] and skipped == 1


def test_torn_header_starts_a_new_run(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_bytes(b'{"type": "header", "vers')
    led = Ledger(path, SETTINGS)
    assert led.done == set() and led.skipped_lines == 1
    header, records, _ = read_ledger(path)
    assert header["fingerprint"] == settings_fingerprint(SETTINGS) and records == []


# ---------------------------------------------------------------------------------------------
# settings


def test_other_settings_are_refused_naming_each_key(tmp_path):
    path = tmp_path / "l.jsonl"
    Ledger(path, SETTINGS).record("a", _output(tmp_path, "a.png"))
    before = path.read_bytes()
    new = {**SETTINGS, "sigma": 0.02, "denoiser": {"name": "dncnn"}, "precision": "bf16"}
    del new["method"]
    with pytest.raises(SettingsMismatchError) as info:
        Ledger(path, new)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "sigma: 0.01 before, 0.02 now" in msg
    assert 'denoiser.name: "drunet" before, "dncnn" now' in msg
    assert 'method: "hqs" before, <absent> now' in msg
    assert 'precision: <absent> before, "bf16" now' in msg
    assert "task" not in msg.split("settings (")[1].split(")")[0]  # unchanged: not listed
    assert "--overwrite" in msg and str(path) in msg
    assert set(info.value.differences) == {"sigma", "denoiser.name", "method", "precision"}
    assert path.read_bytes() == before  # refused without writing


def test_overwrite_starts_a_new_run_by_appending(tmp_path):
    path = tmp_path / "l.jsonl"
    Ledger(path, SETTINGS).record("a", _output(tmp_path, "a.png"))
    before = path.read_bytes()
    new = {**SETTINGS, "sigma": 0.02}
    led = Ledger(path, new, overwrite=True)
    assert led.done == set()
    assert path.read_bytes().startswith(before)  # appended, never rewritten
    assert Ledger(path, new).done == set()
    Ledger(path, new).record("b", _output(tmp_path, "b.png"))
    with pytest.raises(SettingsMismatchError, match=r"sigma: 0\.02 before, 0\.01 now"):
        Ledger(path, SETTINGS)


def test_a_header_without_records_is_replaced_by_other_settings(tmp_path):
    # a run refused before its first image (a denoiser that cannot load) protects nothing:
    # the corrected command must not be refused for settings no image was restored with
    path = tmp_path / "l.jsonl"
    Ledger(path, {**SETTINGS, "denoiser": "nope"})
    led = Ledger(path, SETTINGS)
    assert led.done == set()
    led.record("a", _output(tmp_path, "a.png"))
    assert Ledger(path, SETTINGS).done == {"a"}
    with pytest.raises(SettingsMismatchError, match="denoiser"):
        Ledger(path, {**SETTINGS, "denoiser": "nope"})


# ---------------------------------------------------------------------------------------------
# merge


def test_merge_two_ranks_flags_the_duplicate(tmp_path):
    r0, r1 = tmp_path / "ledger.rank0.jsonl", tmp_path / "ledger.rank1.jsonl"
    l0, l1 = Ledger(r0, SETTINGS), Ledger(r1, SETTINGS)
    l0.record("a", _output(tmp_path, "a.png"), seconds=1.5)
    l0.record("b", _output(tmp_path, "b.png"), seconds=0.5)
    l1.record("c", _output(tmp_path, "c.png"), seconds=2.0)
    l1.record("b", tmp_path / "b.png", seconds=0.25)  # b done on both ranks
    l1.fail("d", "cannot read image d.png")
    l0.fail("e", "nan in fp16")
    l1.record("e", _output(tmp_path, "e.png"), seconds=1.0)  # rerun elsewhere: not a failure
    report = merge([r0, r1])
    assert report["done"] == 4  # a, b, c, e
    assert report["failed"] == 1
    assert report["failures"] == [
        {"key": "d", "reason": "cannot read image d.png", "ledger": str(r1)}
    ]
    assert report["duplicates"] == [{"key": "b", "ledgers": [str(r0), str(r1)]}]
    assert report["totals"]["seconds"] == pytest.approx(1.5 + 0.5 + 2.0 + 0.25 + 1.0)
    assert report["settings"] == SETTINGS
    assert report["ledgers"] == [
        {"ledger": str(r0), "done": 2, "failed": 1},
        {"ledger": str(r1), "done": 3, "failed": 1},
    ]


def test_merge_refuses_ledgers_of_different_runs(tmp_path):
    Ledger(tmp_path / "a.jsonl", SETTINGS)
    Ledger(tmp_path / "b.jsonl", {**SETTINGS, "sigma": 0.5})
    with pytest.raises(ValueError, match="different settings"):
        merge([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    with pytest.raises(FileNotFoundError, match="no run ledger"):
        merge([tmp_path / "a.jsonl", tmp_path / "missing.jsonl"])


# ---------------------------------------------------------------------------------------------
# scale


def test_ten_thousand_records_open_in_well_under_a_second(tmp_path):
    path = tmp_path / "l.jsonl"
    led = Ledger(path, SETTINGS)
    out = _output(tmp_path, "shared.png", b"x" * 100)
    base = {"output": "shared.png", "sha256": file_sha256(out), "bytes": 100, "seconds": 0.1}
    lines = [
        ledger_module._dumps({**base, "type": "done", "key": f"img{i:05d}.png"})
        for i in range(10_000)
    ]
    with open(path, "a") as f:  # written in bulk: the time measured is the reading
        f.write("\n".join(lines) + "\n")
    start = time.perf_counter()
    again = Ledger(path, SETTINGS)
    elapsed = time.perf_counter() - start
    assert len(again.done) == 10_000
    assert elapsed < 0.5, f"opening 10,000 records took {elapsed:.2f} s"
    assert len(led.done) == 0


# ---------------------------------------------------------------------------------------------
# bad arguments


def test_bad_arguments(tmp_path):
    led = Ledger(tmp_path / "l.jsonl", SETTINGS)
    with pytest.raises(FileNotFoundError, match="write the output before recording it"):
        led.record("a", tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"fields \['sha256'\] are written by the ledger"):
        led.record("a", _output(tmp_path, "a.png"), sha256="x")
    with pytest.raises(TypeError, match="key must be a str"):
        led.record(3, tmp_path / "a.png")
    with pytest.raises(ValueError, match="key must be a non-empty str"):
        led.fail("", "x")
    with pytest.raises(FileNotFoundError, match="no folder"):
        Ledger(tmp_path / "nope" / "l.jsonl", SETTINGS)
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        Ledger(tmp_path / "l.jsonl", SETTINGS, overwrite="yes")
