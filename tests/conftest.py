import os
from pathlib import Path

import pytest

import pyconvnet

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # CI tests the installed wheel: importing the source tree instead would
    # hide a packaging mistake (a module missing from the wheel, say).
    if os.environ.get("PYCONVNET_REQUIRE_INSTALLED"):
        where = Path(pyconvnet.__file__).resolve()
        if REPO in where.parents:
            raise pytest.UsageError(
                f"pyconvnet was imported from the source tree ({where}), "
                "not from the installed package"
            )
