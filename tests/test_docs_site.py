"""The docs site's hooks (scripts/mkdocs_hooks.py) without a build: the API reference finds every module
the wheel ships, the README sections the home page includes exist, and links are pointed at the site as
GitHub reads them.  `make docs` builds the site itself (strict, tutorials executed)."""

import importlib.util

import pytest

from .helpers import ROOT

pytest.importorskip("mkdocs")
pytest.importorskip("griffe")


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_covers_every_package_the_wheel_ships(hooks) -> None:
    spec = importlib.util.spec_from_file_location("setup_py", ROOT / "setup.py")
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)
    public = {p for p in setup_py.packages() if not any(part.startswith("_") for part in p.split("."))}
    files = hooks.module_files()
    assert public == {m for m, path in files.items() if path.name == "__init__.py"}
    assert {"ember_neuro.mappers.network", "ember_neuro.processes.host_bridge", "ember_neuro.export.inrc",
            "ember_neuro.kinds.attention.module", "ember_neuro.map"} <= set(files)
    assert not any(part.startswith("_") for m in files for part in m.split("."))  # no __main__, no _private
    pages = [hooks.api_page(m, files) for m in files]
    assert len(set(pages)) == len(pages)
    assert hooks.api_page("ember_neuro.mappers", files) == "api/ember_neuro/mappers/index.md"


def test_the_readme_sections_the_home_page_includes(hooks) -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    names = [m[2] for m in hooks.INCLUDE.finditer(index)]
    assert names == ["intro", "commands"]
    assert "make demo" in hooks.section(ROOT / "README.md", "intro")
    assert hooks.section(ROOT / "README.md", "commands").startswith("| command | what it does |")
    with pytest.raises(hooks.PluginError, match="no section 'nope'"):
        hooks.section(ROOT / "README.md", "nope")


def test_links_point_at_the_site(hooks) -> None:
    files = hooks.module_files()
    hooks._sources["readme.md"] = ROOT / "README.md"
    readme, docs = ROOT / "README.md", ROOT / "docs"

    def link(target: str, source=readme, page="index.md") -> str:
        return hooks.rewrite_links(f"see [x]({target}).", source, page, files)

    # README text included in a page: docs/ paths and the README's own anchors
    assert link("docs/mapping.md#4-loihi-2-fixed-point") == "see [x](mapping.md#4-loihi-2-fixed-point)."
    assert link("docs/mapping.md", page="api/index.md") == "see [x](../mapping.md)."
    assert link("#timings") == "see [x](readme.md#timings)."
    assert link("#timings", page="readme.md") == "see [x](#timings)."  # the README page itself
    # a page of docs/: inside docs/ unchanged; the README, a module's source, a script
    assert link("figures/eval_vs_T.png", docs / "mapping.md", "mapping.md") == (
        "see [x](figures/eval_vs_T.png).")
    assert link("../README.md#tests", docs / "keywords.md", "keywords.md") == "see [x](readme.md#tests)."
    assert link("../mappers/loihi.py", docs / "mapping.md", "mapping.md") == (
        "see [x](api/ember_neuro/mappers/loihi.md).")
    assert link("../scripts/check_bundle.sh", docs / "mapping.md", "mapping.md") == (
        "see x (`scripts/check_bundle.sh`).")
    # left for strict mode to report; URLs and code blocks untouched
    assert link("../nope.md", docs / "mapping.md", "mapping.md") == "see [x](../nope.md)."
    assert link("https://example.org/a.md") == "see [x](https://example.org/a.md)."
    code = "```\n[x](docs/mapping.md)\n```\n"
    assert hooks.rewrite_links(code, readme, "index.md", files) == code


def test_a_pipe_escaped_in_a_table_code_span_is_a_pipe_on_the_site(hooks) -> None:
    text = "| `--gate-init identity\\|spread` | \\|p\\| |\n\n`a\\|b` outside a table\n"
    site = "| `--gate-init identity|spread` | \\|p\\| |\n\n`a\\|b` outside a table\n"
    assert hooks.table_code_pipes(text) == site
