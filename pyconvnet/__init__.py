"""pyconvnet: convolutional networks as scikit-learn estimators."""
__version__ = "0.4.0"


def _unbuilt_source_tree():
    """The folder of this package when it is a source tree whose compiled
    modules were never built (e.g. a clone, on Python's path first because it
    is the working directory, next to a non-editable install); else None."""
    from importlib.machinery import EXTENSION_SUFFIXES
    from pathlib import Path

    here = Path(__file__).resolve().parent
    kernels = here / "_kernels"
    if not (kernels / "conv_im2col.pxi").exists():
        return None
    built = any((kernels / f"conv_im2col_generic{suffix}").exists()
                for suffix in EXTENSION_SUFFIXES)
    return None if built else here


try:
    from . import ops  # noqa: E402
except ImportError as exc:
    # Without this, Python reports the missing extension as a "circular
    # import" of a partially initialised module, which misleads.
    _folder = _unbuilt_source_tree()
    if _folder is None:
        raise
    raise ImportError(
        f"pyconvnet was imported from its source folder {_folder}, whose "
        "compiled modules are not built. Build them in place with "
        "`pip install -e .` in that repository, or run Python from another "
        "folder to use an installed pyconvnet."
    ) from exc
from ._classifier import ConvNetClassifier  # noqa: E402
from ._regressor import ConvNetRegressor  # noqa: E402
from ._persist import load, save  # noqa: E402
from ._threads import openmp_enabled  # noqa: E402

__all__ = ["ConvNetClassifier", "ConvNetRegressor", "ops", "save", "load", "openmp_enabled", "__version__"]
