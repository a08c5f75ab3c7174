"""Pure loss functions of arrays (see each docstring for shapes and the paper)."""

from jssl.losses.blockwise import (
    info_nce_blockwise,
    nt_xent_blockwise,
)
from jssl.losses.clustering import (
    dino,
    dino_center_update,
    sinkhorn,
    swav,
    swav_multicrop,
)
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
from jssl.losses.noncontrastive import (
    barlow_twins,
    barlow_twins_terms,
    byol,
    negative_cosine,
    vicreg,
    vicreg_terms,
)

__all__ = [
    'barlow_twins',
    'barlow_twins_terms',
    'batch_info_nce',
    'byol',
    'dino',
    'dino_center_update',
    'info_nce',
    'info_nce_blockwise',
    'l2_normalize',
    'margin_contrastive',
    'nce',
    'negative_cosine',
    'nt_xent',
    'nt_xent_blockwise',
    'sinkhorn',
    'supcon',
    'swav',
    'swav_multicrop',
    'triplet',
    'vicreg',
    'vicreg_terms',
]
