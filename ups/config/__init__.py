"""Config schema and loader: one validated ``UPSConfig`` tree per run (see docs/config.md)."""

from ups.config.loader import config_hash, load_config
from ups.config.schema import UPSConfig

__all__ = ["UPSConfig", "config_hash", "load_config"]
