"""A recipe's RESULTS.md, one section per experiment, current results first (icefall's layout).

    # <recipe> results
    <intro>
    ## exp/asr: <title>            <- a section; its key is the exp dir, relative to the recipe
    | date | commit | ... |        <- rows are appended to the section's results table
    - <a bullet line>              <- other entries (perplexity, TTS scores) are appended lines
    ## exp/lm: <title>
    ...
    ## Earlier experiments         <- superseded work; new sections are inserted above it

Every writer (stage 5's decoding, TTS evaluation, the text LM's perplexity, the ablation
scripts through ``speechlm results-md``) goes through :func:`append_to_section`, so an entry
lands in the section named for its run (created when absent), never under whatever came last.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

Pathlike = Union[str, Path]
EARLIER = "## Earlier experiments"


def section_key(exp_dir: Pathlike, results_md: Pathlike) -> str:
    """The section key of an exp dir: its path relative to the RESULTS.md's folder (e.g.
    ``exp/asr``), or as given when it lies elsewhere."""
    exp_dir, base = Path(os.path.abspath(exp_dir)), Path(os.path.abspath(results_md)).parent
    try:
        return exp_dir.relative_to(base).as_posix()
    except ValueError:
        return str(exp_dir)


def current_commit(cwd: Optional[Pathlike] = None) -> str:
    """Short hash of the checkout's HEAD (``+`` when files are modified), or ``-``."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=cwd, capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        head = run("rev-parse", "--short", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", ":/speechlm", ":/tools")
        return head + ("+" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "-"


def _is_heading_of(line: str, key: str) -> bool:
    text = line.rstrip("\n")
    return text == f"## {key}" or text.startswith(f"## {key}:") or text.startswith(f"## {key} ")


def _section_bounds(lines: List[str], key: str) -> Optional[Tuple[int, int]]:
    """(heading index, end index) of the section ``key``; end is the next ``## `` heading."""
    for i, line in enumerate(lines):
        if _is_heading_of(line, key):
            end = i + 1
            while end < len(lines) and not lines[end].startswith("## "):
                end += 1
            return i, end
    return None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def append_to_section(results_md: Pathlike, key: str, entries: Sequence[str], title: str = "",
                      table: Optional[Tuple[str, str]] = None) -> None:
    """Append ``entries`` (lines) to the section ``key`` of ``results_md``.

    ``table`` = (header, rule): the entries are rows of that table, appended after the last
    such table in the section (a new table is started when the section has none). Otherwise
    they are appended at the section's end. A missing section is created, headed
    ``## key: title``, above ``## Earlier experiments`` (or at the end of the file).
    """
    path = Path(results_md)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = [line if line.endswith("\n") else line + "\n" for line in text.splitlines()]
    new = [e.rstrip("\n") + "\n" for e in entries]
    bounds = _section_bounds(lines, key)
    if bounds is None:
        at = next((i for i, line in enumerate(lines) if line.rstrip() == EARLIER), len(lines))
        heading = f"## {key}: {title}\n" if title else f"## {key}\n"
        lines[at:at] = (["\n"] if at and lines[at - 1].strip() else []) + [heading]
        bounds = _section_bounds(lines, key)
    start, end = bounds
    if table is not None:
        header, rule = table
        headers = [i for i in range(start, end) if lines[i].strip() == header]
        if headers:
            at = headers[-1] + 1
            while at < end and lines[at].lstrip().startswith("|"):
                at += 1
            lines[at:at] = new
            _write(path, "".join(lines))
            return
        new = [header + "\n", rule + "\n"] + new
    at = end  # after the section's last non-blank line, one blank line before and after
    while at > start + 1 and not lines[at - 1].strip():
        at -= 1
    del lines[at:end]
    lines[at:at] = ["\n"] + new + (["\n"] if at < len(lines) else [])
    _write(path, "".join(lines))
