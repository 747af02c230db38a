"""Transformer building blocks of the latent operator: norms, attention, conditioning, blocks, the PDE-Transformer.

The backbone follows PDE-Transformer (Holzschuh et al. 2025): pre-norm blocks with windowed, shifted self-attention
over the token sequence, optional attention across channel-separated token streams, AdaLN-Zero conditioning and a
U-shape of token down/up stages.
"""

from ups.core.pdet import PDETransformer

__all__ = ["PDETransformer"]
