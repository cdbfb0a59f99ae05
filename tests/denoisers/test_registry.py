"""pnpfast.denoisers.registry: download, cache, checksum, interruption and offline behaviour
against a local HTTP server, and the real entries against ../shared/data/manifest.json."""

import hashlib
import http.server
import io
import json
import shutil
import socket
import threading

import pytest
import torch
from pnpfast_test_utils import SHARED_DATA

from pnpfast.denoisers import catalog, registry
from pnpfast.denoisers.bfcnn import BFCNN
from pnpfast.denoisers.dncnn import DnCNN
from pnpfast.denoisers.registry import Entry, WeightsUnavailableError

MANIFEST = SHARED_DATA / "manifest.json"


def tiny_weights() -> tuple[bytes, dict[str, torch.Tensor]]:
    """The bytes of a torch.save'd state dict of BFCNN(1, depth=3, features=4), and the dict."""
    gen = torch.Generator().manual_seed(0)
    net = BFCNN(1, depth=3, features=4)
    own = net.state_dict()
    state = {}
    for key in BFCNN.file_keys(3):
        value = torch.rand(own[key].shape, generator=gen) + 0.5  # positive: running_sd too
        state[key] = value if key.startswith("running_sd") else value - 0.75
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


class Server:
    """A local HTTP server: ``routes[path] = (body, mode)`` with mode ``"ok"``, ``"short"``
    (announces the full length, sends half, closes) or ``"raise"`` (sends a third, then the
    handler raises); ``requests`` lists the paths asked for."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, mode = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "ok":
                    self.wfile.write(body)
                elif mode == "short":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    raise ConnectionAbortedError("the test server stops mid-body")

            def log_message(self, *args) -> None:
                pass

        class Quiet(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # the "raise" mode is deliberate

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No offline switch from the environment, and a default cache inside tmp_path."""
    monkeypatch.delenv("PNPFAST_OFFLINE", raising=False)
    monkeypatch.setenv("PNPFAST_CACHE", str(tmp_path / "default-cache"))


def add_entry(monkeypatch, name: str, url: str, sha256: str | None, filename="tiny.pt") -> Entry:
    item = Entry(
        url=url,
        sha256=sha256,
        filename=filename,
        kind="bfcnn",
        channels=1,
        blind=True,
        sigmas=(0.0, 100.0),
        description="a tiny BF-CNN for the tests",
        license="MIT",
    )
    monkeypatch.setitem(registry.REGISTRY, name, item)
    return item


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_load_and_cache_hit(server, monkeypatch, tmp_path):
    body, state = tiny_weights()
    server.routes["/w/tiny.pt"] = (body, "ok")
    add_entry(monkeypatch, "tiny", server.base + "/w/tiny.pt", hashlib.sha256(body).hexdigest())
    cache = tmp_path / "cache"

    net = registry.load_entry("TINY", cache_dir=cache, offline=False)
    assert isinstance(net, BFCNN) and net.depth == 3 and net.features == 4
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert torch.equal(net.conv_layers[1].weight, state["conv_layers.1.weight"])
    x = torch.rand(2, 1, 9, 7, generator=torch.Generator().manual_seed(1))
    out = net(x, 0.1)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.pt"]
    assert (cache / "tiny.pt").read_bytes() == body
    assert server.requests == ["/w/tiny.pt"]

    path = registry.fetch("tiny", cache_dir=cache, offline=False, progress=False)
    registry.load_entry("tiny", cache_dir=cache)
    assert path == cache / "tiny.pt"
    assert server.requests == ["/w/tiny.pt"]  # cache hits: no second request


def test_unknown_sha256_downloads_without_check(server, monkeypatch, tmp_path):
    body, _ = tiny_weights()
    server.routes["/tiny.pt"] = (body, "ok")
    add_entry(monkeypatch, "tiny", server.base + "/tiny.pt", None)
    path = registry.fetch("tiny", cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == body


def test_checksum_mismatch_saves_nothing(server, monkeypatch, tmp_path):
    body, _ = tiny_weights()
    server.routes["/tiny.pt"] = (body, "ok")
    wrong = "0" * 64
    url = server.base + "/tiny.pt"
    add_entry(monkeypatch, "tiny-bad", url, wrong)
    with pytest.raises(ValueError) as info:
        registry.fetch("tiny-bad", cache_dir=tmp_path, progress=False)
    message = str(info.value)
    for part in ("'tiny-bad'", url, wrong, hashlib.sha256(body).hexdigest()):
        assert part in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["short", "raise"])
def test_interrupted_download_saves_nothing(server, monkeypatch, tmp_path, mode):
    body, _ = tiny_weights()
    server.routes["/tiny.pt"] = (body, mode)
    url = server.base + "/tiny.pt"
    # no checksum: the byte count alone must catch the truncation
    add_entry(monkeypatch, "tiny", url, None)
    with pytest.raises(WeightsUnavailableError, match="interrupted") as info:
        registry.fetch("tiny", cache_dir=tmp_path, progress=False)
    assert url in str(info.value) and str(tmp_path / "tiny.pt") in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_unavailable(server, monkeypatch, tmp_path):
    url = server.base + "/absent.pt"
    add_entry(monkeypatch, "tiny", url, None)
    with pytest.raises(WeightsUnavailableError, match="HTTP 404") as info:
        registry.fetch("tiny", cache_dir=tmp_path, progress=False)
    assert url in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_no_network(monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/tiny.pt"
    add_entry(monkeypatch, "tiny", url, None)
    with pytest.raises(WeightsUnavailableError) as info:
        registry.load_entry("tiny", cache_dir=tmp_path, offline=False)
    message = str(info.value)
    assert url in message
    assert str(tmp_path / "tiny.pt") in message
    assert "load('tiny', weights=PATH)" in message
    assert isinstance(info.value, RuntimeError)
    assert list(tmp_path.iterdir()) == []


def test_offline(server, monkeypatch, tmp_path):
    body, _ = tiny_weights()
    server.routes["/tiny.pt"] = (body, "ok")
    url = server.base + "/tiny.pt"
    add_entry(monkeypatch, "tiny", url, hashlib.sha256(body).hexdigest())
    with pytest.raises(WeightsUnavailableError, match="offline") as info:
        registry.fetch("tiny", cache_dir=tmp_path, offline=True)
    assert url in str(info.value) and str(tmp_path / "tiny.pt") in str(info.value)
    monkeypatch.setenv("PNPFAST_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="offline"):
        registry.fetch("tiny", cache_dir=tmp_path)
    assert server.requests == []

    registry.fetch("tiny", cache_dir=tmp_path, offline=False, progress=False)
    net = registry.load_entry("tiny", cache_dir=tmp_path)  # offline from the environment
    assert isinstance(net, BFCNN)
    assert registry.fetch("tiny", cache_dir=tmp_path, offline=True) == tmp_path / "tiny.pt"
    assert server.requests == ["/tiny.pt"]


def test_corrupt_cached_file(monkeypatch, tmp_path):
    body, _ = tiny_weights()
    add_entry(monkeypatch, "tiny", "http://127.0.0.1:9/tiny.pt", hashlib.sha256(body).hexdigest())
    (tmp_path / "tiny.pt").write_bytes(body[:-1] + b"x")
    with pytest.raises(ValueError, match="delete"):
        registry.fetch("tiny", cache_dir=tmp_path, offline=True)
    assert (tmp_path / "tiny.pt").exists()  # a user's file is not deleted


def test_local_weights_skip_the_cache(monkeypatch, tmp_path):
    body, _ = tiny_weights()
    add_entry(monkeypatch, "tiny", "http://127.0.0.1:9/tiny.pt", None)
    local = tmp_path / "mine.pt"
    local.write_bytes(body)
    net = registry.load_entry("tiny", weights=local, cache_dir=tmp_path / "cache", offline=True)
    assert isinstance(net, BFCNN)
    assert list((tmp_path / "cache").glob("*")) == []


def test_unknown_name_lists_names():
    with pytest.raises(ValueError, match="name must be one of") as info:
        registry.entry("no-such-denoiser")
    for name in ("drunet-gray", "bfcnn-color", "bf-dncnn-0-55"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="drunet-color"):
        registry.fetch("no-such-denoiser", offline=True)
    assert registry.entry(" DRUNet-Gray ") is registry.REGISTRY["drunet-gray"]


def test_cache_dir_resolution(monkeypatch, tmp_path):
    env = tmp_path / "env" / "cache"
    monkeypatch.setenv("PNPFAST_CACHE", str(env))
    assert registry.cache_dir() == env and env.is_dir()
    given = tmp_path / "given"
    assert registry.cache_dir(given) == given and given.is_dir()
    monkeypatch.delenv("PNPFAST_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert registry.cache_dir() == tmp_path / "home" / ".cache" / "pnpfast"


def test_env_cache_used_by_fetch(server, monkeypatch, tmp_path):
    body, _ = tiny_weights()
    server.routes["/tiny.pt"] = (body, "ok")
    add_entry(monkeypatch, "tiny", server.base + "/tiny.pt", None)
    monkeypatch.setenv("PNPFAST_CACHE", str(tmp_path / "env"))
    assert registry.fetch("tiny", progress=False) == tmp_path / "env" / "tiny.pt"


def test_entry_validation():
    base = dict(
        url="https://x/y.pt",
        sha256=None,
        filename="y.pt",
        kind="bfcnn",
        channels=1,
        blind=True,
        sigmas=(0.0, 1.0),
        description="",
        license="",
    )
    Entry(**base)
    for field, bad in [("kind", "unet"), ("sha256", "abc"), ("filename", "a/b.pt")]:
        with pytest.raises(ValueError, match=field):
            Entry(**{**base, field: bad})


def test_real_entries_are_well_formed():
    entries = registry.REGISTRY
    assert registry.names() == tuple(entries)
    assert len(entries) == 14
    # one table of names: no name in two groups, registry names never shadow load()'s own
    assert len(set(catalog.NAMES)) == len(catalog.NAMES)
    assert not set(entries) & set(catalog.NAMES)
    assert {catalog.family(n) for n in entries} == {"registry"}
    assert all(name == name.lower() for name in entries)
    assert len({e.filename for e in entries.values()}) == len(entries)
    for name, item in entries.items():
        assert item.url.startswith("https://"), name
        if item.url.startswith("https://raw.githubusercontent.com/"):
            # pinned to a commit, and checked
            assert item.url.split("/")[5].isalnum() and len(item.url.split("/")[5]) == 40, name
            assert item.sha256 is not None, name
        else:
            assert item.url.startswith("https://github.com/cszn/KAIR/releases/download/v1.0/")
            assert item.url.rsplit("/", 1)[1] == item.filename, name
    assert registry.entry("drunet-color").channels == 3
    assert registry.entry("drunet-gray").kind == "drunet"
    assert not registry.entry("drunet-gray").blind
    assert registry.entry("dncnn-bias-0-55").kind == "dncnn"
    assert registry.entry("bf-dncnn-0-55").kind == "bf-dncnn"


@pytest.mark.shared
def test_real_entries_match_the_manifest(tmp_path):
    if not MANIFEST.is_file():
        pytest.skip(f"manifest not found at {MANIFEST} (<repo root>/../shared/data/manifest.json)")
    files = [
        f
        for f in json.loads(MANIFEST.read_text())
        if f["path"].startswith("weights/") and not f["license"].startswith("GPL")
    ]
    assert len(files) == 9  # 2 BF-CNN, 1 KAIR DnCNN, 6 Mohan et al.
    missing = [f["path"] for f in files if not (MANIFEST.parent / f["path"]).is_file()]
    if missing:  # a partial copy, like the one benchmarks/gpu_pack.sh makes
        pytest.skip(f"{len(missing)} weight files of the manifest are not in {MANIFEST.parent}")
    by_url = {e.url: (name, e) for name, e in registry.REGISTRY.items()}
    raw = {u for u in by_url if u.startswith("https://raw.githubusercontent.com/")}
    expected_urls = set()
    for f in files:
        url = f"https://raw.githubusercontent.com/{f['repo']}/{f['commit']}/{f['src_path']}"
        expected_urls.add(url)
        assert url in by_url, f"no registry entry for {f['path']} ({url})"
        name, item = by_url[url]
        assert item.sha256 == f["sha256"], name
        local = MANIFEST.parent / f["path"]
        assert hashlib.sha256(local.read_bytes()).hexdigest() == item.sha256, name

        # the real file, put in a cache, loads offline as the kind and channels announced
        cache = tmp_path / name
        cache.mkdir()
        shutil.copyfile(local, cache / item.filename)
        net = registry.load_entry(name, cache_dir=cache, offline=True)
        assert net.channels == item.channels and net.blind == item.blind, name
        if item.kind == "bfcnn":
            assert isinstance(net, BFCNN), name
        else:
            assert isinstance(net, DnCNN), name
            assert net.bias == (item.kind == "dncnn"), name
    assert raw == expected_urls  # every pinned URL is backed by the manifest
