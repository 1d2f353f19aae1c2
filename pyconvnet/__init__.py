"""pyconvnet: convolutional networks as a scikit-learn classifier."""
from . import ops
from ._threads import openmp_enabled

__version__ = "0.1.0"

__all__ = ["ops", "openmp_enabled", "__version__"]
