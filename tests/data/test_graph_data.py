"""Tests of jssl.data.graph: readers on small files written here in each real format, the
graph contract, the splits, and the real Debian data (graph-tool collection, WordNet)."""

import dataclasses
import gzip
import os
import pickle
import struct

import numpy as np
import pytest
from scipy import sparse

from jssl.data import graph as graph_lib
from jssl.data.base import Dataset, DatasetError, MissingDatasetError

# ------------------------------------------------------------------------------------------
# A .gt writer, written from graph-tool's description of the format ("The gt file format").

_TYPE_INDEX = {name: i for i, (name, _, _) in enumerate(graph_lib.GT_VALUE_TYPES)}
_SCALAR_FORMAT = {'bool': '?', 'int16_t': 'h', 'int32_t': 'i', 'int64_t': 'q', 'double': 'd'}


def _gt_bytes(num_nodes, adjacency, properties=(), *, directed=False, big_endian=False,
              comment='written by jssl tests', version=1, index_width=None):
  """A .gt file. adjacency: {node: [out-neighbours]}; properties: (key, name, type, values)
  with key 0 graph / 1 vertex / 2 edge and values a list (one value for a graph property)."""
  e = '>' if big_endian else '<'
  u64 = lambda v: struct.pack(e + 'Q', v)
  string = lambda s: u64(len(s)) + s

  def value(type_name, v):
    if type_name in _SCALAR_FORMAT:
      return struct.pack(e + _SCALAR_FORMAT[type_name], v)
    if type_name == 'string':
      return string(v.encode())
    if type_name == 'python::object':
      return string(v)
    if type_name == 'vector<string>':
      return u64(len(v)) + b''.join(string(s.encode()) for s in v)
    element = _SCALAR_FORMAT[type_name[len('vector<'):-1]]
    return u64(len(v)) + b''.join(struct.pack(e + element, x) for x in v)

  if index_width is None:
    index_width = 'B' if num_nodes < 2**8 else 'H' if num_nodes < 2**16 else 'I'
  out = graph_lib.GT_MAGIC + bytes([version, int(big_endian)]) + string(comment.encode())
  out += bytes([int(directed)]) + u64(num_nodes)
  for node in range(num_nodes):
    neighbours = adjacency.get(node, [])
    out += u64(len(neighbours)) + b''.join(struct.pack(e + index_width, u) for u in neighbours)
  out += u64(len(properties))
  for key, name, type_name, values in properties:
    out += bytes([key]) + string(name.encode()) + bytes([_TYPE_INDEX[type_name]])
    out += b''.join(value(type_name, v) for v in (values if key else [values]))
  return out


def _write(path, content: bytes, compress=None):
  path = os.fspath(path)
  if compress if compress is not None else path.endswith('.gz'):
    content = gzip.compress(content)
  with open(path, 'wb') as f:
    f.write(content)
  return path


# 5 nodes, 5 edges in file order (0,1) (0,2) (1,2) (3,3) (3,4); node 4 has no out-edges.
_ADJACENCY = {0: [1, 2], 1: [2], 3: [3, 4]}
_PROPERTIES = (
    (0, 'description', 'string', 'a small test graph ⛾'),
    (1, 'flag', 'bool', [True, False, True, True, False]),
    (1, 'small', 'int16_t', [-3, 0, 7, 1, 2]),
    (1, 'value', 'int32_t', [4, 3, 2, 1, 0]),
    (1, 'big', 'int64_t', [2**40, -1, 0, 5, 6]),
    (1, 'weight', 'double', [0.5, -1.25, 3.0, 0.0, 1e-3]),
    (1, 'label', 'string', ['a', 'bé', '', 'dd', 'e e']),
    (1, 'pos', 'vector<double>', [[1.0, 2.0], [], [3.5], [0.0, 0.0, 1.0], [-1.0]]),
    (1, 'ids', 'vector<int32_t>', [[1], [2, 3], [], [4], [5, 6, 7]]),
    (1, 'names', 'vector<string>', [['x'], [], ['y', 'zz'], [''], ['w']]),
    (2, 'edge_weight', 'double', [1.0, 2.0, 3.0, 4.0, 5.0]),
    (2, 'pickled', 'python::object', [b'\x80\x04K\x01.', b'', b'ab', b'c', b'd']),
)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('suffix', ['.gt', '.gt.gz'])
def test_read_gt_reads_the_adjacency_and_every_property_map(tmp_path, big_endian, suffix):
  path = _write(tmp_path / f'g{suffix}', _gt_bytes(5, _ADJACENCY, _PROPERTIES, directed=True,
                                                   big_endian=big_endian))
  gt = graph_lib.read_gt(path)
  assert gt.num_nodes == 5 and gt.directed
  assert gt.comment == 'written by jssl tests'
  np.testing.assert_array_equal(gt.sources, [0, 0, 1, 3, 3])
  np.testing.assert_array_equal(gt.targets, [1, 2, 2, 3, 4])
  assert gt.graph_properties == {'description': 'a small test graph ⛾'}
  for key, name, type_name, values in _PROPERTIES[1:]:
    read = (gt.vertex_properties if key == 1 else gt.edge_properties)[name]
    assert gt.property_types[('vertex' if key == 1 else 'edge', name)] == type_name
    if type_name in _SCALAR_FORMAT:
      assert isinstance(read, np.ndarray) and read.shape == (len(values),)
      assert read.dtype.isnative
      np.testing.assert_array_equal(read, values)
    elif type_name.startswith('vector<') and type_name != 'vector<string>':
      assert len(read) == len(values)
      for got, want in zip(read, values):
        np.testing.assert_array_equal(got, want)
    else:
      assert read == values


@pytest.mark.parametrize('num_nodes,width', [(255, 'B'), (256, 'H'), (300, 'H')])
def test_read_gt_index_width_follows_the_number_of_nodes(tmp_path, num_nodes, width):
  # graph-tool uses uint8 indices up to N = 255 nodes, uint16 from 256.
  adjacency = {0: [num_nodes - 1, 1], num_nodes - 1: [2]}
  path = _write(tmp_path / 'g.gt', _gt_bytes(num_nodes, adjacency))
  assert _gt_bytes(num_nodes, adjacency) == _gt_bytes(num_nodes, adjacency, index_width=width)
  gt = graph_lib.read_gt(path)
  np.testing.assert_array_equal(gt.sources, [0, 0, num_nodes - 1])
  np.testing.assert_array_equal(gt.targets, [num_nodes - 1, 1, 2])


def _corrupt_gt_files():
  good = _gt_bytes(5, _ADJACENCY, _PROPERTIES)
  header = len(graph_lib.GT_MAGIC)
  return {
      'bad magic': (b'\xe2\x9b\xbf gt' + good[header:], 'magic'),
      'version 2': (good[:header] + b'\x02' + good[header + 1:], 'version'),
      'truncated in the header': (good[:10], 'ends at byte 10'),
      'truncated in the adjacency': (good[:len(good) // 3], 'ends at byte'),
      'truncated in the properties': (good[:-3], 'ends at byte'),
      'trailing bytes': (good + b'\x00', '1 bytes follow the last property map'),
      'neighbour out of range': (_gt_bytes(5, {0: [7]}), 'out of range'),
      'unknown value type': (_gt_bytes(5, {}, [(1, 'flagprop', 'bool', [True] * 5)]).replace(
          b'flagprop\x00', b'flagprop\x0f'), 'value type 15'),
  }


@pytest.mark.parametrize('case', list(_corrupt_gt_files()))
def test_read_gt_names_the_file_and_the_fault(tmp_path, case):
  content, message = _corrupt_gt_files()[case]
  path = _write(tmp_path / 'broken.gt.gz', content)
  with pytest.raises(DatasetError, match=message) as info:
    graph_lib.read_gt(path)
  assert path in str(info.value)


def test_read_gt_rejects_a_truncated_gzip(tmp_path):
  path = _write(tmp_path / 'g.gt.gz', gzip.compress(_gt_bytes(5, _ADJACENCY))[:-10],
                compress=False)
  with pytest.raises(DatasetError, match='gzip') as info:
    graph_lib.read_gt(path)
  assert path in str(info.value)


# ------------------------------------------------------------------------------------------
# The graph-tool datasets on a file written here.


def _fake_polbooks(directory, values):
  """A 'polbooks.gt.gz' with 10 nodes, a self-loop, a duplicate and a reversed duplicate."""
  adjacency = {0: [1, 2, 2], 1: [0, 3], 4: [4, 5], 6: [7], 8: [9, 0]}
  path = os.path.join(directory, 'polbooks.gt.gz')
  _write(path, _gt_bytes(10, adjacency, [(1, 'value', 'string', values),
                                         (1, 'label', 'string', [str(i) for i in range(10)])]))
  return path


def test_gt_dataset_is_undirected_with_identity_features_and_a_stratified_split(tmp_path):
  values = list('llllnnnccc')
  _fake_polbooks(tmp_path, values)
  dataset = graph_lib.load_graph_dataset('polbooks', data_dir=os.fspath(tmp_path), seed=3)
  graph = dataset.graph
  assert isinstance(dataset, Dataset) and dataset.modality == 'graph'
  assert dataset.name == 'polbooks' and dataset.num_classes == 3
  assert dataset.label_names == ('liberal', 'neutral', 'conservative')
  assert 'identity' in dataset.feature_kind
  np.testing.assert_array_equal(graph.node_features, np.eye(10, dtype=np.float32))
  np.testing.assert_array_equal(graph.labels, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
  # {0,1} {0,2} {1,3} {4,5} {6,7} {8,9} {8,0}: the self-loop and both duplicates are gone.
  pairs = {(0, 1), (0, 2), (1, 3), (4, 5), (6, 7), (8, 9), (0, 8)}
  expected = sorted(pairs | {(v, u) for u, v in pairs})
  assert list(zip(graph.senders.tolist(), graph.receivers.tolist())) == expected
  assert graph.num_nodes == 10 and graph.num_edges == 14
  # Every class keeps one training node even at 10 %; masks are disjoint and cover all.
  for label in range(3):
    assert graph.train_mask[graph.labels == label].sum() == 1
  total = graph.train_mask.astype(int) + graph.val_mask + graph.test_mask
  np.testing.assert_array_equal(total, np.ones(10))
  np.testing.assert_array_equal(dataset.train.node_ids, np.arange(10))
  np.testing.assert_array_equal(dataset.test.node_ids, np.flatnonzero(graph.test_mask))
  # The split depends on the seed only.
  again = graph_lib.load_graph_dataset('polbooks', data_dir=os.fspath(tmp_path), seed=3)
  np.testing.assert_array_equal(again.graph.test_mask, graph.test_mask)


def test_gt_dataset_rejects_an_unknown_label_value(tmp_path):
  path = _fake_polbooks(tmp_path, list('llllnnnccx'))
  with pytest.raises(DatasetError, match="node 9 is 'x'") as info:
    graph_lib.load_graph_dataset('polbooks', data_dir=os.fspath(tmp_path))
  assert path in str(info.value)


def test_missing_gt_file_says_where_and_how_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setenv('JSSL_DEBIAN_DATA', os.fspath(tmp_path / 'nowhere'))
  with pytest.raises(MissingDatasetError) as info:
    graph_lib.load_graph_dataset('football')
  message = str(info.value)
  assert os.fspath(tmp_path / 'nowhere' / 'graph_tool_collection' / 'football.gt.gz') in message
  assert 'python3-graph-tool' in message and 'bash experiments/install_data.sh' in message


# ------------------------------------------------------------------------------------------
# The real graph-tool collection (installed by experiments/install_data.sh).

# name: (nodes, edges in the file, directed, undirected pairs after symmetrising, classes)
_REAL_GT = {
    'polblogs': (1490, 19090, True, 16715, [758, 732]),
    'football': (115, 613, False, 613, [9, 8, 11, 12, 10, 5, 13, 8, 10, 12, 7, 10]),
    'polbooks': (105, 441, False, 441, [43, 13, 49]),
}


@pytest.mark.parametrize('name', list(_REAL_GT))
def test_real_graph_tool_networks_have_the_counts_of_data_md(name):
  nodes, file_edges, directed, pairs, class_counts = _REAL_GT[name]
  gt = graph_lib.read_gt(os.path.join(graph_lib.graph_tool_collection_dir(),
                                      graph_lib.GT_DATASETS[name][0]))
  assert (gt.num_nodes, gt.sources.size, gt.directed) == (nodes, file_edges, directed)
  assert f'{nodes} vertices, {file_edges} edges' in gt.comment
  dataset = graph_lib.load_graph_dataset(name)
  graph = dataset.graph
  assert graph.num_nodes == nodes and graph.num_edges == 2 * pairs
  assert graph.node_features.shape == (nodes, nodes)
  np.testing.assert_array_equal(np.bincount(graph.labels), class_counts)
  assert dataset.num_classes == len(class_counts) == len(dataset.label_names)
  # About 10 / 10 / 80 %.
  sizes = np.array([graph.train_mask.sum(), graph.val_mask.sum(), graph.test_mask.sum()])
  np.testing.assert_allclose(sizes / nodes, [0.1, 0.1, 0.8], atol=0.03)
  assert len(dataset.validation) == sizes[1] and len(dataset.test) == sizes[2]


# ------------------------------------------------------------------------------------------
# The graph contract.


def _valid_graph():
  return graph_lib.Graph(
      node_features=np.zeros((4, 2), np.float32),
      senders=np.array([0, 1, 2, 3], np.int32), receivers=np.array([1, 0, 3, 2], np.int32),
      labels=np.array([0, 1, 0, -1], np.int32),
      train_mask=np.array([1, 0, 0, 0], bool), val_mask=np.array([0, 1, 0, 0], bool),
      test_mask=np.array([0, 0, 1, 0], bool))


_BROKEN_GRAPHS = {
    'edge out of range': (dict(receivers=np.array([1, 0, 4, 2], np.int32)), r'\[0, 3\]'),
    'negative edge': (dict(senders=np.array([0, 1, 2, -1], np.int32)), r'\[-1, 2\]'),
    'int64 senders': (dict(senders=np.array([0, 1, 2, 3])), 'senders must be int32'),
    'float64 features': (dict(node_features=np.zeros((4, 2))), 'float32'),
    'lengths differ': (dict(receivers=np.array([1, 0, 3], np.int32)), 'differ in length'),
    'self-loop': (dict(receivers=np.array([1, 1, 3, 2], np.int32)), '1 self-loops'),
    'duplicate edge': (dict(senders=np.array([0, 0, 2, 3], np.int32),
                            receivers=np.array([1, 1, 3, 2], np.int32)), '1 duplicate'),
    'overlapping masks': (dict(test_mask=np.array([1, 0, 1, 0], bool)),
                          'train_mask and test_mask share 1'),
    'short mask': (dict(val_mask=np.array([0, 1, 0], bool)), r'val_mask must be bool \[4\]'),
    'int mask': (dict(val_mask=np.array([0, 1, 0, 0])), r'val_mask must be bool \[4\]'),
    'unlabelled node in a mask': (dict(test_mask=np.array([0, 0, 1, 1], bool)),
                                  'test_mask holds 1 nodes without a label'),
    'label below -1': (dict(labels=np.array([0, 1, 0, -2], np.int32)), 'labels hold -2'),
    'NaN feature': (dict(node_features=np.array([[np.nan, 0]] + [[0, 0]] * 3, np.float32)),
                    '1 non-finite'),
}


def test_validate_graph_accepts_a_valid_graph():
  graph = _valid_graph()
  assert graph_lib.validate_graph(graph) is graph
  assert graph.num_nodes == 4 and graph.num_edges == 4


@pytest.mark.parametrize('case', list(_BROKEN_GRAPHS))
def test_validate_graph_names_what_is_wrong(case):
  change, message = _BROKEN_GRAPHS[case]
  with pytest.raises(DatasetError, match=message) as info:
    graph_lib.validate_graph(_valid_graph()._replace(**change), source='my-file.gt')
  assert 'my-file.gt' in str(info.value)


def test_undirected_edges_matches_a_set_reference():
  rng = np.random.default_rng(0)
  senders, receivers = rng.integers(0, 30, 400), rng.integers(0, 30, 400)
  got_s, got_r = graph_lib.undirected_edges(senders, receivers, 30)
  assert got_s.dtype == got_r.dtype == np.int32
  reference = set()
  for u, v in zip(senders.tolist(), receivers.tolist()):
    if u != v:
      reference |= {(u, v), (v, u)}
  assert list(zip(got_s.tolist(), got_r.tolist())) == sorted(reference)


def test_stratified_split_is_disjoint_proportional_and_seeded():
  labels = np.array([0] * 50 + [1] * 30 + [2] * 3 + [-1] * 5)
  train, val, test = graph_lib.stratified_split_masks(labels, train_fraction=0.1,
                                                      val_fraction=0.1, seed=0)
  assert not np.any((train & val) | (train & test) | (val & test))
  np.testing.assert_array_equal(train | val | test, labels >= 0)
  np.testing.assert_array_equal(np.bincount(labels[train]), [5, 3, 1])  # 0.3 -> 1
  np.testing.assert_array_equal(np.bincount(labels[val], minlength=3), [5, 3, 0])
  again = graph_lib.stratified_split_masks(labels, train_fraction=0.1, val_fraction=0.1, seed=0)
  other = graph_lib.stratified_split_masks(labels, train_fraction=0.1, val_fraction=0.1, seed=1)
  np.testing.assert_array_equal(again[2], test)
  assert not np.array_equal(other[2], test)


def test_per_class_split_takes_k_per_class_then_val_and_test():
  labels = np.repeat(np.arange(3), [30, 40, 50])
  train, val, test = graph_lib.per_class_split_masks(labels, train_per_class=5, num_val=20,
                                                     num_test=30, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[train]), [5, 5, 5])
  assert (val.sum(), test.sum()) == (20, 30)
  assert not np.any((train & val) | (train & test) | (val & test))
  with pytest.raises(ValueError, match='class 0 has 30 nodes'):
    graph_lib.per_class_split_masks(labels, train_per_class=31, num_val=0, num_test=0, seed=0)
  with pytest.raises(ValueError, match='105 labelled nodes are left'):
    graph_lib.per_class_split_masks(labels, train_per_class=5, num_val=100, num_test=6, seed=0)


def test_node_sources_and_dataset_shape():
  dataset = graph_lib.toy_graph(num_nodes=32, num_classes=2, feature_dim=3, seed=5)
  batch = dataset.validation.get_batch(np.array([1, 0]))
  assert batch['node'].dtype == batch['label'].dtype == np.int32
  ids = np.flatnonzero(dataset.graph.val_mask)[[1, 0]]
  np.testing.assert_array_equal(batch['node'], ids)
  np.testing.assert_array_equal(batch['label'], dataset.graph.labels[ids])
  assert len(dataset.train) == 32 and dataset.feature_dim == 3
  with pytest.raises(AttributeError, match='graph dataset and has no images'):
    dataset.image_shape  # pylint: disable=pointless-statement
  with pytest.raises(dataclasses.FrozenInstanceError):
    dataset.name = 'other'
  with pytest.raises(ValueError, match='node_ids must be int32'):
    graph_lib.NodeSource(np.arange(3), np.zeros(3, np.int32))


def test_toy_graph_is_deterministic_homophilous_and_class_correlated():
  dataset = graph_lib.toy_graph()
  graph = dataset.graph
  again = graph_lib.toy_graph()
  for a, b in zip(graph, again.graph):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(graph_lib.toy_graph(seed=1).graph.senders, graph.senders)
  assert graph.node_features.shape == (64, 8) and dataset.num_classes == 4
  np.testing.assert_array_equal(np.bincount(graph.labels), [16] * 4)
  assert (graph.train_mask.sum(), graph.val_mask.sum(), graph.test_mask.sum()) == (32, 16, 16)
  same = graph.labels[graph.senders] == graph.labels[graph.receivers]
  assert same.mean() > 0.7  # ~0.3 * 15 within vs 0.02 * 48 across, per node
  # Class means fitted on train classify most test nodes.
  means = np.stack([graph.node_features[graph.train_mask & (graph.labels == c)].mean(0)
                    for c in range(4)])
  test = graph.node_features[graph.test_mask]
  predicted = np.argmin(((test[:, None] - means[None]) ** 2).sum(-1), axis=1)
  assert (predicted == graph.labels[graph.test_mask]).mean() > 0.7


def test_load_graph_dataset_names():
  assert set(graph_lib.GRAPH_DATASETS) == {'polblogs', 'football', 'polbooks',
                                           'wordnet_nouns', 'toy'}
  with pytest.raises(ValueError, match='polblogs.*planetoid:NAME'):
    graph_lib.load_graph_dataset('cora')
  with pytest.raises(ValueError, match='no data_dir'):
    graph_lib.load_graph_dataset('toy', data_dir='/tmp')
  assert graph_lib.load_graph_dataset('toy', feature_dim=5).feature_dim == 5
  with pytest.raises(MissingDatasetError, match='ind.cora.x'):
    graph_lib.load_graph_dataset('planetoid:cora')


# ------------------------------------------------------------------------------------------
# WordNet's data.noun, written here in its format.

_CATEGORY_WORDS = {3: 'alpha beta gamma delta', 5: 'fur paw tail bark', 20: 'leaf root stem seed'}


def _synset_line(offset, lex_filenum, words, pointers, gloss):
  fields = [f'{offset:08d}', f'{lex_filenum:02d}', 'n', f'{len(words):02x}']
  for word in words:
    fields += [word, '0']
  fields.append(f'{len(pointers):03d}')
  for symbol, target, pos in pointers:
    fields += [symbol, f'{target:08d}', pos, '0000']
  return ' '.join(fields) + ' | ' + gloss + '  \n'


def _write_data_noun(path, synsets, header=2):
  """synsets: [(lex_filenum, [(symbol, target index or raw offset str, pos)], gloss)].
  Offsets are byte offsets (8 digits, so a line's length does not depend on them)."""
  lines = [f'  {i} license text  \n' for i in range(1, header + 1)]
  position = sum(len(line.encode()) for line in lines)
  offsets = []
  for i, (lex, _, gloss) in enumerate(synsets):
    offsets.append(position)
    placeholder = [(s, 0, p) for s, _, p in synsets[i][1]]
    position += len(_synset_line(0, lex, [f'w{i}'], placeholder, gloss).encode())
  for i, (lex, pointers, gloss) in enumerate(synsets):
    resolved = [(s, offsets[t] if isinstance(t, int) else int(t), p) for s, t, p in pointers]
    lines.append(_synset_line(offsets[i], lex, [f'w{i}'], resolved, gloss))
  with open(path, 'w') as f:
    f.write(''.join(lines))
  return np.array(offsets)


def _small_wordnet():
  """6 synsets: 1 @ 0, 2 @i 0, 3 %p 4 (and 4 #p 3), 4 #p 2, 5 %m 0, 5 %s 1, a ~ and a
  verb pointer (both ignored)."""
  return [
      (3, [('~', 1, 'n')], 'alpha beta'),
      (3, [('@', 0, 'n'), ('+', '00000042', 'v')], 'beta gamma'),
      (5, [('@i', 0, 'n')], 'fur paw'),
      (5, [('%p', 4, 'n')], 'paw tail'),
      # #p 3 mirrors 3 %p 4; #p 2 has no mirror; a self-hypernym is dropped.
      (20, [('#p', 3, 'n'), ('#p', 2, 'n'), ('@', 4, 'n')], 'leaf root'),
      (20, [('%m', 0, 'n'), ('%s', 1, 'n')], 'root stem'),
  ]


def test_read_wordnet_nouns_parses_synsets_and_links(tmp_path):
  path = os.fspath(tmp_path / 'data.noun')
  offsets = _write_data_noun(path, _small_wordnet())
  nouns = graph_lib.read_wordnet_nouns(path)
  np.testing.assert_array_equal(nouns.offsets, offsets)
  np.testing.assert_array_equal(nouns.lex_filenums, [3, 3, 5, 5, 20, 20])
  assert nouns.glosses[1] == 'beta gamma'
  pairs = {(0, 1), (0, 2), (3, 4), (2, 4), (0, 5), (1, 5)}
  expected = sorted(pairs | {(v, u) for u, v in pairs})
  assert list(zip(nouns.senders.tolist(), nouns.receivers.tolist())) == expected
  assert nouns.relation_counts == {'hypernym': 1, 'instance_hypernym': 1, 'part': 2,
                                   'member': 1, 'substance': 1}


@pytest.mark.parametrize('case,message', [
    ('offset', 'is not its byte offset'),
    ('dangling pointer', 'points to noun synset 99999999'),
    ('no gloss', 'no " | "'),
    ('pointer count', 'declares 5 pointers'),
])
def test_read_wordnet_nouns_names_the_bad_line(tmp_path, case, message):
  path = os.fspath(tmp_path / 'data.noun')
  synsets = _small_wordnet()
  if case == 'dangling pointer':
    synsets[2] = (5, [('@', '99999999', 'n')], 'fur paw')
  _write_data_noun(path, synsets)
  with open(path) as f:
    lines = f.readlines()
  if case == 'offset':
    lines[3] = '0' * 8 + lines[3][8:]
  elif case == 'no gloss':
    lines[3] = lines[3].replace(' | ', ' ')
  elif case == 'pointer count':
    lines[3] = lines[3].replace(' 002 ', ' 005 ', 1)
  with open(path, 'w') as f:
    f.writelines(lines)
  with pytest.raises(DatasetError, match=message) as info:
    graph_lib.read_wordnet_nouns(path)
  assert path in str(info.value)


def _generated_wordnet(path, seed=0, per_category=600):
  """3 categories of `per_category` synsets, each a hypernym tree with category words."""
  rng = np.random.default_rng(seed)
  synsets = []
  for lex, words in _CATEGORY_WORDS.items():
    words = words.split() + ['thing', 'kind', 'sort']
    first = len(synsets)
    for i in range(per_category):
      pointers = [('@', first + int(rng.integers(0, i)), 'n')] if i else []
      gloss = ' '.join(rng.choice(words, 5))
      synsets.append((lex, pointers, gloss))
  _write_data_noun(path, synsets)


def test_wordnet_dataset_features_split_and_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('JSSL_CACHE_DIR', os.fspath(tmp_path / 'cache'))
  data_dir = tmp_path / 'wordnet'
  data_dir.mkdir()
  _generated_wordnet(data_dir / 'data.noun')
  dataset = graph_lib.load_wordnet_nouns(data_dir=os.fspath(data_dir), feature_dim=4, seed=0)
  graph = dataset.graph
  assert dataset.name == 'wordnet_nouns' and dataset.num_classes == 26
  assert graph.node_features.shape == (1800, 4) and graph.node_features.dtype == np.float32
  np.testing.assert_allclose(graph.node_features.mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(graph.node_features.std(0), 1, atol=1e-3)
  np.testing.assert_array_equal(np.bincount(graph.labels), [600, 0, 600] + [0] * 14 + [600])
  assert graph.num_edges == 2 * 3 * 599  # one hypernym per synset but the roots
  np.testing.assert_array_equal(np.bincount(graph.labels[graph.train_mask]), [20, 0, 20]
                                + [0] * 14 + [20])
  assert (graph.val_mask.sum(), graph.test_mask.sum()) == (500, 1000)
  assert dataset.feature_kind == 'gloss TF-IDF, 4-d truncated SVD, standardised'
  cached = graph_lib.wordnet_cache_path(os.fspath(data_dir / 'data.noun'), 4)
  assert os.path.isfile(cached)

  # A second load reads the cache (building is not even possible now) and is identical;
  # another seed changes the split only.
  def no_build(*args):
    raise AssertionError('the cache was not used')
  monkeypatch.setattr(graph_lib, '_build_wordnet_arrays', no_build)
  again = graph_lib.load_wordnet_nouns(data_dir=os.fspath(data_dir), feature_dim=4, seed=1)
  np.testing.assert_array_equal(again.graph.node_features, graph.node_features)
  np.testing.assert_array_equal(again.graph.senders, graph.senders)
  assert not np.array_equal(again.graph.test_mask, graph.test_mask)
  monkeypatch.undo()

  # A changed file is another key, rebuilt the same way as a fresh build: deterministic.
  monkeypatch.setenv('JSSL_CACHE_DIR', os.fspath(tmp_path / 'cache'))
  _generated_wordnet(data_dir / 'data.noun', seed=1)
  assert graph_lib.wordnet_cache_path(os.fspath(data_dir / 'data.noun'), 4) != cached
  rebuilt = graph_lib.load_wordnet_nouns(data_dir=os.fspath(data_dir), feature_dim=4)
  monkeypatch.setenv('JSSL_CACHE_DIR', os.fspath(tmp_path / 'other-cache'))
  fresh = graph_lib.load_wordnet_nouns(data_dir=os.fspath(data_dir), feature_dim=4)
  np.testing.assert_array_equal(rebuilt.graph.node_features, fresh.graph.node_features)
  assert not np.array_equal(rebuilt.graph.senders, graph.senders)


def test_missing_wordnet_names_the_file_and_package(tmp_path):
  with pytest.raises(MissingDatasetError) as info:
    graph_lib.load_graph_dataset('wordnet_nouns', data_dir=os.fspath(tmp_path))
  message = str(info.value)
  assert os.fspath(tmp_path / 'data.noun') in message
  assert 'wordnet-base' in message and 'bash experiments/install_data.sh' in message


def test_real_wordnet_noun_graph_has_the_counts_of_data_md(tmp_path, monkeypatch):
  nouns = graph_lib.read_wordnet_nouns(os.path.join(graph_lib.WORDNET_DIR, 'data.noun'))
  assert nouns.offsets.size == 82115
  assert sum(nouns.relation_counts.values()) == 106614
  assert nouns.relation_counts == {'hypernym': 75850, 'instance_hypernym': 8577,
                                   'part': 9097, 'member': 12293, 'substance': 797}
  monkeypatch.setenv('JSSL_CACHE_DIR', os.fspath(tmp_path))
  dataset = graph_lib.load_graph_dataset('wordnet_nouns', feature_dim=8)
  graph = dataset.graph
  assert graph.num_nodes == 82115 and graph.num_edges == 2 * 106614
  assert graph.node_features.shape == (82115, 8)
  assert dataset.num_classes == 26 and dataset.label_names[0] == 'noun.Tops'
  assert np.bincount(graph.labels).min() >= 20  # noun.motive, the smallest, has 42
  assert (graph.train_mask.sum(), graph.val_mask.sum(), graph.test_mask.sum()) == (520, 500,
                                                                                   1000)
  # The categories follow the is-a links: most edges join synsets of one category.
  assert (graph.labels[graph.senders] == graph.labels[graph.receivers]).mean() > 0.9


# ------------------------------------------------------------------------------------------
# Planetoid files, written here as the originals are: Python 2 pickles (protocol 2, the
# module paths of that time) of SciPy CSR matrices, NumPy arrays and a defaultdict.


def _py2_pickle(obj, protocol=2) -> bytes:
  data = pickle.dumps(obj, protocol=protocol)
  # Protocols 0-2 name globals as 'module\nname\n' text, so the old paths can be put back.
  for new, old in ((b'numpy._core.multiarray', b'numpy.core.multiarray'),
                   (b'scipy.sparse._csr', b'scipy.sparse.csr')):
    data = data.replace(b'c' + new + b'\n', b'c' + old + b'\n')
  return data


def _one_hot(labels, num_classes):
  rows = np.zeros((len(labels), num_classes))
  rows[np.arange(len(labels)), labels] = 1
  return rows


def _write_planetoid(directory, name='tiny', extra=None, protocol=2):
  """510 labelled nodes (allx, the first 3 the training ones), 4 test nodes listed out of
  order with gaps (ids 510..516, 512 and 515 missing as CiteSeer's isolated nodes)."""
  rng = np.random.default_rng(0)
  allx = (rng.random((510, 6)) < 0.3) * 1.0
  allx[7] = 0  # a labelled node without words
  ally_labels = rng.integers(0, 3, 510)
  tx = (rng.random((4, 6)) < 0.5) * 1.0 + np.eye(4, 6)
  ty_labels = np.array([2, 0, 1, 1])
  test_index = [513, 510, 516, 511]
  graph = {0: [1, 1, 0], 1: [0, 2], 3: [516], 511: [510]}  # a duplicate and a self-loop
  import collections  # pylint: disable=g-import-not-at-top
  adjacency = collections.defaultdict(list, graph)
  parts = {
      'x': sparse.csr_matrix(allx[:3]), 'y': _one_hot(ally_labels[:3], 3),
      'allx': sparse.csr_matrix(allx), 'ally': _one_hot(ally_labels, 3),
      'tx': sparse.csr_matrix(tx), 'ty': _one_hot(ty_labels, 3), 'graph': adjacency,
  }
  parts.update(extra or {})
  for part, obj in parts.items():
    with open(os.path.join(directory, f'ind.{name}.{part}'), 'wb') as f:
      f.write(obj if isinstance(obj, bytes) else _py2_pickle(obj, protocol))
  with open(os.path.join(directory, f'ind.{name}.test.index'), 'w') as f:
    f.write(''.join(f'{i}\n' for i in test_index))
  return allx, ally_labels, tx, ty_labels, test_index


@pytest.mark.parametrize('protocol', [0, 2])
def test_planetoid_reader_builds_features_labels_edges_and_the_standard_split(tmp_path,
                                                                              protocol):
  allx, ally_labels, tx, ty_labels, test_index = _write_planetoid(tmp_path, protocol=protocol)
  dataset = graph_lib.load_graph_dataset('planetoid:tiny', data_dir=os.fspath(tmp_path))
  graph = dataset.graph
  assert dataset.name == 'planetoid:tiny' and dataset.num_classes == 3
  assert graph.num_nodes == 517 and graph.node_features.dtype == np.float32
  raw = np.zeros((517, 6))
  raw[:510] = allx
  raw[test_index] = tx
  sums = raw.sum(1, keepdims=True)
  np.testing.assert_allclose(graph.node_features, raw / np.where(sums > 0, sums, 1), rtol=1e-6)
  np.testing.assert_array_equal(graph.node_features[[7, 512, 515]], 0)
  labels = np.full(517, -1)
  labels[:510] = ally_labels
  labels[test_index] = ty_labels
  np.testing.assert_array_equal(graph.labels, labels)
  np.testing.assert_array_equal(np.flatnonzero(graph.train_mask), [0, 1, 2])
  np.testing.assert_array_equal(np.flatnonzero(graph.val_mask), np.arange(3, 503))
  np.testing.assert_array_equal(np.flatnonzero(graph.test_mask), sorted(test_index))
  pairs = {(0, 1), (1, 2), (3, 516), (510, 511)}
  expected = sorted(pairs | {(v, u) for u, v in pairs})
  assert list(zip(graph.senders.tolist(), graph.receivers.tolist())) == expected
  plain = graph_lib.load_planetoid('tiny', os.fspath(tmp_path), row_normalize=False)
  np.testing.assert_array_equal(plain.graph.node_features, raw.astype(np.float32))
  assert 'row-normalised' not in plain.feature_kind


def test_planetoid_refuses_a_pickle_that_would_run_code(tmp_path):
  sentinel = tmp_path / 'sentinel'
  sentinel.write_text('keep me')

  class Evil:
    def __reduce__(self):
      return os.remove, (os.fspath(sentinel),)

  _write_planetoid(tmp_path, extra={'graph': pickle.dumps(Evil(), protocol=2)})
  with pytest.raises(DatasetError, match='refusing to load posix.remove') as info:
    graph_lib.load_graph_dataset('planetoid:tiny', data_dir=os.fspath(tmp_path))
  assert 'ind.tiny.graph' in str(info.value)
  assert sentinel.exists()


def test_planetoid_errors_name_the_files(tmp_path):
  _write_planetoid(tmp_path)
  os.remove(tmp_path / 'ind.tiny.ty')
  with pytest.raises(MissingDatasetError, match='ind.tiny.ty') as info:
    graph_lib.load_graph_dataset('planetoid:tiny', data_dir=os.fspath(tmp_path))
  assert 'ind.tiny.test.index' in str(info.value)  # the list of the files expected
  _write_planetoid(tmp_path, extra={'ty': _one_hot([0, 1, 2], 3)})
  with pytest.raises(DatasetError, match='tx has 4 rows, ty 3'):
    graph_lib.load_graph_dataset('planetoid:tiny', data_dir=os.fspath(tmp_path))
  _write_planetoid(tmp_path, extra={'allx': _py2_pickle(sparse.csr_matrix(np.eye(3)))[:-5]})
  with pytest.raises(DatasetError, match='ind.tiny.allx is not a readable Planetoid pickle'):
    graph_lib.load_graph_dataset('planetoid:tiny', data_dir=os.fspath(tmp_path))
