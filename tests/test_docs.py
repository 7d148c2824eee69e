"""The README and docs/ stay true: their commands parse, the config keys they name exist, their
links resolve, and the generated reference blocks are current (docs/make_reference.py --check).

Fast (no torch, no training): the commands are parsed with the CLI's own parser, the keys checked
by the config's own loader.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gan_core import config as config_lib
from gan_core.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])

# Pages a parallel branch writes, whose links may dangle until it is merged; empty on main, so a
# broken link fails.
PENDING_PAGES: set[str] = set()
# CLI flags a page names that are not on this branch yet (from parallel issues); empty today.
PENDING_FLAGS: set[str] = set()

SECTIONS = ("data", "model", "loss", "optim_g", "optim_d", "train", "eval", "dcgan", "mlp", "diffusion")
SHELLS = {"bash", "sh", "shell", "console", ""}
FILE_SUFFIXES = {"log", "csv", "json", "yaml", "py", "md", "png", "html", "pdf", "pt"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def fenced(page: Path, kinds: set[str]) -> list[str]:
    return [body for kind, body in FENCE.findall(page.read_text()) if kind in kinds]


def commands() -> list[tuple[str, str]]:
    """(page, command line) for every line of a shell block that runs the workbook or make."""
    found = []
    for page in PAGES:
        for body in fenced(page, SHELLS):
            for line in body.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip().lstrip("!$ ").strip()
                for part in re.split(r"&&|;", line):
                    part = part.strip()
                    if re.search(r"(^|/)gan-workbook\b|-m gan_core\b|^make\b", part):
                        found.append((rel(page), part))
    return found


def workbook_args(words: list[str], targets: dict[str, str]) -> list[str] | None:
    """The arguments of gan-workbook in a command, or None when it is not one (make
    targets other than report are checked to exist, their variables not parsed)."""
    if words[0] == "make":
        assert len(words) > 1 and words[1] in targets, f"no Makefile target {words[1:2]}"
        if words[1] != "report":
            return None
        assignments = dict(w.split("=", 1) for w in words[2:] if "=" in w)
        unknown = set(assignments) - {"ARGS", "SWEEP", "JOBS"}
        assert not unknown, f"make report takes ARGS, SWEEP, JOBS (got {unknown})"
        return ["sweep", assignments.get("SWEEP", "params/sweeps/quick.yaml"), "--jobs",
                assignments.get("JOBS", "2"), *shlex.split(assignments.get("ARGS", ""))]
    for i, word in enumerate(words):
        if word.endswith("gan-workbook"):
            return words[i + 1:]
        if word == "-m" and words[i + 1:i + 2] == ["gan_core"]:
            return words[i + 2:]
    return None


def makefile_targets() -> dict[str, str]:
    return dict(re.findall(r"^([\w-]+):(.*)$", (REPO / "Makefile").read_text(), re.M))


def unknown_key(key: str, value: object = None) -> str | None:
    """The config loader's complaint when ``key`` is not a key (None when it is): the key is
    set on the defaults (a value that fails is tried as its default), and only an unknown key or
    a moved one counts."""
    try:
        config_lib.from_dict(config_lib.unflatten({key: value}), "docs")
    except config_lib.ConfigError as err:
        text = str(err)
        if "unknown key" in text or " is now " in text or "must be a mapping" in text:
            return text
    return None


def test_the_pages_exist():
    names = {rel(p) for p in PAGES}
    for page in ("README.md", "docs/README.md", "docs/run-it-where-you-are.md", "docs/reading-your-report.md",
                 "docs/handing-it-in.md", "docs/troubleshooting.md", "docs/reference/config.md",
                 "docs/reference/cli.md", "docs/reference/presets.md", "docs/reference/performance.md"):
        assert page in names
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


def test_the_readme_names_the_test_command_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    assert "test" in makefile_targets()
    assert ("README.md", "make test") in commands()


@pytest.mark.parametrize("page,line", commands(), ids=lambda v: v if "/" not in str(v) or len(str(v)) < 40 else None)
def test_every_command_parses(page, line):
    words = shlex.split(line)
    args = workbook_args(words, makefile_targets())
    if args is None:
        return
    args = [a for a in args if a.split("=")[0] not in PENDING_FLAGS]
    parser = build_parser()
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exit:
        pytest.fail(f"{page}: `{line}` does not parse (exit {exit.code})")
    for pair in getattr(parsed, "set", None) or []:
        key, _, value = pair.partition("=")
        assert unknown_key(key, yaml.safe_load(value)) is None, f"{page}: `{line}`: {unknown_key(key)}"


def yaml_keys(page: Path) -> list[str]:
    """Dotted config keys a page's YAML blocks name: a sweep file's grid, set and variants, or a
    config's sections."""
    keys = []
    for body in fenced(page, {"yaml", "yml"}):
        raw = yaml.safe_load(body) or {}
        if "base" in raw or "grid" in raw or "variants" in raw:
            keys += list(raw.get("grid") or {}) + list(raw.get("set") or {})
            for overrides in (raw.get("variants") or {}).values():
                keys += list(overrides or {})
        else:
            keys += [k for k in config_lib.flatten(raw) if k.split(".")[0] in SECTIONS]
    return keys


def prose_keys(page: Path) -> list[str]:
    """Dotted config keys named in inline code, e.g. `train.device` or `train.ema_halflife: 0.05`."""
    text = FENCE.sub("", page.read_text())
    found = re.findall(rf"`(?:--set )?((?:{'|'.join(SECTIONS)})\.\w+)\b", text)
    return [key for key in found if key.rsplit(".", 1)[1] not in FILE_SUFFIXES]  # train.log is a file


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_config_key_exists(page):
    if page.name == "config.md":  # generated from the schema itself
        return
    bad = {key: unknown_key(key) for key in [*yaml_keys(page), *prose_keys(page)] if unknown_key(key)}
    assert not bad, f"{rel(page)}: {bad}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#+\s+(.*)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page):
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img[^>]*\ssrc="([^"]+)"', text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            if rel(resolved) not in PENDING_PAGES:
                broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{rel(page)}: {broken}"


def test_the_generated_reference_is_current():
    env = {k: v for k, v in os.environ.items() if k != "GAN_WORKBOOK_FAMILIES"}  # the shipped families only
    done = subprocess.run([sys.executable, str(REPO / "docs" / "make_reference.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
