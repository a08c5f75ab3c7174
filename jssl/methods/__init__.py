"""Self-supervised methods: each a module with `create(config) -> Method`."""

from jssl.methods import cmc
from jssl.methods import instdisc
from jssl.methods import meanshift
from jssl.methods import moco
from jssl.methods import moco_v3
from jssl.methods import nnclr
from jssl.methods import pirl
from jssl.methods import simclr
from jssl.methods import supcon
from jssl.methods import triplet
from jssl.methods.base import Batch
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

METHODS = {
    'cmc': cmc.create,
    'instdisc': instdisc.create,
    'meanshift': meanshift.create,
    'moco': moco.create,
    'moco_v3': moco_v3.create,
    'nnclr': nnclr.create,
    'pirl': pirl.create,
    'simclr': simclr.create,
    'supcon': supcon.create,
    'triplet': triplet.create,
}

__all__ = ['METHODS', 'Batch', 'LossOutput', 'Method', 'TrainInfo']
