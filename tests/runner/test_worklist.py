"""pnpfast.runner.worklist: inputs to a sorted work list, outputs mirroring the input tree,
manifest settings, refusals, and the exactly-once split across ranks.

The expected lists are written by hand from the trees each test builds (never read back from
``collect``)."""

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pnpfast.operators import OperatorSpec
from pnpfast.runner.worklist import Settings, WorkItem, collect, shard


def png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((2, 3), value, dtype=np.uint8)).save(path)
    return path


def tree(root: Path, names: list[str]) -> Path:
    """Real PNGs for .png names, empty files for the others (collect reads no pixels)."""
    for i, name in enumerate(names):
        if name.lower().endswith(".png"):
            png(root / name, i)
        else:
            touch(root / name)
    return root


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def keys(items) -> list[str]:
    return [i.key for i in items]


@pytest.fixture
def photos(tmp_path) -> Path:
    return tree(
        tmp_path / "photos",
        [
            "b.png",
            "a.PNG",
            "sub/c.jpg",
            "sub/deeper/d.tif",
            "notes.txt",
            ".hidden.png",
            ".cache/e.png",
            "z/f.bmp",
        ],
    )


# -- folders, globs, files ------------------------------------------------------------------------


def test_folder_recursive_sorted_mirrored(photos, tmp_path):
    out = tmp_path / "out"
    items = collect(photos, out)
    assert keys(items) == ["a.PNG", "b.png", "sub/c.jpg", "sub/deeper/d.tif", "z/f.bmp"]
    assert items[2].source == photos / "sub" / "c.jpg"
    assert items[2].relative == Path("sub/c.jpg")
    assert items[2].output == out / "sub" / "c.jpg"
    assert all(i.settings == Settings() for i in items)


def test_folder_not_recursive(photos, tmp_path):
    assert keys(collect([photos], tmp_path / "out", recursive=False)) == ["a.PNG", "b.png"]


def test_extension_change(photos, tmp_path):
    out = tmp_path / "out"
    items = collect([str(photos)], out, extension=".TIF")
    assert [i.output for i in items] == [
        out / "a.tif",
        out / "b.tif",
        out / "sub" / "c.tif",
        out / "sub" / "deeper" / "d.tif",
        out / "z" / "f.tif",
    ]
    assert keys(items)[0] == "a.PNG"  # the key is the input's relative path


def test_glob_root_and_matched_folders(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    items = collect(["photos/**/*.jpg", "photos/*.png"], "out")
    assert keys(items) == ["b.png", "sub/c.jpg"]  # *.png is case-sensitive, like glob
    assert items[1].output == tmp_path / "out" / "sub" / "c.jpg"
    items = collect(["photos/s*"], "out")  # a matched folder is walked, mirrored from photos/
    assert keys(items) == ["sub/c.jpg", "sub/deeper/d.tif"]


def test_file_inputs_by_name(photos, tmp_path):
    items = collect([photos / "sub" / "deeper" / "d.tif", photos / "b.png"], tmp_path / "o")
    assert keys(items) == ["b.png", "d.tif"]
    assert items[1].output == tmp_path / "o" / "d.tif"


def test_duplicates_removed_first_input_wins(photos, tmp_path):
    os.symlink(photos / "b.png", tmp_path / "link.png")
    items = collect([photos / "sub" / "c.jpg", photos, tmp_path / "link.png"], tmp_path / "o")
    # c.jpg reached first as a file (relative c.jpg), then through the folder; b.png via a link
    assert keys(items) == ["a.PNG", "b.png", "c.jpg", "sub/deeper/d.tif", "z/f.bmp"]


def test_same_result_every_call(photos, tmp_path):
    assert collect([photos], tmp_path / "o") == collect([photos], tmp_path / "o")


# -- list files -----------------------------------------------------------------------------------


def test_list_file(photos, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    other = png(tmp_path / "elsewhere" / "x.png")
    png(lists / "local" / "y.png")
    (lists / "todo.txt").write_text(
        "# the job\n\n  local/y.png  \n../photos/sub\n" + f"{other}\n# {photos}/b.png\n",
        encoding="utf-8",
    )
    items = collect([f"@{lists / 'todo.txt'}"], tmp_path / "o")
    # under the list's folder: mirrored from it; a folder: from itself; elsewhere: the name
    assert keys(items) == ["c.jpg", "deeper/d.tif", "local/y.png", "x.png"]
    assert items[3].source == other


def test_list_file_pattern_in_a_folder_named_like_a_pattern(tmp_path):
    lists = tmp_path / "set [1]"
    png(lists / "imgs" / "sub" / "a.png")
    png(lists / "imgs" / "b.png")
    (lists / "l.txt").write_text("imgs/**/*.png\n", encoding="utf-8")
    items = collect(f"@{lists / 'l.txt'}", tmp_path / "o")
    assert keys(items) == ["b.png", "sub/a.png"]  # mirrored from imgs/, the pattern's root


def test_list_file_errors(tmp_path):
    (tmp_path / "l.txt").write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="names no inputs"):
        collect(f"@{tmp_path / 'l.txt'}", tmp_path / "o")
    (tmp_path / "l.txt").write_text("a.png\nmissing.png\n", encoding="utf-8")
    png(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match=r"missing.png \(line 2 of .*l.txt\)"):
        collect(f"@{tmp_path / 'l.txt'}", tmp_path / "o")
    (tmp_path / "l.txt").write_text("@other.txt\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot name another list file"):
        collect(f"@{tmp_path / 'l.txt'}", tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="no such list file"):
        collect(f"@{tmp_path / 'nope.txt'}", tmp_path / "o")


# -- manifests ------------------------------------------------------------------------------------


@pytest.fixture
def job(tmp_path) -> Path:
    root = tmp_path / "job"
    png(root / "a.png")
    png(root / "sub" / "b.png")
    np.save(root / "k1.npy", np.ones((3, 3)) / 9)
    png(root / "m.png", 255)
    return root


def test_manifest_csv(job, tmp_path):
    (job / "m.csv").write_text(
        "\ufeff"  # the byte order mark spreadsheet programs write
        "path,kernel,noise,mask,method,params.lam,params.sigma_end\n"
        "sub/b.png,k1.npy,2.55,,hqs,0.2,\n"
        "a.png,,7.65,m.png,,,0.01\n",
        encoding="utf-8",
    )
    items = collect([], tmp_path / "o", manifest=job / "m.csv")
    assert keys(items) == ["a.png", "sub/b.png"]
    assert items[0].settings == Settings(
        noise=7.65, mask=job / "m.png", params=(("sigma_end", 0.01),)
    )
    b = items[1].settings
    assert b.kernel == job / "k1.npy" and b.noise == 2.55 and b.method == "hqs"
    assert b.params_dict() == {"lam": 0.2}
    assert b.sigma == pytest.approx(0.01)
    assert items[1].output == tmp_path / "o" / "sub" / "b.png"


def test_manifest_jsonl_with_inputs(job, tmp_path):
    rows = [
        {"image": "a.png", "operator": "sr:bicubic:x2", "params": {"lam": 0.3}},
        {"image": "sub/b.png", "operator": {"name": "blur", "kernel": "k1.npy"}, "noise": 5},
    ]
    (job / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    png(job / "c.png")
    items = collect([job], tmp_path / "o", manifest=job / "m.jsonl")
    assert keys(items) == ["a.png", "c.png", "m.png", "sub/b.png"]
    assert items[0].settings.operator == OperatorSpec("sr", factor=2)
    assert items[0].settings.params == (("lam", 0.3),)
    assert items[1].settings == Settings()  # no row: the run's settings
    assert items[3].settings.operator == OperatorSpec("blur", kernel=str(job / "k1.npy"))
    assert items[3].settings.noise == 5.0
    assert items[3].settings.as_dict() == {
        "noise": 5.0,
        "operator": f"blur:{job / 'k1.npy'}",
    }


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("path,colour\na.png,red\n", ValueError, r"line 2: unknown column 'colour'"),
        ("path,noise\na.png,loud\n", ValueError, r"line 2: noise must be a number"),
        ("path,noise\na.png,300\n", ValueError, r"line 2: noise must be .*\(0, 255\]"),
        ("path,factor\na.png,2.5\n", ValueError, r"line 2: factor must be an int >= 1"),
        ("path,method\na.png,fast\n", ValueError, r"line 2: method must be one of hqs"),
        ("path,method,params.gamma\na.png,hqs,1\n", ValueError, r"has no parameter 'gamma'"),
        ("path,kernel\na.png,nope.npy\n", FileNotFoundError, r"line 2: kernel: no such file"),
        ("path\na.png\nmissing.png\n", FileNotFoundError, r"line 3, column path: missing.png"),
        ("path\na.png\n./a.png\n", ValueError, r"line 3 names ./a.png again \(first at .*line 2"),
        ("noise\n3\n", ValueError, r"line 2: no image"),
        ("path,operator,factor\na.png,sr:bicubic:x2,2\n", ValueError, "operator and factor"),
        ("path,operator\na.png,sr:bicubic\n", ValueError, r"line 2: operator: factor is required"),
        ("path\n", ValueError, "has no rows"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_manifest_csv_errors(job, tmp_path, text, error, match):
    (job / "m.csv").write_text(text, encoding="utf-8")
    with pytest.raises(error, match=match):
        collect([], tmp_path / "o", manifest=job / "m.csv")


def test_manifest_jsonl_errors(job, tmp_path):
    m = job / "m.jsonl"
    m.write_text('{"path": "a.png", "noise": "7"}\n')
    with pytest.raises(TypeError, match=r"line 1: noise must be a finite number .*not str '7'"):
        collect([], tmp_path / "o", manifest=m)
    m.write_text('{"path": "a.png"}\n[1]\n')
    with pytest.raises(ValueError, match=r"line 2: each line must be a JSON object"):
        collect([], tmp_path / "o", manifest=m)
    m.write_text('{"path": "a.png", "factor": true}\n')
    with pytest.raises(TypeError, match=r"line 1: factor must be an int"):
        collect([], tmp_path / "o", manifest=m)


def test_manifest_row_not_among_inputs(job, tmp_path):
    (job / "m.csv").write_text("path\nsub/b.png\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: sub/b.png is not among the inputs"):
        collect([job / "a.png"], tmp_path / "o", manifest=job / "m.csv")


# -- refusals -------------------------------------------------------------------------------------


def test_two_inputs_one_output(tmp_path):
    a, b = png(tmp_path / "x" / "im.png"), touch(tmp_path / "y" / "im.jpg")
    both = f"(?=.*{re.escape(str(a))})(?=.*{re.escape(str(b))})"
    with pytest.raises(ValueError, match=both + ".*would both be written to"):
        collect([a, b], tmp_path / "o", extension="png")
    with pytest.raises(ValueError, match="would both be written to"):
        collect([a, tmp_path / "x" / ".." / "x" / "im.png", png(tmp_path / "z" / "im.png")], "o")


def test_output_would_overwrite_input(tmp_path):
    a = png(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"would overwrite the input .*a.png"):
        collect([a], tmp_path)
    assert collect([a], tmp_path, extension="tif")[0].output == tmp_path / "a.tif"


def test_output_inside_input_folder(photos, tmp_path):
    for out in (photos, photos / "restored", photos / "sub" / "new"):
        with pytest.raises(ValueError, match="inside the input folder"):
            collect([photos], out, extension="png")
    # not collected by a rerun: a hidden folder, a subfolder of a non-recursive input
    assert len(collect([photos], photos / ".restored")) == 5
    assert len(collect([photos], photos / "restored", recursive=False)) == 2
    with pytest.raises(ValueError, match="inside the input folder"):
        collect([photos], photos, recursive=False, extension="tif")


def test_output_matching_input_pattern(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"matches the input pattern photos/\*\*/\*.png"):
        collect(["photos/**/*.png"], "photos/out")
    with pytest.raises(ValueError, match="matches the input pattern"):
        collect(["photos/*.png"], "photos", extension="png")
    # photos/out/b.png does not match photos/*.png: allowed
    assert keys(collect(["photos/*.png"], "photos/out")) == ["b.png"]
    # photos/* matches the folder photos/new, which a rerun would walk
    for recursive in (True, False):
        with pytest.raises(ValueError, match=r"new/a.tif matches the input pattern photos/\*:"):
            collect(["photos/*"], "photos/new", extension="tif", recursive=recursive)


def test_bad_arguments(photos, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        collect([tmp_path / "missing"], tmp_path / "o")
    empty = tmp_path / "empty"
    tree(empty, ["readme.txt", ".x.png"])
    with pytest.raises(ValueError, match=r"folder .*empty holds no image files"):
        collect(empty, tmp_path / "o")
    with pytest.raises(ValueError, match="matches no image files"):
        collect(str(photos / "*.gif"), tmp_path / "o")
    with pytest.raises(ValueError, match="not an image file by its extension"):
        collect(photos / "notes.txt", tmp_path / "o")
    with pytest.raises(ValueError, match="inputs is empty"):
        collect([], tmp_path / "o")
    with pytest.raises(TypeError, match=r"inputs\[1\] must be a str or os.PathLike"):
        collect([photos, 3], tmp_path / "o")
    with pytest.raises(TypeError, match="output_dir must be"):
        collect(photos, None)
    with pytest.raises(ValueError, match="extension must be one of"):
        collect(photos, tmp_path / "o", extension="gif")
    with pytest.raises(TypeError, match="recursive must be True or False"):
        collect(photos, tmp_path / "o", recursive=1)
    with pytest.raises(ValueError, match=r"output_dir .* is a file"):
        collect(photos, photos / "b.png")


# -- shard ----------------------------------------------------------------------------------------


def items_of(n: int) -> list[WorkItem]:
    return [WorkItem(f"/in/{i:02d}.png", f"{i:02d}.png", f"/out/{i:02d}.png") for i in range(n)]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 5])
def test_shard_exactly_once(world_size):
    for n in range(14):
        items = items_of(n)
        shuffled = items[::-1]
        parts = [shard(shuffled, r, world_size) for r in range(world_size)]
        flat = sorted(k for p in parts for k in keys(p))
        assert flat == [f"{i:02d}.png" for i in range(n)]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        # BasicSR's range(rank, n, world_size) over the sorted order
        for r, part in enumerate(parts):
            assert keys(part) == [f"{i:02d}.png" for i in range(r, n, world_size)]


def test_shard_errors():
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, 1\] \(world_size is 2\)"):
        shard(items_of(3), 2, 2)
    with pytest.raises(ValueError, match="world_size must be an int >= 1"):
        shard(items_of(3), 0, 0)
    with pytest.raises(TypeError, match="rank must be an int"):
        shard(items_of(3), 0.0, 2)
    with pytest.raises(TypeError, match=r"items\[1\] must be a WorkItem"):
        shard([items_of(1)[0], "b.png"], 0, 1)
    with pytest.raises(ValueError, match=r"two items with the key '00\.png'"):
        shard(items_of(1) * 2, 0, 1)


# -- thousands of files ---------------------------------------------------------------------------


def test_two_thousand_files_fast(tmp_path):
    root = tmp_path / "many"
    for d in range(20):
        (root / f"d{d:02d}").mkdir(parents=True)
        for i in range(100):
            (root / f"d{d:02d}" / f"{i:03d}.png").write_bytes(b"")
    started = time.perf_counter()
    items = collect([root], tmp_path / "o", extension="tif")
    elapsed = time.perf_counter() - started
    assert len(items) == 2000
    assert items[0].key == "d00/000.png" and items[-1].key == "d19/099.png"
    assert elapsed < 1.5, f"collect took {elapsed:.2f} s for 2,000 files"


# -- the records ----------------------------------------------------------------------------------


def test_records_hashable_and_json(job):
    s = Settings(kernel=job / "k1.npy", noise=25.5, method="hqs", params={"lam": 0.1})
    item = WorkItem(job / "a.png", "a.png", "/out/a.png", s)
    assert len({item, WorkItem(job / "a.png", Path("a.png"), Path("/out/a.png"), s)}) == 1
    assert s.sigma == pytest.approx(0.1)
    assert json.loads(json.dumps(s.as_dict())) == {
        "kernel": (job / "k1.npy").as_posix(),
        "noise": 25.5,
        "method": "hqs",
        "params": {"lam": 0.1},
    }
