"""Print the minimum versions pyproject.toml declares, as pip constraints.

``numpy>=1.23.5`` becomes ``numpy==1.23.5``: CI installs exactly the oldest
releases the package claims to support and runs the tests against them, so
the declared minimums stay true.
"""
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

project = tomllib.loads(
    (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
)["project"]
pins = []
for requirement in project["dependencies"]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*",
                         requirement)
    if match is None:
        sys.exit(f"no minimum version in the requirement {requirement!r}")
    pins.append(f"{match[1]}=={match[2]}")
print("\n".join(pins))
