"""Fuzz table (issue 17 conventions) of the production runner's work list (issue 21):
pnpfast.runner.worklist.collect, shard, WorkItem and Settings.

Bad rows: the exact exception type and a message naming the argument (or the manifest line and
column) and what is wrong. Good rows compare with answers written by hand from the tree each row
builds: the images' numbers in the order expected (files are named by number), the shard's
indices from BasicSR's range(rank, n, world_size), texts as lists of code points. Every row
builds its own files in a fresh scratch folder; nothing reads pixels.
"""

import json
import math
from pathlib import Path

import numpy as np
from fuzz_cases import Bad, Good, check, params, scratch_folder

from pnpfast.operators import OperatorSpec
from pnpfast.runner.worklist import Settings, WorkItem, collect, shard

COLLECT = "pnpfast.runner.worklist.collect"
SHARD = "pnpfast.runner.worklist.shard"
ITEM = "pnpfast.runner.worklist.WorkItem"
SETTINGS = "pnpfast.runner.worklist.Settings"


def folder(*names: str, data: bytes = b"") -> Path:
    """A fresh folder holding the files ``names`` (empty: collect reads no pixels)."""
    root = scratch_folder("runner_worklist")
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def out(root: Path) -> Path:
    return root.parent / (root.name + "-out")


def numbers(items) -> list[int]:
    """The number each image is named by (``sub/007.png`` -> 7), in the list's order."""
    return [int(item.relative.stem) for item in items]


def codes(text: str) -> list[int]:
    return [ord(c) for c in text]


def with_manifest(name: str, text: str, *files: str, inputs=()):
    """collect over a manifest ``name`` holding ``text`` beside the files ``files``."""
    root = folder(*files)
    (root / name).write_text(text, encoding="utf-8")
    return collect([root / i for i in inputs], out(root), manifest=root / name)


def with_list(text: str, *files: str):
    root = folder(*files)
    (root / "list.txt").write_text(text, encoding="utf-8")
    return collect(f"@{root / 'list.txt'}", out(root))


def items(n: int) -> list[WorkItem]:
    return [WorkItem(f"/in/{i:02d}.png", f"{i:02d}.png", f"/out/{i:02d}.png") for i in range(n)]


def _same_output():
    root = folder("a/1.png", "b/1.jpg")
    return collect([root / "a" / "1.png", root / "b" / "1.jpg"], out(root), extension="png")


def _overwrite():
    root = folder("1.png")
    return collect([root / "1.png"], root)


def _inside():
    root = folder("1.png")
    return collect([root], root / "restored")


def _not_utf8():
    root = folder("1.png")
    (root / "m.csv").write_bytes(b"path\n\xff\xfe.png\n")
    return collect([], out(root), manifest=root / "m.csv")


def _list_is_folder():
    root = folder("1.png")
    return collect(f"@{root}", out(root))


def _symlink_twice():
    root = folder("sub/2.png", "1.png")
    (root / "3.png").symlink_to(root / "sub" / "2.png")
    # (number, depth of its mirrored path) of each item
    return [
        x
        for item in collect([root / "sub", root], out(root))
        for x in (int(item.relative.stem), len(item.relative.parts))
    ]


def _kernel_manifest():
    root = folder("1.png")
    np.save(root / "k.npy", np.ones((3, 3)))
    (root / "m.jsonl").write_text('{"path": "1.png", "kernel": "k.npy", "noise": 255}\n')
    item = collect([], out(root), manifest=root / "m.jsonl")[0]
    return [item.settings.noise, float(item.settings.kernel == root / "k.npy")]


CASES = [
    # -- collect: good --------------------------------------------------------------------------
    Good(
        COLLECT,
        "size",
        "one file",
        lambda: numbers(collect(folder("5.png") / "5.png", scratch_folder("runner_worklist"))),
        lambda: [5],
    ),
    Good(
        COLLECT,
        "name",
        "upper-case extensions kept, hidden and non-images skipped, sorted by parts",
        lambda: numbers(
            collect(
                folder("b/3.TIFF", "2.JPG", "a/1.png", ".9.png", ".h/8.png", "7.txt", "b/4.bmp"),
                scratch_folder("runner_worklist") / "o",
            )
        ),
        lambda: [2, 1, 3, 4],
    ),
    Good(
        COLLECT,
        "value",
        "recursive=False keeps the folder's own files",
        lambda: numbers(collect(folder("3.png", "s/1.png"), out(folder()), recursive=False)),
        lambda: [3],
    ),
    Good(
        COLLECT,
        "file",
        "a file reached through two folders and a symbolic link is kept once, mirrored from sub",
        _symlink_twice,
        lambda: [1, 1, 2, 1],
    ),
    Good(
        COLLECT,
        "file",
        "list file: comments, blanks, relative paths",
        lambda: numbers(
            with_list("# c\n\n  s/2.png \n1.png\n#3.png\n", "1.png", "s/2.png", "3.png")
        ),
        lambda: [1, 2],
    ),
    Good(
        COLLECT,
        "value",
        "extension 'TIF' gives lower-case .tif outputs",
        lambda: codes(collect(folder("1.png"), out(folder()), extension="TIF")[0].output.suffix),
        lambda: codes(".tif"),
    ),
    Good(
        COLLECT,
        "value",
        "manifest noise 255 (the bound) and a kernel relative to the manifest",
        _kernel_manifest,
        lambda: [255.0, 1.0],
    ),
    Good(
        COLLECT,
        "type",
        "csv params text typed: true, 3, 0.5",
        lambda: list(
            with_manifest("m.csv", "path,params.a,params.b,params.c\n1.png,true,3,0.5\n", "1.png")[
                0
            ]
            .settings.params_dict()
            .values()
        ),
        lambda: [1.0, 3.0, 0.5],
    ),
    # -- collect: bad ---------------------------------------------------------------------------
    Bad(
        COLLECT,
        "type",
        "inputs int",
        lambda: collect(5, "o"),
        TypeError,
        r"inputs must be a path or a list of paths",
    ),
    Bad(
        COLLECT,
        "type",
        "inputs bytes",
        lambda: collect([b"a.png"], "o"),
        TypeError,
        r"inputs\[0\] must be a str or os\.PathLike, not bytes",
    ),
    Bad(
        COLLECT,
        "type",
        "output_dir None",
        lambda: collect(folder("1.png"), None),
        TypeError,
        r"output_dir must be a str or os\.PathLike, not NoneType",
    ),
    Bad(
        COLLECT,
        "type",
        "manifest int",
        lambda: collect([], "o", manifest=3),
        TypeError,
        r"manifest must be a str or os\.PathLike, not int",
    ),
    Bad(
        COLLECT,
        "type",
        "extension int",
        lambda: collect([], "o", extension=3),
        TypeError,
        r"extension must be a str such as 'png', or None, not int",
    ),
    Bad(
        COLLECT,
        "type",
        "recursive str",
        lambda: collect(["x"], "o", recursive="yes"),
        TypeError,
        r"recursive must be True or False, not str",
    ),
    Bad(
        COLLECT,
        "value",
        "inputs empty, no manifest",
        lambda: collect([], "o"),
        ValueError,
        r"inputs is empty: give image files, folders",
    ),
    Bad(
        COLLECT,
        "value",
        "inputs empty string",
        lambda: collect([""], "o"),
        ValueError,
        r"inputs\[0\] is an empty path",
    ),
    Bad(
        COLLECT,
        "value",
        "extension gif",
        lambda: collect(["x"], "o", extension="gif"),
        ValueError,
        r"extension must be one of \.png, .*not 'gif'",
    ),
    Bad(
        COLLECT,
        "value",
        "output_dir is a file",
        lambda: collect(folder("1.png"), folder("f.txt") / "f.txt"),
        ValueError,
        r"output_dir .*f\.txt is a file, not a folder",
    ),
    Bad(
        COLLECT,
        "size",
        "'@' without a name",
        lambda: collect("@", "o"),
        ValueError,
        r"inputs\[0\] \(@\) is '@' without a list file name",
    ),
    Bad(
        COLLECT,
        "file",
        "missing input",
        lambda: collect("/nonexistent/x.png", "o"),
        FileNotFoundError,
        r"input /nonexistent/x\.png: no such file or folder",
    ),
    Bad(
        COLLECT,
        "file",
        "folder without images",
        lambda: collect(folder("a.txt", ".b.png"), "o"),
        ValueError,
        r"folder .* holds no image files \(\.png.*hidden files are skipped\)",
    ),
    Bad(
        COLLECT,
        "file",
        "folder with images only in subfolders, recursive=False",
        lambda: collect(folder("s/1.png"), "o", recursive=False),
        ValueError,
        r"holds no image files .*subfolders were not searched",
    ),
    Bad(
        COLLECT,
        "file",
        "pattern without matches",
        lambda: collect(str(folder("1.png") / "*.gif"), "o"),
        ValueError,
        r"pattern .*\*\.gif matches no image files",
    ),
    Bad(
        COLLECT,
        "file",
        "not an image by its extension",
        lambda: collect(folder("1.gif") / "1.gif", "o"),
        ValueError,
        r"input .*1\.gif is not an image file by its extension; accepted: \.png",
    ),
    Bad(
        COLLECT,
        "file",
        "missing list file",
        lambda: collect("@/nonexistent/l.txt", "o"),
        FileNotFoundError,
        r"inputs\[0\] .*: no such list file /nonexistent/l\.txt",
    ),
    Bad(
        COLLECT,
        "file",
        "list file is a folder",
        _list_is_folder,
        ValueError,
        r"the list file .* is a folder",
    ),
    Bad(
        COLLECT,
        "file",
        "list file names a missing file",
        lambda: with_list("1.png\n\n2.png\n", "1.png"),
        FileNotFoundError,
        r"2\.png \(line 3 of .*list\.txt\): no such file or folder",
    ),
    Bad(
        COLLECT,
        "file",
        "list file names a list file",
        lambda: with_list("@x.txt\n"),
        ValueError,
        r"line 1 of .*: a list file cannot name another list file",
    ),
    Bad(
        COLLECT,
        "file",
        "list file without entries",
        lambda: with_list("# only\n"),
        ValueError,
        r"list file .* names no inputs",
    ),
    Bad(
        COLLECT,
        "mismatch",
        "two inputs, one output",
        _same_output,
        ValueError,
        r"1\.jpg and .*1\.png would both be written to .*1\.png",
    ),
    Bad(
        COLLECT,
        "mismatch",
        "output overwrites its input",
        _overwrite,
        ValueError,
        r"the output .*1\.png would overwrite the input .*1\.png",
    ),
    Bad(
        COLLECT,
        "mismatch",
        "output_dir inside an input folder",
        _inside,
        ValueError,
        r"output_dir .*restored is inside the input folder .*: a rerun would collect",
    ),
    # -- collect: manifests ---------------------------------------------------------------------
    Bad(
        COLLECT,
        "file",
        "missing manifest",
        lambda: collect([], "o", manifest="/none/m.csv"),
        FileNotFoundError,
        r"manifest /none/m\.csv: no such file",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest of unknown kind",
        lambda: with_manifest("m.xlsx", "path\n1.png\n", "1.png"),
        ValueError,
        r"manifest .*m\.xlsx: unknown kind by its extension; use \.csv or \.jsonl",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest not UTF-8",
        _not_utf8,
        ValueError,
        r"manifest .*m\.csv is not UTF-8 text",
    ),
    Bad(
        COLLECT,
        "file",
        "empty csv manifest",
        lambda: with_manifest("m.csv", ""),
        ValueError,
        r"manifest .*m\.csv is empty: it needs a header row",
    ),
    Bad(
        COLLECT,
        "file",
        "csv manifest with a header only",
        lambda: with_manifest("m.csv", "path,noise\n"),
        ValueError,
        r"m\.csv has no rows",
    ),
    Bad(
        COLLECT,
        "file",
        "csv line with more cells than columns",
        lambda: with_manifest("m.csv", "path\n1.png,3\n", "1.png"),
        ValueError,
        r"line 2: 2 cells but the header has 1 columns",
    ),
    Bad(
        COLLECT,
        "name",
        "csv column twice",
        lambda: with_manifest("m.csv", "path,noise,noise\n1.png,1,2\n", "1.png"),
        ValueError,
        r"column 'noise' appears twice",
    ),
    Bad(
        COLLECT,
        "file",
        "jsonl line not JSON",
        lambda: with_manifest("m.jsonl", '{"path": "1.png"}\n{path\n', "1.png"),
        ValueError,
        r"m\.jsonl, line 2: not valid JSON",
    ),
    Bad(
        COLLECT,
        "type",
        "jsonl line a list",
        lambda: with_manifest("m.jsonl", "[1]\n", "1.png"),
        ValueError,
        r"line 1: each line must be a JSON object, not list",
    ),
    Bad(
        COLLECT,
        "name",
        "unknown column",
        lambda: with_manifest("m.csv", "path,sigma\n1.png,0.1\n", "1.png"),
        ValueError,
        r"line 2: unknown column 'sigma'; columns: path, image, kernel, noise",
    ),
    Bad(
        COLLECT,
        "name",
        "no path column",
        lambda: with_manifest("m.csv", "noise\n3\n", "1.png"),
        ValueError,
        r"line 2: no image: give its file in the 'path' \(or 'image'\) column",
    ),
    Bad(
        COLLECT,
        "name",
        "path and image both",
        lambda: with_manifest("m.csv", "path,image\n1.png,1.png\n", "1.png"),
        ValueError,
        r"line 2: give the image in 'path' or in 'image', not both",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest image missing",
        lambda: with_manifest("m.csv", "path\n1.png\n2.png\n", "1.png"),
        FileNotFoundError,
        r"line 3, column path: 2\.png: no such file",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest image is a folder",
        lambda: with_manifest("m.csv", "image\nsub\n", "sub/1.png"),
        ValueError,
        r"line 2, column image: sub: is a folder",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest image twice",
        lambda: with_manifest("m.csv", "path\n1.png\nx/../1.png\n", "1.png", "x/2.png"),
        ValueError,
        r"line 3 names x/\.\./1\.png again \(first at .*line 2\)",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest kernel file missing",
        lambda: with_manifest("m.csv", "path,kernel\n1.png,k.npy\n", "1.png"),
        FileNotFoundError,
        r"line 2: kernel: no such file k\.npy \(relative to the manifest\)",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest mask file missing",
        lambda: with_manifest("m.jsonl", '{"path": "1.png", "mask": "m.png"}', "1.png"),
        FileNotFoundError,
        r"line 1: mask: no such file m\.png",
    ),
    Bad(
        COLLECT,
        "file",
        "manifest operator kernel missing",
        lambda: with_manifest("m.csv", "path,operator\n1.png,blur:k.npy\n", "1.png"),
        FileNotFoundError,
        r"line 2: operator: no such kernel file k\.npy",
    ),
    Bad(
        COLLECT,
        "value",
        "manifest operator without factor",
        lambda: with_manifest("m.csv", "path,operator\n1.png,sr:bicubic\n", "1.png"),
        ValueError,
        r"line 2: operator: factor is required for sr",
    ),
    Bad(
        COLLECT,
        "name",
        "manifest operator mapping with an unknown field",
        lambda: with_manifest(
            "m.jsonl", '{"path": "1.png", "operator": {"name": "sr", "scale": 2}}', "1.png"
        ),
        ValueError,
        r"line 1: operator: unknown fields \['scale'\]",
    ),
    Bad(
        COLLECT,
        "type",
        "manifest operator a number",
        lambda: with_manifest("m.jsonl", '{"path": "1.png", "operator": 2}', "1.png"),
        TypeError,
        r"line 1: operator: must be text such as 'sr:bicubic:x2' or an object",
    ),
    Bad(
        COLLECT,
        "mismatch",
        "manifest operator and factor",
        lambda: with_manifest("m.csv", "path,operator,factor\n1.png,sr:x2,2\n", "1.png"),
        ValueError,
        r"line 2: operator and factor are both given",
    ),
    Bad(
        COLLECT,
        "value",
        "noise 0",
        lambda: with_manifest("m.csv", "path,noise\n1.png,0\n", "1.png"),
        ValueError,
        r"line 2: noise must be a finite number in \(0, 255\] \(the 0\.\.255 scale",
    ),
    Bad(
        COLLECT,
        "nan-inf",
        "noise nan",
        lambda: with_manifest("m.csv", "path,noise\n1.png,nan\n", "1.png"),
        ValueError,
        r"line 2: noise must be a finite number .*not nan",
    ),
    Bad(
        COLLECT,
        "value",
        "noise text",
        lambda: with_manifest("m.csv", "path,noise\n1.png,high\n", "1.png"),
        ValueError,
        r"line 2: noise must be a number in \(0, 255\], not 'high'",
    ),
    Bad(
        COLLECT,
        "type",
        "jsonl noise as text",
        lambda: with_manifest("m.jsonl", '{"path": "1.png", "noise": "7"}', "1.png"),
        TypeError,
        r"line 1: noise must be a finite number .*not str '7'",
    ),
    Bad(
        COLLECT,
        "value",
        "factor 1.5",
        lambda: with_manifest("m.csv", "path,factor\n1.png,1.5\n", "1.png"),
        ValueError,
        r"line 2: factor must be an int >= 1, not '1\.5'",
    ),
    Bad(
        COLLECT,
        "type",
        "jsonl factor true",
        lambda: with_manifest("m.jsonl", '{"path": "1.png", "factor": true}', "1.png"),
        TypeError,
        r"line 1: factor must be an int >= 1, not bool True",
    ),
    Bad(
        COLLECT,
        "type",
        "jsonl path a number",
        lambda: with_manifest("m.jsonl", '{"path": 1}', "1.png"),
        TypeError,
        r"line 1, column path: must be a file path, not int",
    ),
    Bad(
        COLLECT,
        "name",
        "unknown method",
        lambda: with_manifest("m.csv", "path,method\n1.png,dpir\n", "1.png"),
        ValueError,
        r"line 2: method must be one of hqs, .*implicit-prior, not 'dpir'",
    ),
    Bad(
        COLLECT,
        "name",
        "parameter the method does not have",
        lambda: with_manifest("m.csv", "path,method,params.gamma\n1.png,hqs,1\n", "1.png"),
        ValueError,
        r"line 2: params: method 'hqs' has no parameter 'gamma'; its parameters "
        r"are lam, sigma_start, sigma_end",
    ),
    Bad(
        COLLECT,
        "type",
        "jsonl params a list",
        lambda: with_manifest("m.jsonl", '{"path": "1.png", "params": [1]}', "1.png"),
        TypeError,
        r"line 1: params must be a JSON object of parameters, not list",
    ),
    Bad(
        COLLECT,
        "type",
        "jsonl parameter a list",
        lambda: with_manifest("m.jsonl", '{"path": "1.png", "params": {"lam": [1]}}', "1.png"),
        TypeError,
        r"line 1: params: lam must be a number, true/false or text, not list",
    ),
    Bad(
        COLLECT,
        "nan-inf",
        "csv parameter inf",
        lambda: with_manifest("m.csv", "path,params.lam\n1.png,inf\n", "1.png"),
        ValueError,
        r"line 2: params: lam must be finite, not inf",
    ),
    Bad(
        COLLECT,
        "mismatch",
        "manifest row not among the inputs",
        lambda: with_manifest("m.csv", "path\n2.png\n", "1.png", "2.png", inputs=["1.png"]),
        ValueError,
        r"line 2: 2\.png is not among the inputs",
    ),
    # -- shard ----------------------------------------------------------------------------------
    Good(SHARD, "size", "no items", lambda: shard([], 0, 1), lambda: []),
    Good(
        SHARD,
        "value",
        "7 items, rank 2 of 3",
        lambda: numbers(shard(items(7), 2, 3)),
        lambda: list(range(2, 7, 3)),
    ),
    Good(SHARD, "size", "more ranks than items", lambda: shard(items(3), 4, 5), lambda: []),
    Good(
        SHARD,
        "layout",
        "reversed order gives the same shard",
        lambda: numbers(shard(items(12)[::-1], 1, 4)),
        lambda: [1, 5, 9],
    ),
    Good(
        SHARD,
        "type",
        "numpy integer rank and world_size",
        lambda: numbers(shard(items(5), np.int64(0), np.int32(2))),
        lambda: [0, 2, 4],
    ),
    Bad(
        SHARD,
        "type",
        "items a generator",
        lambda: shard(iter(items(2)), 0, 1),
        TypeError,
        r"items must be a list or tuple of WorkItem, not list_iterator",
    ),
    Bad(
        SHARD,
        "type",
        "items of text",
        lambda: shard(["a.png"], 0, 1),
        TypeError,
        r"items\[0\] must be a WorkItem, not str",
    ),
    Bad(
        SHARD,
        "type",
        "rank float",
        lambda: shard(items(2), 0.0, 1),
        TypeError,
        r"rank must be an int in \[0, 0\] \(world_size is 1\), not float",
    ),
    Bad(
        SHARD,
        "type",
        "world_size bool",
        lambda: shard(items(2), 0, True),
        TypeError,
        r"world_size must be an int >= 1, not bool",
    ),
    Bad(
        SHARD,
        "value",
        "rank = world_size",
        lambda: shard(items(2), 2, 2),
        ValueError,
        r"rank must be an int in \[0, 1\] \(world_size is 2\), not 2",
    ),
    Bad(
        SHARD,
        "value",
        "rank negative",
        lambda: shard(items(2), -1, 2),
        ValueError,
        r"rank must be an int in \[0, 1\]",
    ),
    Bad(
        SHARD,
        "value",
        "world_size 0",
        lambda: shard(items(2), 0, 0),
        ValueError,
        r"world_size must be an int >= 1, not 0",
    ),
    Bad(
        SHARD,
        "mismatch",
        "two items with one key",
        lambda: shard(items(2) * 2, 0, 1),
        ValueError,
        r"items holds two items with the key '00\.png'",
    ),
    # -- WorkItem -------------------------------------------------------------------------------
    Good(
        ITEM,
        "type",
        "str paths become Paths; key is posix text",
        lambda: codes(WorkItem("in/b.png", "a/b.png", "o/a/b.png").key),
        lambda: codes("a/b.png"),
    ),
    Bad(
        ITEM,
        "type",
        "source int",
        lambda: WorkItem(3, "a.png", "o.png"),
        TypeError,
        r"source must be a path \(str or Path\), not int",
    ),
    Bad(
        ITEM,
        "value",
        "relative absolute",
        lambda: WorkItem("a.png", "/a.png", "o.png"),
        ValueError,
        r"relative must be a non-empty relative path without '\.\.', not '/a\.png'",
    ),
    Bad(
        ITEM,
        "value",
        "relative escapes",
        lambda: WorkItem("a.png", "../a.png", "o.png"),
        ValueError,
        r"relative must be a non-empty relative path without '\.\.'",
    ),
    Bad(
        ITEM,
        "size",
        "relative empty",
        lambda: WorkItem("a.png", "", "o.png"),
        ValueError,
        r"relative must be a non-empty relative path",
    ),
    Bad(
        ITEM,
        "type",
        "settings a dict",
        lambda: WorkItem("a", "a", "o", {"noise": 1}),
        TypeError,
        r"settings must be a pnpfast\.runner\.worklist\.Settings, not dict",
    ),
    # -- Settings -------------------------------------------------------------------------------
    Good(
        SETTINGS,
        "value",
        "noise 255 is sigma 1",
        lambda: Settings(noise=255).sigma,
        lambda: 1.0,
        0.0,
    ),
    Good(
        SETTINGS,
        "value",
        "params sorted by name",
        lambda: [v for _, v in Settings(params={"b": 1, "a": 2}).params],
        lambda: [2, 1],
    ),
    Good(
        SETTINGS,
        "value",
        "as_dict: the set fields only, operator as text",
        lambda: codes(
            json.dumps(Settings(noise=2.55, operator=OperatorSpec("sr", factor=2)).as_dict())
        ),
        lambda: codes('{"noise": 2.55, "operator": "sr:bicubic:x2"}'),
    ),
    Bad(
        SETTINGS,
        "type",
        "kernel int",
        lambda: Settings(kernel=3),
        TypeError,
        r"kernel must be a file path \(str or Path\), not int",
    ),
    Bad(
        SETTINGS,
        "value",
        "mask empty",
        lambda: Settings(mask=""),
        ValueError,
        r"mask must be a file path, not an empty string",
    ),
    Bad(
        SETTINGS,
        "value",
        "noise negative",
        lambda: Settings(noise=-1),
        ValueError,
        r"noise must be a finite number in \(0, 255\] \(the 0\.\.255 scale, like --noise\), "
        r"not -1",
    ),
    Bad(
        SETTINGS,
        "value",
        "noise 0.1 above the 0..255 scale's top? no: 256",
        lambda: Settings(noise=256),
        ValueError,
        r"noise must be .*not 256",
    ),
    Bad(
        SETTINGS,
        "nan-inf",
        "noise inf",
        lambda: Settings(noise=math.inf),
        ValueError,
        r"noise must be a finite number",
    ),
    Bad(
        SETTINGS,
        "type",
        "factor float",
        lambda: Settings(factor=2.0),
        TypeError,
        r"factor must be an int >= 1, not float",
    ),
    Bad(
        SETTINGS,
        "value",
        "factor 0",
        lambda: Settings(factor=0),
        ValueError,
        r"factor must be an int >= 1, not 0",
    ),
    Bad(
        SETTINGS,
        "type",
        "operator text",
        lambda: Settings(operator="sr:x2"),
        TypeError,
        r"operator must be a pnpfast\.operators\.OperatorSpec",
    ),
    Bad(
        SETTINGS,
        "mismatch",
        "operator and kernel",
        lambda: Settings(operator=OperatorSpec("sr", factor=2), kernel="k.npy"),
        ValueError,
        r"operator and kernel are both given",
    ),
    Bad(
        SETTINGS,
        "name",
        "method unknown",
        lambda: Settings(method="dpir"),
        ValueError,
        r"method must be one of hqs, .*not 'dpir'",
    ),
    Bad(
        SETTINGS,
        "type",
        "method int",
        lambda: Settings(method=1),
        TypeError,
        r"method must be a str, one of hqs",
    ),
    Bad(
        SETTINGS,
        "type",
        "params a list of numbers",
        lambda: Settings(params=[1, 2]),
        TypeError,
        r"params must be a mapping of parameter names to values, not list",
    ),
    Bad(
        SETTINGS,
        "name",
        "params name not an identifier",
        lambda: Settings(params={"1x": 1}),
        ValueError,
        r"params: '1x' is not a parameter name",
    ),
    Bad(
        SETTINGS,
        "name",
        "params name not of the method",
        lambda: Settings(method="implicit-prior", params={"lam": 1}),
        ValueError,
        r"params: method 'implicit-prior' has no parameter 'lam'; its parameters are sigma_0",
    ),
    Bad(
        SETTINGS,
        "nan-inf",
        "params nan",
        lambda: Settings(params={"lam": math.nan}),
        ValueError,
        r"params: lam must be finite, not nan",
    ),
    Bad(
        SETTINGS,
        "type",
        "params value None",
        lambda: Settings(params={"lam": None}),
        TypeError,
        r"params: lam must be a number, true/false or text, not NoneType",
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)
