"""Self-supervised methods: each a module with `create(config) -> Method`."""

from jssl.methods import amdim
from jssl.methods import autoencoder
from jssl.methods import barlow_twins
from jssl.methods import bert
from jssl.methods import byol
from jssl.methods import clusterfit
from jssl.methods import cmc
from jssl.methods import colorization
from jssl.methods import cpc
from jssl.methods import deepcluster
from jssl.methods import dgi
from jssl.methods import dim
from jssl.methods import dino
from jssl.methods import flow
from jssl.methods import gae
from jssl.methods import gan
from jssl.methods import instdisc
from jssl.methods import jigsaw
from jssl.methods import local_aggregation
from jssl.methods import made
from jssl.methods import mae
from jssl.methods import meanshift
from jssl.methods import moco
from jssl.methods import moco_v3
from jssl.methods import nnclr
from jssl.methods import pirl
from jssl.methods import pixelcnn
from jssl.methods import relative_position
from jssl.methods import rotation
from jssl.methods import simclr
from jssl.methods import simsiam
from jssl.methods import supcon
from jssl.methods import swav
from jssl.methods import triplet
from jssl.methods import vae
from jssl.methods import vicreg
from jssl.methods import vqvae
from jssl.methods import vqvae_prior
from jssl.methods.base import Batch
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

METHODS = {
    'amdim': amdim.create,
    'ae': autoencoder.create_ae,
    'barlow_twins': barlow_twins.create,
    'bert': bert.create,
    'byol': byol.create,
    'clusterfit': clusterfit.create,
    'cmc': cmc.create,
    'colorization': colorization.create,
    'cpc': cpc.create,
    'dae': autoencoder.create_dae,
    'deepcluster': deepcluster.create,
    'dgi': dgi.create,
    'dim': dim.create,
    'dino': dino.create,
    'flow': flow.create,
    'gae': gae.create,
    'gan': gan.create,
    'instdisc': instdisc.create,
    'jigsaw': jigsaw.create,
    'local_aggregation': local_aggregation.create,
    'made': made.create,
    'mae': mae.create,
    'meanshift': meanshift.create,
    'moco': moco.create,
    'moco_v3': moco_v3.create,
    'nnclr': nnclr.create,
    'pirl': pirl.create,
    'pixelcnn': pixelcnn.create,
    'relative_position': relative_position.create,
    'rotation': rotation.create,
    'simclr': simclr.create,
    'simsiam': simsiam.create,
    'supcon': supcon.create,
    'swav': swav.create,
    'triplet': triplet.create,
    'vae': vae.create,
    'vicreg': vicreg.create,
    'vqvae': vqvae.create,
    'vqvae_prior': vqvae_prior.create,
}

# The modalities of the data each method trains on, the first its default; every method not
# listed trains on images.
MODALITIES = {
    'bert': ('text',),
    'cpc': ('series', 'image'),
    'dgi': ('graph',),
    'gae': ('graph',),
}


def modalities(name: str) -> tuple[str, ...]:
  """The modalities ('image', 'text', 'graph', 'series') the method `name` trains on."""
  return MODALITIES.get(name, ('image',))


def modality(name: str) -> str:
  """The first (default) modality of `modalities(name)`."""
  return modalities(name)[0]


__all__ = ['METHODS', 'MODALITIES', 'modalities', 'modality', 'Batch', 'LossOutput', 'Method', 'TrainInfo']
