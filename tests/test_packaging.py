"""The wheel carries every subpackage: pyproject.toml lists packages by hand, and a
subpackage missing from that list imports from the source tree but not once installed
(CI tests the installed copy)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listed_packages() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M).group(1)
    return set(re.findall(r'"([\w.]+)"', block))


def source_packages() -> set[str]:
    return {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "helixsim").rglob("__init__.py")
            if "__pycache__" not in p.parts}


def test_every_subpackage_is_listed_in_pyproject():
    missing = source_packages() - listed_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_the_listing_names_no_package_that_is_gone():
    listed = {name for name in listed_packages() if not name.startswith("helixsim._data")}
    assert listed <= source_packages()
