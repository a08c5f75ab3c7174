"""Pure loss functions of arrays (see each docstring for shapes and the paper)."""

from jssl.losses.contrastive import l2_normalize
from jssl.losses.contrastive import nt_xent

__all__ = ['l2_normalize', 'nt_xent']
