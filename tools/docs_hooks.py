"""MkDocs hooks (``mkdocs.yml``: ``hooks``): the generated pages and figures join the site, the navigation
lists them, and each page's generated sections are filled (``tools/gen_docs.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_docs  # noqa: E402
from mkdocs.structure.files import File, Files  # noqa: E402

_PAGES: dict[str, str] = {}
GUIDES = ["guides/using.md", "guides/evaluating.md", "guides/training.md", "guides/export.md",
          "guides/benchmarking.md", "guides/data.md", "guides/weights.md", "guides/studies.md", "security.md"]


def on_config(config: Any) -> Any:
    """The generated pages, once per build, and the navigation that lists them."""
    import zoo

    _PAGES.clear()
    _PAGES.update(gen_docs.pages())
    config["nav"] = [
        {"Home": "index.md"},
        {"Guides": GUIDES},
        {"Models": ["models/index.md", *(f"models/{n}.md" for n in zoo.list_models())]},
        {"Checkpoints": ["checkpoints/index.md", *(f"checkpoints/{w.name}.md" for w in zoo.list_weights()),
                         "gallery.md"]},
        {"Results": ["results.md", *(p for p in _PAGES if p.startswith("benchmarks/"))]},
        {"Reference": ["api.md", "cli.md", "architecture.md"]},
    ]
    return config


def on_files(files: Files, config: Any) -> Files:
    for path, text in _PAGES.items():
        files.append(File.generated(config, path, content=text))
    for figure in sorted(gen_docs.RESULTS.rglob("*.png")):  # the benchmark and study figures
        files.append(File.generated(config, f"benchmarks/{figure.relative_to(gen_docs.RESULTS).as_posix()}",
                                    abs_src_path=str(figure)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return gen_docs.fill(markdown)
