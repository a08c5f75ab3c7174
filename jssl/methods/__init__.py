"""Self-supervised methods: each a module with `create(config) -> Method`."""

from jssl.methods import simclr
from jssl.methods.base import LossOutput
from jssl.methods.base import Method

METHODS = {
    'simclr': simclr.create,
}

__all__ = ['METHODS', 'LossOutput', 'Method']
