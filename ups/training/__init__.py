"""Staged, config-driven training: optimisation, checkpoints, guards."""
