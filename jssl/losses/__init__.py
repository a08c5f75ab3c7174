"""Pure loss functions of arrays (see each docstring for shapes and the paper)."""

from jssl.losses.adversarial import (
    GAN_LOSSES,
    cycle_consistency,
    gan_discriminator,
    gan_generator,
    r1_penalty,
)
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
from jssl.losses.generative import (
    bernoulli_log_likelihood,
    bernoulli_nll,
    discretized_nll,
    gaussian_kl,
    gaussian_log_density,
    mae_loss,
    vq_codebook_losses,
    VQResult,
)
from jssl.losses.graph import dgi
from jssl.losses.graph import link_reconstruction
from jssl.losses.language import mlm_loss
from jssl.losses.predictive import cpc, dim_local_global
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
    'bernoulli_log_likelihood',
    'bernoulli_nll',
    'discretized_nll',
    'batch_info_nce',
    'byol',
    'cpc',
    'dgi',
    'link_reconstruction',
    'dim_local_global',
    'dino',
    'dino_center_update',
    'GAN_LOSSES',
    'cycle_consistency',
    'gan_discriminator',
    'gan_generator',
    'r1_penalty',
    'gaussian_kl',
    'gaussian_log_density',
    'info_nce',
    'info_nce_blockwise',
    'l2_normalize',
    'mae_loss',
    'margin_contrastive',
    'mlm_loss',
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
    'vq_codebook_losses',
    'VQResult',
]
