"""pyconvnet: convolutional networks as a scikit-learn classifier."""
__version__ = "0.1.0"

from . import ops  # noqa: E402
from ._classifier import ConvNetClassifier  # noqa: E402
from ._persist import load, save  # noqa: E402
from ._threads import openmp_enabled  # noqa: E402

__all__ = ["ConvNetClassifier", "ops", "save", "load", "openmp_enabled", "__version__"]
