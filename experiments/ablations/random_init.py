"""The reference row of the ablations: the same evaluation of untrained encoders.

    python experiments/ablations/random_init.py [--seeds=3]

Builds each ablated method's run at the ablations' budget (digits at 8x8, 16-32-64 CNN), does
not train, and evaluates the randomly initialised encoder of seeds 0..S-1 exactly as the
sweeps' final evaluation does; writes experiments/ablations/random_init.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from jssl import sweep  # pylint: disable=g-import-not-at-top,wrong-import-position
from jssl.config import load_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from jssl.train.loop import Run  # pylint: disable=g-import-not-at-top,wrong-import-position

METHODS = ('simclr', 'moco', 'byol', 'swav', 'dino')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--out', default=os.path.join(REPO, 'experiments', 'ablations',
                                                    'random_init.md'))
  args = parser.parse_args()
  rows = []
  for method in METHODS:
    for seed in range(args.seeds):
      config = load_config(os.path.join(REPO, 'experiments', 'configs', f'{method}.py'))
      config.dataset.image_size = 8
      config.model.widths = (16, 32, 64)
      config.augment.local_crop_size = 4 if config.augment.num_local_crops else None
      config.seed = seed
      with tempfile.TemporaryDirectory() as workdir:
        results = Run(config, workdir).evaluate()
      print(method, seed, results, flush=True)
      rows.append({'point': method, 'method': method, 'seed': seed, **results})
  metrics = ['knn_top1', 'linear_top1']
  table = sweep.markdown_table(sweep.summarize(rows, metrics), ['method'], metrics)
  with open(args.out, 'w') as f:
    f.write('# Random-init reference of the ablations\n\nThe encoder of each method\'s run at '
            'the ablations\' budget (digits 8x8, 16-32-64 CNN), untrained, evaluated like the '
            'sweeps\' final evaluation (kNN and linear probe on the test split), seeds '
            f'0-{args.seeds - 1}.\nCommand: `python experiments/ablations/random_init.py`\n\n')
    f.write(table)
  print(table)


if __name__ == '__main__':
  main()
