"""The docs site's build: mkdocs.yml's hooks, and the griffe extension its API reference loads.

- **The API reference** is generated: one page per public module (no ``_`` in its dotted name) of
  every package pyproject's ``package-dir`` serves, found on disk at each build, so a new module
  gets its page and its nav entry without an edit.  ``api/index.md`` lists them with the first line
  of each docstring; the nav's ``API reference: api/index.md`` entry becomes that section.
- **A new guide is on the site**: a docs/*.md the nav does not list joins the end of its "Guides"
  section under its own title (strict mode still fails on any other page left out of the nav).
- **Griffe sees the package as installed**: ``mappers/``, ``processes/`` and ``export/`` are
  ``ember_neuro.mappers``, ``ember_neuro.processes`` and ``ember_neuro.export`` (pyproject's
  ``package-dir``), which static analysis of ``ember_neuro/`` cannot find; :class:`ServedFolders`
  visits each served folder into the ``ember_neuro`` package (no import, no side effects).
- **README.md on the site**: the whole README is the page ``readme.md``, and a page writes
  ``--8<-- "README.md:NAME"`` on a line of its own to include the README's lines between
  ``<!-- --8<-- [start:NAME] -->`` and ``<!-- --8<-- [end:NAME] -->`` (pymdownx.snippets' section
  syntax).  A missing file or section fails the build.
- **Links keep their repository meaning**: a link is resolved from the file its text came from (a
  page of docs/, or README.md for included text), as GitHub reads it, then pointed at the site's
  copy: a file of docs/ at its page, README.md at ``readme.md``, a module's source file at its API
  page, another file of the repository (a script, the Makefile) becomes its path in code (the site
  has no copy of it).  A link to a file that does not exist is left alone, so strict mode fails on it.
  A tutorial's links (mkdocs-jupyter's HTML, which mkdocs does not check) are resolved the same way
  and pointed at their pages; one the site does not serve is a warning, so strict mode fails on it.
  In a table row, a ``\\|`` inside a code span is a pipe, as GitHub shows it.
- **The tutorials' kernel** is this Python: mkdocs-jupyter executes them with the kernel named in
  mkdocs.yml (``ember-neuro-docs``), whose kernelspec, written here under build/, runs
  ``sys.executable`` (the .venv's Python that runs mkdocs), whatever kernels the machine has.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import posixpath
import re
import sys
from pathlib import Path

import griffe
import tomllib
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
KERNEL = "ember-neuro-docs"
KERNEL_DIR = ROOT / "build" / "docs-jupyter"
API_NAV = {"API reference": "api/index.md"}  # the nav entry the generated section replaces

INCLUDE = re.compile(r'^--8<-- "([^":]+):([\w-]+)"[ \t]*$', re.M)
MARKER = re.compile(r"^<!-- --8<-- \[(start|end):([\w-]+)\] -->[ \t]*\n?", re.M)
LINK = re.compile(r"(!?\[[^\]\n]*\]\()([^()\s]+)(\))")
FENCE = re.compile(r"^(```|~~~)", re.M)
TABLE_CODE = re.compile(r"`[^`\n]*`")
ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):`~?([^`]+)`")

HTML_LINK = re.compile(r'(<(?:a|img)\b[^>]*?\b(?:href|src)=")([^"]+)(")')
log = logging.getLogger("mkdocs.hooks.ember_docs")  # under "mkdocs": strict mode counts its warnings

_sources: dict[str, Path] = {}  # src_uri of a generated page -> the repository file its text comes from


# -- the package, as pyproject serves it ----------------------------------------------------------


def served() -> dict[str, Path]:
    """Package name -> its folder, as pyproject's ``[tool.setuptools] package-dir`` serves them."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        folders = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in folders.items()}


def module_files() -> dict[str, Path]:
    """Every public module's dotted name -> its source file (a package: its ``__init__.py``).

    A module is public when no part of its dotted name starts with ``_``; a folder without
    ``__init__.py`` is not a package (export/bundle/ holds the bundle's scripts) and is skipped.
    """
    found: dict[str, Path] = {}
    for package, folder in served().items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if not all((folder.joinpath(*parts[:k]) / "__init__.py").is_file() for k in range(len(parts))):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not any(part.startswith("_") for part in parts):
                found[".".join((package, *parts))] = path
    return dict(sorted(found.items(), key=lambda item: item[0].split(".")))


def api_page(module: str, files: dict[str, Path]) -> str:
    """The docs-relative path of a module's API page (a package's page is its folder's index.md)."""
    path = "api/" + module.replace(".", "/")
    return f"{path}/index.md" if files[module].name == "__init__.py" else f"{path}.md"


def summary(path: Path) -> str:
    """The first line of a module's docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    return ROLE.sub(r"`\1`", doc.strip().splitlines()[0]) if doc else ""


def api_nav(files: dict[str, Path]) -> list:
    """The API section: the overview, then one section per subpackage of ember_neuro (its own page
    first, which material's navigation.indexes shows as the section), the top-level modules first."""
    groups: dict[str, list] = {}
    for module in files:
        parts = module.split(".")
        group = ".".join(parts[:2]) if len(parts) > 2 or files[module].name == "__init__.py" else parts[0]
        title = module if module == group else module[len(group) + 1 :]
        groups.setdefault(group, []).append({title: api_page(module, files)})
    return ["api/index.md", *({group: entries} for group, entries in groups.items())]


def api_index(files: dict[str, Path]) -> str:
    rows = "\n".join(
        f"| [`{m}`]({posixpath.relpath(api_page(m, files), 'api')}) | {summary(p).replace('|', '&#124;')} |"
        for m, p in files.items()
    )
    return (
        "# API reference\n\n"
        "Generated from the docstrings (mkdocstrings), one page per public module of the package; "
        "`mappers/`, `processes/` and `export/` are served as `ember_neuro.mappers`, "
        "`ember_neuro.processes` and `ember_neuro.export`.\n\n"
        f"| module | what it is |\n|---|---|\n{rows}\n"
    )


class ServedFolders(griffe.Extension):
    """Visits pyproject's served folders into the ``ember_neuro`` package (static analysis), so griffe
    knows ``ember_neuro.mappers`` etc. as an installed wheel has them; and writes the docstrings'
    reStructuredText roles (``:class:`X```) as the code spans Markdown renders."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        for name, folder in served().items():
            parent, _, child = name.rpartition(".")
            if parent == pkg.name:
                module = _visit_folder(child, folder, pkg, loader)
                loader.expand_exports(module)
                loader.expand_wildcards(module, external=False)
        _plain_roles(pkg)


def _visit_folder(name: str, folder: Path, parent: griffe.Module,
                  loader: griffe.GriffeLoader) -> griffe.Module:
    module = _visit_file(name, folder / "__init__.py", parent, loader)
    for path in sorted(folder.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            _visit_folder(path.name, path, module, loader)
        elif path.suffix == ".py" and path.name != "__init__.py":
            _visit_file(path.stem, path, module, loader)
    return module


def _visit_file(name: str, path: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> griffe.Module:
    code = path.read_text(encoding="utf-8-sig")
    loader.lines_collection[path] = code.splitlines(keepends=False)
    module = griffe.visit(
        name, path, code, parent=parent, extensions=loader.extensions,
        docstring_parser=loader.docstring_parser, docstring_options=loader.docstring_options,
        lines_collection=loader.lines_collection, modules_collection=loader.modules_collection,
    )
    parent.set_member(name, module)
    return module


def _plain_roles(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            _plain_roles(member)


# -- links and README includes --------------------------------------------------------------------


def site_uri(path: Path, files: dict[str, Path]) -> str | None:
    """The docs-relative page or file serving a repository file, or None where the site has none."""
    if path.is_relative_to(DOCS):
        return path.relative_to(DOCS).as_posix()
    if path == ROOT / "README.md":
        return "readme.md"
    module = next((m for m, p in files.items() if p == path), None)
    return api_page(module, files) if module else None


def rewrite_links(text: str, source: Path, page_uri: str, files: dict[str, Path]) -> str:
    """Points ``text``'s relative links (written from the repository file ``source``) at the site,
    as seen from the page ``page_uri``; fenced code blocks are left alone."""
    page_source = _sources.get(page_uri, DOCS / page_uri)
    page_dir = posixpath.dirname(page_uri) or "."

    def one(match: re.Match) -> str:
        target = match[2]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            return match[0]
        path, hash_, anchor = target.partition("#")
        resolved = (source.parent / path).resolve() if path else source
        if resolved == page_source:
            return match[0]
        uri = site_uri(resolved, files)
        if uri is not None:
            return f"{match[1]}{posixpath.relpath(uri, page_dir)}{hash_}{anchor}{match[3]}"
        if resolved.is_relative_to(ROOT) and resolved.exists():  # a repository file the site does not copy
            label = match[1][1:-2] if not match[1].startswith("!") else match[1][2:-2]
            shown = resolved.relative_to(ROOT).as_posix()
            return f"`{shown}`" if label.strip("`") == shown else f"{label} (`{shown}`)"
        return match[0]  # a broken link: mkdocs reports it (strict: the build fails)

    return _outside_fences(text, lambda piece: LINK.sub(one, piece))


def table_code_pipes(text: str) -> str:
    """GitHub reads ``\\|`` in a table row as ``|`` even inside a code span; Python-Markdown keeps
    the backslash there (and splits no cell at a pipe inside backticks), so the site gets the pipe."""
    def row(line: str) -> str:
        return TABLE_CODE.sub(lambda m: m[0].replace("\\|", "|"), line) if line.startswith("|") else line

    return _outside_fences(text, lambda piece: "\n".join(row(line) for line in piece.split("\n")))


def _outside_fences(text: str, change) -> str:
    """``change`` applied to the parts of a Markdown text outside fenced code blocks."""
    out, inside = [], False
    for piece in FENCE.split(text):  # the split keeps the fences: [text, fence, code, fence, text, ...]
        if piece in ("```", "~~~"):
            inside = not inside
            out.append(piece)
        else:
            out.append(piece if inside else change(piece))
    return "".join(out)


def section(path: Path, name: str) -> str:
    """The lines of ``path`` between its ``[start:name]`` and ``[end:name]`` markers."""
    if not path.is_file():
        raise PluginError(f"--8<-- include: no file {path.relative_to(ROOT)}")
    text = path.read_text(encoding="utf-8")
    marks = {(m[1], m[2]): m for m in MARKER.finditer(text)}
    start, end = marks.get(("start", name)), marks.get(("end", name))
    if start is None or end is None or end.start() < start.end():
        raise PluginError(f"--8<-- include: {path.relative_to(ROOT)} has no section {name!r} "
                          f"(<!-- --8<-- [start:{name}] --> ... <!-- --8<-- [end:{name}] -->)")
    return MARKER.sub("", text[start.end() : end.start()]).strip("\n")


# -- the hooks ------------------------------------------------------------------------------------


def _nav_uris(nav) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    items = nav.values() if isinstance(nav, dict) else nav
    return set().union(*(_nav_uris(item) for item in items))


def on_config(config):
    files = module_files()
    nav = [{"API reference": api_nav(files)} if item == API_NAV else item for item in config.nav or []]
    # A guide (docs/*.md) the nav does not list yet joins the end of "Guides" under its own title,
    # so a new page is on the site without an edit here; reorder it in mkdocs.yml at leisure.
    listed = _nav_uris(nav)
    guides = next((item["Guides"] for item in nav if isinstance(item, dict) and "Guides" in item), None)
    if guides is not None:
        guides += sorted(p.name for p in DOCS.glob("*.md") if p.name not in listed and p.name != "index.md")
    config.nav = nav
    # The tutorials' kernel: this Python, named in mkdocs.yml (plugins: mkdocs-jupyter: kernel_name).
    spec = KERNEL_DIR / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": f"ember-neuro docs ({sys.executable})", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1) + "\n", encoding="utf-8")
    paths = os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
    if str(KERNEL_DIR) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(KERNEL_DIR), *paths) if p)
    return config


def on_files(files: Files, config) -> Files:
    modules = module_files()
    generated = {"readme.md": MARKER.sub("", (ROOT / "README.md").read_text(encoding="utf-8")),
                 "api/index.md": api_index(modules)}
    for module in modules:
        generated[api_page(module, modules)] = f"# `{module}`\n\n::: {module}\n"
    for uri, content in generated.items():
        if files.get_file_from_path(uri) is not None:
            raise PluginError(f"docs/{uri} exists: the docs build generates that page")
        files.append(File.generated(config, uri, content=content))
    _sources["readme.md"] = ROOT / "README.md"
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    uri = page.file.src_uri
    if not uri.endswith(".md"):  # a tutorial: mkdocs-jupyter renders it (on_page_content checks its links)
        return markdown
    modules = module_files()
    source = _sources.get(uri, DOCS / uri)

    def include(match: re.Match) -> str:
        path = (ROOT / match[1]).resolve()
        return rewrite_links(section(path, match[2]), path, uri, modules)

    return table_code_pipes(INCLUDE.sub(include, rewrite_links(markdown, source, uri, modules)))


def on_page_content(html: str, page, config, files: Files) -> str:
    """A tutorial's links: mkdocs-jupyter's HTML bypasses mkdocs' link checks, and its relative links
    would be read from the page's URL, not from the file.  Each one, written from the tutorial's file
    as for a page of docs/, is pointed at its page here; one the site does not serve fails the build."""
    uri = page.file.src_uri
    if not uri.endswith(".py"):
        return html
    modules = module_files()

    def one(match: re.Match) -> str:
        target = match[2]
        if target.startswith(("#", "/")) or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            return match[0]
        path, hash_, anchor = target.partition("#")
        resolved = (DOCS / uri).parent.joinpath(path).resolve()
        site = site_uri(resolved, modules)
        file = files.get_file_from_path(site) if site is not None else None
        if file is None:
            log.warning("Tutorial '%s' links to '%s', which the site does not serve%s", uri, target,
                        " (a repository file: write its path as code)" if resolved.exists() else "")
            return match[0]
        return f"{match[1]}{file.url_relative_to(page.file)}{hash_}{anchor}{match[3]}"

    return HTML_LINK.sub(one, html)
