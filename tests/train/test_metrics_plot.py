"""metrics.png: drawn from a metrics.jsonl with and without collapse diagnostics."""

import json

import pytest
from PIL import Image

from jssl.train.metrics import plot_metrics


@pytest.mark.parametrize('with_diagnostics', [True, False])
def test_plot_metrics_draws_every_panel(tmp_path, with_diagnostics):
  path = tmp_path / 'metrics.jsonl'
  with open(path, 'w') as f:
    f.write(json.dumps({'step': 0, 'random_init': True, 'knn_top1': 0.5}) + '\n')
    for step in range(1, 6):
      record = {'step': step, 'loss': 1.0 / step}
      if with_diagnostics:
        record.update(rankme=10.0 - step, rankme_features=20.0, output_std=0.1 / step)
      f.write(json.dumps(record) + '\n')
    f.write(json.dumps({'step': 5, 'knn_top1': 0.9, 'linear_top1': 0.95}) + '\n')
  plot_metrics(str(path), str(tmp_path / 'metrics.png'))
  with Image.open(tmp_path / 'metrics.png') as image:
    assert image.size == (1600, 400)
