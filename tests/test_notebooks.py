"""Every notebook's code cells run, in order, in one namespace (so notebooks never rot)."""

import glob
import json
import os

import matplotlib
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, 'notebooks', '*.ipynb')))


@pytest.mark.parametrize('path', NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, monkeypatch):
  matplotlib.use('Agg')
  monkeypatch.chdir(REPO)
  with open(path) as f:
    notebook = json.load(f)
  namespace = {'__name__': '__notebook__'}
  for index, cell in enumerate(notebook['cells']):
    if cell['cell_type'] == 'code':
      source = ''.join(cell['source'])
      exec(compile(source, f'{os.path.basename(path)}[cell {index}]', 'exec'), namespace)  # pylint: disable=exec-used
  if 'results' in namespace:  # the quickstart's evaluation
    assert 0.0 <= namespace['results']['knn_top1'] <= 1.0
    assert 0.0 <= namespace['results']['linear_top1'] <= 1.0


def test_there_is_a_notebook():
  assert NOTEBOOKS
