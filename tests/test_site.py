"""The documentation site: `mkdocs build --strict` succeeds, has a page per architecture and per released
checkpoint, no internal link or anchor is broken, and three pages render in a real browser (headless Chromium)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

import zoo

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("site")]  # one worker builds the site once
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Added to each page as the test server sends it: after load, the body records how many images decoded.
IMAGE_PROBE = (b"<script>addEventListener('load', () => { const i = [...document.images]; document.body.dataset"
               b".images = i.filter(x => x.complete && x.naturalWidth > 0).length + '/' + i.length; });</script>")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_MKDOCS_2_WARNING": "1"}  # (Material's end-of-life notice)
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    return out


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for key in ("href", "src"):
            if values.get(key) and not (tag == "link" and values.get("rel") in ("canonical", "alternate")):
                self.links.append(values[key])


@functools.cache
def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _target(page: Path, link: str, site: Path) -> tuple[Path, str] | None:
    """The file and fragment an internal link of ``page`` points at (None for an external one)."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
        return None
    base = site if parts.path.startswith("/") else page.parent  # 404.html links from the site's root
    path = page if not parts.path else (base / unquote(parts.path).lstrip("/")).resolve()
    if path.is_dir() or parts.path.endswith("/"):
        path = path / "index.html"
    assert site.resolve() in path.resolve().parents, f"{page}: {link} leaves the site"
    return path, unquote(parts.fragment)


def test_the_site_has_every_model_checkpoint_guide_and_the_references(site: Path) -> None:
    for name in zoo.list_models():
        page = (site / "models" / name / "index.html").read_text()
        assert f"{zoo.model_info(name).params:,}" in page, name
    for w in zoo.list_weights():
        page = (site / "checkpoints" / w.name / "index.html").read_text()
        assert f"{w.metrics.top1:.2f}" in page and w.sha256 in page, w.name
    api = (site / "api" / "index.html").read_text()
    for name in ("zoo.builder.create", "zoo.registry.get_weights", "zoo.metadata.Weights", "zoo.train.loop.train",
                 "zoo.runners.runner.prepare", "zoo.deploy.export_model", "zoo.evaluate.evaluate_model"):
        assert f'id="{name}"' in api, name
    sections = re.findall(r'doc-section-title">(\w+):', api)  # mkdocstrings' rendering of Args/Returns/Raises
    assert sections.count("Parameters") >= 10 and sections.count("Returns") >= 10 and sections.count("Raises") >= 10
    cli = (site / "cli" / "index.html").read_text()
    for command in ("zoo eval", "zoo train", "zoo export", "zoo bench", "zoo weights verify"):
        assert f"<code>{command}</code>" in cli, command
    for guide in ("using", "evaluating", "training", "export", "benchmarking", "data", "weights", "studies"):
        assert (site / "guides" / guide / "index.html").exists(), guide
    results = (site / "results" / "index.html").read_text()
    assert "RobustBench Standard" in results and "mean corruption accuracy" in results


def test_no_internal_link_or_anchor_is_broken(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > len(zoo.list_models()) + len(zoo.list_weights())
    broken, checked = [], 0
    for page in pages:
        for link in _parse(page).links:
            target = _target(page, link, site)
            if target is None:
                continue
            path, fragment = target
            checked += 1
            if not path.exists():
                broken.append(f"{page.relative_to(site)}: {link} (no such file)")
            elif fragment and path.suffix == ".html" and fragment not in _parse(path).ids:
                broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert checked > 1000
    assert not broken, "\n".join(broken[:30])


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # noqa: ANN201 (the parent's signature)
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = path.read_bytes().replace(b"</body>", IMAGE_PROBE + b"</body>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        import io

        return io.BytesIO(body)


@pytest.fixture(scope="module")
def served(site: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--virtual-time-budget=8000", *args],
                          capture_output=True, text=True, timeout=120)


def _shots_dir() -> Path:
    """Screenshots are build artefacts: ``$ZOO_SITE_SHOTS`` or ``build/site-screenshots`` (ignored by git)."""
    out = Path(os.environ.get("ZOO_SITE_SHOTS", ROOT / "build" / "site-screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
@pytest.mark.parametrize(("page", "title", "weights", "min_images"), [
    ("", "zoo", "resnet18.cifar10", 0),
    ("models/resnet20/", "resnet20", "resnet20.cifar10", 0),
    ("checkpoints/resnet18.cifar10/", "resnet18.cifar10", "resnet18.cifar10", 3),
], ids=["home", "model", "checkpoint"])
def test_pages_render_in_headless_chromium(served: str, page: str, title: str, weights: str,
                                           min_images: int) -> None:
    """The page's title, a table with the top-1 of ``weights`` as the registry records it, every image decoded."""
    top1 = f"{zoo.get_weights(weights).metrics.top1:.2f}"
    url = f"{served}/{page}"
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert re.search(rf"<title>[^<]*{re.escape(title)}[^<]*</title>", html), html[:500]
    tables = re.findall(r"<table.*?</table>", html, re.S)
    assert any("top-1" in t and top1 in t for t in tables), f"no table with the top-1 {top1} of {weights} on {page}"
    images = re.search(r'data-images="(\d+)/(\d+)"', html)
    assert images is not None, "the page's load event never ran"
    decoded, total = map(int, images.groups())
    assert decoded == total >= min_images, f"{decoded} of {total} images loaded on {page or 'home'}"
    shot = _shots_dir() / f"{(page.strip('/') or 'home').replace('/', '_')}.png"
    result = _chromium(f"--screenshot={shot}", "--window-size=1280,1600", url)
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 1600)
        colours = im.convert("RGB").resize((64, 80)).getcolors(64 * 80)
        assert colours is None or len(colours) > 20, "the screenshot is (nearly) blank"
