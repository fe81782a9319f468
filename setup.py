"""Package discovery for setuptools (everything else is in pyproject.toml).

Every package folder under ember_neuro/ is found, so a new gate kind's folder (ember_neuro/kinds/<kind>/)
ships in the wheel without an edit here; the generic top-level folders mappers/, processes/ and export/
are served inside the ember_neuro namespace (pyproject's package-dir), with their subpackages.
"""

from setuptools import find_packages, setup

SERVED = ("mappers", "processes", "export")  # folder -> package ember_neuro.<folder>


def packages() -> list[str]:
    found = find_packages(include=["ember_neuro", "ember_neuro.*"])
    for folder in SERVED:
        found += [f"ember_neuro.{folder}", *(f"ember_neuro.{folder}.{p}" for p in find_packages(folder))]
    return sorted(found)


if __name__ == "__main__":
    setup(packages=packages())
