"""Every ```python block of the README and of docs/*.md runs as written, offline.

Each block runs as its own program (a subprocess with a timeout, in a temporary directory,
with no ``YAGNA_*`` variable set, so ``network()`` starts an embedded devnet). A block that
cannot run on its own — a fragment of a larger program, or code that needs a real daemon or
another library — is marked in the Markdown by an HTML comment on the line just before it::

    <!-- snippet: fragment (why it cannot run alone) -->

and is only compiled. New pages in docs/ and new blocks are picked up by themselves; a marker
without a reason, a marker of an unknown kind or a marker not followed by a block fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 180  # seconds a snippet may take (a job on the embedded devnet takes a few)

_FENCE = re.compile(r"^(`{3,})python\s*$")
_MARKER = re.compile(r"^<!--\s*snippet:\s*(?P<kind>[\w-]+)\s*(?P<reason>.*?)\s*-->\s*$")
KINDS = ("fragment",)


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    kind: Optional[str]  # None: runs; "fragment": only compiled
    reason: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    """The python blocks of ``page``, with the marker before each (if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    pending: Optional[tuple[int, str, str]] = None  # a marker waiting for its block
    i = 0
    while i < len(lines):
        text = lines[i]
        marker = _MARKER.match(text.strip())
        fence = _FENCE.match(text.strip())
        if marker:
            if pending is not None:
                raise AssertionError(f"{page.name}:{pending[0]}: snippet marker not followed "
                                     "by a ```python block")
            pending = (i + 1, marker.group("kind"), marker.group("reason").strip(" ():-"))
        elif fence:
            end = i + 1
            while end < len(lines) and lines[end].strip() != fence.group(1):
                end += 1
            assert end < len(lines), f"{page.name}:{i + 1}: unclosed ```python block"
            kind, reason = (pending[1], pending[2]) if pending is not None else (None, "")
            found.append(Snippet(page, i + 1, "\n".join(lines[i + 1:end]) + "\n", kind, reason))
            pending = None
            i = end
        elif text.strip() and pending is not None:
            raise AssertionError(f"{page.name}:{pending[0]}: snippet marker not followed by a "
                                 f"```python block (found {text.strip()[:40]!r})")
        i += 1
    assert pending is None, f"{page.name}:{pending[0]}: snippet marker at the end of the page"
    return found


ALL = [s for page in PAGES for s in snippets(page)]


def test_the_pages_have_snippets() -> None:
    names = {s.page.name for s in ALL}
    assert {"README.md", "guide.md", "from-yapapi.md"} <= names
    assert sum(s.kind is None for s in ALL) >= 3  # runnable examples, not only fragments


@pytest.mark.parametrize("snippet", [s for s in ALL if s.kind is not None],
                         ids=lambda s: s.name)
def test_a_marked_snippet_says_why_and_compiles(snippet: Snippet) -> None:
    assert snippet.kind in KINDS, f"{snippet.name}: unknown snippet kind {snippet.kind!r}"
    assert len(snippet.reason) >= 10, f"{snippet.name}: say why it cannot run on its own"
    compile(snippet.code, snippet.name, "exec")


@pytest.mark.parametrize("snippet", [s for s in ALL if s.kind is None], ids=lambda s: s.name)
def test_a_snippet_runs_as_written(snippet: Snippet, tmp_path: Path) -> None:
    program = tmp_path / "snippet.py"
    program.write_text(snippet.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("YAGNA_", "GOLEMSYNC_"))}
    try:
        result = subprocess.run([sys.executable, str(program)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{snippet.name} did not finish in {TIMEOUT} s:\n"
                             f"{exc.stdout!r}\n{exc.stderr!r}") from exc
    assert result.returncode == 0, (
        f"{snippet.name} failed (exit {result.returncode}); mark it "
        "`<!-- snippet: fragment (reason) -->` only if it cannot run alone\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
