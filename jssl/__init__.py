"""jssl: self-supervised learning in JAX."""

import os

# JAX's CPU LAPACK kernels (`eigvalsh` of the per-step RankMe diagnostics, DeepCluster's PCA)
# call SciPy's OpenBLAS, loaded at their first use. Its threads spin after each call and fight
# XLA's own thread pool for the cores: on 2 cores the Fashion-MNIST SimCLR step took 1.8 s
# instead of 0.7 s, and a 256 x 256 eigvalsh 16-160 ms instead of 5 ms
# (experiments/BENCHMARKS.md). Its matrices are small, so one thread loses nothing. An explicit
# OPENBLAS_NUM_THREADS is kept.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

__version__ = '0.1.0'


def load_encoder(workdir: str):
  """The trained encoder of the run in `workdir`: `encoder(inputs) -> [N, F]` features.

  See `jssl.encoder.load_encoder` (imported lazily, so `import jssl` stays light).
  """
  from jssl.encoder import load_encoder as load  # pylint: disable=g-import-not-at-top
  return load(workdir)
