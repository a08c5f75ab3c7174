"""Pure loss functions of arrays (see each docstring for shapes and the paper)."""

from jssl.losses.contrastive import (
    batch_info_nce,
    info_nce,
    l2_normalize,
    margin_contrastive,
    nce,
    nt_xent,
    supcon,
    triplet,
)

__all__ = [
    'batch_info_nce',
    'info_nce',
    'l2_normalize',
    'margin_contrastive',
    'nce',
    'nt_xent',
    'supcon',
    'triplet',
]
