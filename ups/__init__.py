"""UPS: train, score and gate neural PDE surrogates against a stored champion."""

__version__ = "0.1.0"
