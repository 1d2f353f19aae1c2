"""pyconvnet: convolutional networks as a scikit-learn classifier."""
from . import ops
from ._classifier import ConvNetClassifier
from ._threads import openmp_enabled

__version__ = "0.1.0"

__all__ = ["ConvNetClassifier", "ops", "openmp_enabled", "__version__"]
