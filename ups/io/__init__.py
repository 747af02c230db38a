"""Latent I/O: encoders from grids or point clouds to latent tokens, and the any-point decoder back to fields.

Follows UPT (Alkin et al. 2024): a fixed number of latent tokens, an encoder that pools any discretisation into them,
and a decoder queried at arbitrary coordinates, so one latent state can be decoded on any grid or point set.
"""

from ups.io.decoder_anypoint import AnyPointDecoder
from ups.io.enc_grid import GridEncoder
from ups.io.enc_upt import UPTEncoder

__all__ = ["AnyPointDecoder", "GridEncoder", "UPTEncoder"]
