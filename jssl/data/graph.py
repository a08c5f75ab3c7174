"""Graphs for transductive node tasks (DGI, VGAE, ...): one whole graph and node masks.

A graph dataset is one `Graph` (node features, a directed edge list, node labels and
disjoint train / validation / test node masks) held in host memory as NumPy arrays, plus
`NodeSource`s of node ids so that code written for image sources can still ask for
`get_batch(indices)`. Self-supervised training sees the whole graph (`train` covers every
node); the probe fits on `graph.train_mask`, chooses on `validation` (`val_mask`) and
reports on `test` (`test_mask`).

Datasets, by name (`load_graph_dataset`, `GRAPH_DATASETS`); nothing is downloaded:
- 'polblogs', 'football', 'polbooks': networks of graph-tool's collection, read from its
  binary `.gt` files (`read_gt`), which `bash experiments/install_data.sh` unpacks from the
  Debian package python3-graph-tool into $JSSL_DEBIAN_DATA/graph_tool_collection
  (default ~/.local/share/jssl/debian/...). They have no node features: features are the
  identity (a one-hot node id), the usual choice for featureless graphs in GAE / DGI work.
- 'wordnet_nouns': the 82,115 noun synsets of WordNet 3.0 (Debian wordnet-base), joined by
  hypernym, instance-hypernym and part / member / substance links, with TF-IDF + SVD
  features of each gloss and the 26 noun lexicographer categories as labels.
- 'planetoid:<name>': Cora / CiteSeer / PubMed from the standard Planetoid files that a user
  brings (`load_planetoid`), with the standard split.
- 'toy': `toy_graph`, a tiny stochastic block model: a test fixture, not a benchmark.

Every edge list here is undirected, stored in both directions, without self-loops or
duplicate edges (the GCN adds self-loops itself), sorted by (sender, receiver).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
import pickle
import struct
import tempfile
import time
import zlib
from typing import Any, NamedTuple

import numpy as np

from jssl.data.base import Dataset, DatasetError, MissingDatasetError, build_lock

log = logging.getLogger(__name__)

INSTALL_COMMAND = 'bash experiments/install_data.sh'
PLANETOID_PREFIX = 'planetoid:'
PLANETOID_NAMES = ('cora', 'citeseer', 'pubmed')


def debian_data_dir() -> str:
  """Where experiments/install_data.sh unpacks Debian data files ($JSSL_DEBIAN_DATA)."""
  return os.environ.get('JSSL_DEBIAN_DATA') or os.path.expanduser('~/.local/share/jssl/debian')


def graph_tool_collection_dir() -> str:
  """The directory of graph-tool's collection, $JSSL_DEBIAN_DATA/graph_tool_collection."""
  return os.path.join(debian_data_dir(), 'graph_tool_collection')


def cache_dir() -> str:
  """Where built arrays are cached ($JSSL_CACHE_DIR, default ~/.cache/jssl)."""
  return os.environ.get('JSSL_CACHE_DIR') or os.path.expanduser('~/.cache/jssl')


# ------------------------------------------------------------------------------------------
# The graph and its dataset.


class Graph(NamedTuple):
  """One graph with node labels and node masks, as host arrays (a pytree, being a tuple).

  Edges are directed pairs senders[e] -> receivers[e]; an undirected graph stores both
  directions. No self-loops and no duplicate edges (`validate_graph` checks this). A label
  of -1 marks a node without a label (only Planetoid's CiteSeer has such nodes); such a
  node is in no mask.
  """

  node_features: np.ndarray  # float32 [N, F]
  senders: np.ndarray  # int32 [E]
  receivers: np.ndarray  # int32 [E]
  labels: np.ndarray  # int32 [N], in 0..num_classes-1, or -1 for no label
  train_mask: np.ndarray  # bool [N]: the probe's training nodes
  val_mask: np.ndarray  # bool [N]
  test_mask: np.ndarray  # bool [N]

  @property
  def num_nodes(self) -> int:
    return int(self.node_features.shape[0])

  @property
  def num_edges(self) -> int:
    """Directed edges: an undirected graph counts each of its edges twice."""
    return int(self.senders.shape[0])


def validate_graph(graph: Graph, *, source: str = 'the graph') -> Graph:
  """Checks that `graph` keeps the contract of `Graph`; returns it unchanged.

  Args:
    graph: the graph to check.
    source: what the graph was built from (a file name), for the error message.

  Returns:
    `graph`.

  Raises:
    DatasetError: naming `source` and what is wrong: a dtype or shape, an edge endpoint out
      of range, a self-loop, a duplicate edge, a label below -1, an unlabelled node in a
      mask, overlapping masks, or non-finite features.
  """
  def fail(what: str) -> DatasetError:
    return DatasetError(f'{source} does not make a valid graph: {what}.')

  features = graph.node_features
  if not isinstance(features, np.ndarray) or features.ndim != 2 or features.dtype != np.float32:
    raise fail(f'node_features must be float32 [N, F], got {_describe(features)}')
  n = features.shape[0]
  for field in ('senders', 'receivers'):
    value = getattr(graph, field)
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != np.int32:
      raise fail(f'{field} must be int32 [E], got {_describe(value)}')
  if graph.senders.shape != graph.receivers.shape:
    raise fail(f'senders {graph.senders.shape} and receivers {graph.receivers.shape} differ '
               'in length')
  for field in ('labels', 'train_mask', 'val_mask', 'test_mask'):
    value = getattr(graph, field)
    dtype = np.int32 if field == 'labels' else np.bool_
    if not isinstance(value, np.ndarray) or value.shape != (n,) or value.dtype != dtype:
      raise fail(f'{field} must be {np.dtype(dtype).name} [{n}], got {_describe(value)}')
  if not np.all(np.isfinite(features)):
    raise fail(f'node_features hold {int(np.sum(~np.isfinite(features)))} non-finite values')
  if graph.senders.size:
    for field in ('senders', 'receivers'):
      value = getattr(graph, field)
      low, high = int(value.min()), int(value.max())
      if low < 0 or high >= n:
        raise fail(f'{field} hold node ids in [{low}, {high}], outside [0, {n - 1}]')
    loops = int(np.sum(graph.senders == graph.receivers))
    if loops:
      raise fail(f'it has {loops} self-loops (the GCN adds its own; drop them, e.g. with '
                 '`undirected_edges`)')
    keys = graph.senders.astype(np.int64) * n + graph.receivers
    duplicates = keys.size - np.unique(keys).size
    if duplicates:
      raise fail(f'it has {duplicates} duplicate edges')
  if graph.labels.size and int(graph.labels.min()) < -1:
    raise fail(f'labels hold {int(graph.labels.min())}; labels are >= 0, or -1 for no label')
  masks = {'train_mask': graph.train_mask, 'val_mask': graph.val_mask,
           'test_mask': graph.test_mask}
  for field, mask in masks.items():
    unlabelled = int(np.sum(mask & (graph.labels < 0)))
    if unlabelled:
      raise fail(f'{field} holds {unlabelled} nodes without a label (-1)')
  names = list(masks)
  for i, first in enumerate(names):
    for second in names[i + 1:]:
      overlap = int(np.sum(masks[first] & masks[second]))
      if overlap:
        raise fail(f'{first} and {second} share {overlap} nodes; masks must be disjoint')
  return graph


def _describe(value: Any) -> str:
  if isinstance(value, np.ndarray):
    return f'{value.dtype} {list(value.shape)}'
  return type(value).__name__


@dataclasses.dataclass(frozen=True)
class NodeSource:
  """Node ids and their labels, served like an image source's examples."""

  node_ids: np.ndarray  # int32 [M]
  labels: np.ndarray  # int32 [M]

  def __post_init__(self):
    if self.node_ids.ndim != 1 or self.node_ids.dtype != np.int32:
      raise ValueError(f'node_ids must be int32 [M], got {_describe(self.node_ids)}')
    if self.labels.shape != self.node_ids.shape or self.labels.dtype != np.int32:
      raise ValueError(f'labels must be int32 [{self.node_ids.shape[0]}], got '
                       f'{_describe(self.labels)}')

  def __len__(self) -> int:
    return int(self.node_ids.shape[0])

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Returns {'node': int32 [B] node ids, 'label': int32 [B]} for integer `indices` [B]."""
    return {'node': self.node_ids[indices], 'label': self.labels[indices]}


# kw_only: these fields come after whatever defaults `Dataset` declares.
@dataclasses.dataclass(frozen=True, kw_only=True)
class GraphDataset(Dataset):
  """A `Dataset` of one graph: `train` covers every node, `validation` / `test` the masks.

  `graph.train_mask` holds the probe's training nodes; `feature_kind` says what the node
  features are.
  """

  graph: Graph
  label_names: tuple[str, ...]
  feature_kind: str
  modality: str = 'graph'

  def __post_init__(self):
    if len(self.label_names) != self.num_classes:
      raise ValueError(f'{self.name}: {len(self.label_names)} label names for '
                       f'{self.num_classes} classes')
    if self.graph.labels.size and int(self.graph.labels.max()) >= self.num_classes:
      raise ValueError(f'{self.name}: label {int(self.graph.labels.max())} for '
                       f'{self.num_classes} classes')

  @property
  def image_shape(self) -> tuple[int, int, int]:
    raise AttributeError(f'{self.name} is a graph dataset and has no images; its nodes are '
                         'in dataset.graph (node_features, senders, receivers, masks).')

  @property
  def feature_dim(self) -> int:
    return int(self.graph.node_features.shape[1])

  @property
  def probe_train(self) -> NodeSource:
    """The probes' training nodes (`graph.train_mask`): a node classifier on frozen
    embeddings fits on these only, never on the labels of every node `train` holds."""
    ids = np.flatnonzero(self.graph.train_mask).astype(np.int32)
    return NodeSource(node_ids=ids, labels=self.graph.labels[ids].astype(np.int32))

  def device_constants(self) -> dict[str, np.ndarray]:
    """The arrays every step reads whole: node features and the directed edge list."""
    return {'node_features': self.graph.node_features, 'senders': self.graph.senders,
            'receivers': self.graph.receivers}


def make_graph_dataset(name: str, graph: Graph, *, label_names: tuple[str, ...],
                       feature_kind: str, source: str | None = None) -> GraphDataset:
  """Validates `graph` and wraps it in a `GraphDataset` with its three node sources.

  Args:
    name: the dataset's name.
    graph: the graph; `validate_graph` must accept it.
    label_names: the name of every class, in label order.
    feature_kind: what the node features are.
    source: what the graph was read from, for error messages (default `name`).

  Returns:
    The `GraphDataset`: `train` is every node 0..N-1, `validation` and `test` the nodes of
    `val_mask` and `test_mask` in increasing order.
  """
  validate_graph(graph, source=source or name)

  def nodes(mask: np.ndarray | None) -> NodeSource:
    ids = (np.arange(graph.num_nodes) if mask is None else np.flatnonzero(mask))
    ids = ids.astype(np.int32)
    return NodeSource(ids, graph.labels[ids])

  return GraphDataset(
      name=name, train=nodes(None), validation=nodes(graph.val_mask),
      test=nodes(graph.test_mask), num_classes=len(label_names), graph=graph,
      label_names=tuple(label_names), feature_kind=feature_kind)


# ------------------------------------------------------------------------------------------
# Edges and splits.


def undirected_edges(senders: np.ndarray, receivers: np.ndarray,
                     num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
  """The undirected graph of any edge list: both directions, no self-loops, no duplicates.

  Args:
    senders: int [E] node ids in [0, num_nodes).
    receivers: int [E] node ids in [0, num_nodes).
    num_nodes: N.

  Returns:
    (senders, receivers): int32 [E'] with E' = 2 * (number of distinct unordered pairs
    {u, v}, u != v), sorted by sender, then receiver.
  """
  senders = np.asarray(senders, dtype=np.int64)
  receivers = np.asarray(receivers, dtype=np.int64)
  keep = senders != receivers
  low = np.minimum(senders[keep], receivers[keep])
  high = np.maximum(senders[keep], receivers[keep])
  pairs = np.unique(low * num_nodes + high)
  low, high = pairs // num_nodes, pairs % num_nodes
  both_senders = np.concatenate([low, high])
  both_receivers = np.concatenate([high, low])
  order = np.lexsort((both_receivers, both_senders))
  return both_senders[order].astype(np.int32), both_receivers[order].astype(np.int32)


class LinkSplit(NamedTuple):
  """Held-out edges for link prediction (`link_split`), as host arrays.

  `train_edge_mask` marks the directed edges of the graph that stay in the training graph
  (both directions of a held-out edge are False); the other fields are node pairs [K, 2]
  (smaller id first), the positives held-out edges and the negatives pairs that are not
  edges of the full graph.
  """

  train_edge_mask: np.ndarray  # bool [E]
  val_pos: np.ndarray  # int32 [Kv, 2]
  val_neg: np.ndarray  # int32 [Kv, 2]
  test_pos: np.ndarray  # int32 [Kt, 2]
  test_neg: np.ndarray  # int32 [Kt, 2]


def link_split(graph: Graph, *, val_fraction: float = 0.05, test_fraction: float = 0.1,
               seed: int = 0) -> LinkSplit:
  """Kipf & Welling's (2016) link-prediction split of an undirected graph, fixed by `seed`.

  Of the U undirected edges, round(val_fraction * U) go to validation and round(test_fraction
  * U) to test (both directions removed from the training graph); each held-out set gets as
  many negatives, distinct node pairs {i, j}, i != j, that are not edges of the full graph,
  none shared between validation and test.

  Raises:
    ValueError: fractions outside [0, 1) or summing to 1 or more, a directed graph (an edge
      without its reverse), or too few non-edges for the negatives.
  """
  if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and
          val_fraction + test_fraction < 1):
    raise ValueError(f'link_split: val_fraction={val_fraction} and test_fraction='
                     f'{test_fraction} must be in [0, 1) with a sum below 1.')
  n = graph.num_nodes
  senders = np.asarray(graph.senders, np.int64)
  receivers = np.asarray(graph.receivers, np.int64)
  keys = senders * n + receivers
  if not np.array_equal(np.sort(keys), np.sort(receivers * n + senders)):
    raise ValueError('link_split needs an undirected graph (every edge in both directions); '
                     'build it with jssl.data.graph.undirected_edges.')
  upper = np.flatnonzero(senders < receivers)  # one direction of each undirected edge
  rng = np.random.default_rng(seed)
  order = upper[rng.permutation(upper.size)]
  num_val = _round_half_up(val_fraction * upper.size)
  num_test = _round_half_up(test_fraction * upper.size)
  val_edges, test_edges = order[:num_val], order[num_val:num_val + num_test]
  held_out = np.concatenate([val_edges, test_edges])
  held_keys = np.concatenate([keys[held_out], receivers[held_out] * n + senders[held_out]])
  train_edge_mask = ~np.isin(keys, held_keys)
  num_pairs = n * (n - 1) // 2
  if num_pairs - upper.size < num_val + num_test:
    raise ValueError(f'link_split: the graph has {num_pairs - upper.size} non-edges, fewer '
                     f'than the {num_val + num_test} negatives needed.')
  existing = set(keys[upper].tolist())
  negatives: list[int] = []
  seen: set[int] = set()
  while len(negatives) < num_val + num_test:
    i, j = rng.integers(0, n, size=2)
    low, high = min(i, j), max(i, j)
    key = int(low) * n + int(high)
    if low != high and key not in existing and key not in seen:
      seen.add(key)
      negatives.append(key)
  negatives = np.asarray(negatives, np.int64)
  pairs = lambda edges: np.stack([senders[edges], receivers[edges]], 1).astype(np.int32)
  as_pairs = lambda k: np.stack([k // n, k % n], 1).astype(np.int32).reshape(-1, 2)
  return LinkSplit(train_edge_mask=train_edge_mask, val_pos=pairs(val_edges),
                   val_neg=as_pairs(negatives[:num_val]), test_pos=pairs(test_edges),
                   test_neg=as_pairs(negatives[num_val:]))


def _round_half_up(x: float) -> int:
  return int(np.floor(x + 0.5))


def stratified_split_masks(labels: np.ndarray, *, train_fraction: float, val_fraction: float,
                           seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A stratified random split of the labelled nodes into train / validation / test masks.

  With one `np.random.default_rng(seed)`, each class in increasing label order is permuted;
  its first max(1, round(train_fraction * n)) nodes go to train (so a small class keeps one
  training node), the next min(round(val_fraction * n), what is left) to validation and the
  rest to test (halves round up). Unlabelled nodes (-1) go nowhere.

  Args:
    labels: int [N].
    train_fraction: fraction of each class for train.
    val_fraction: fraction of each class for validation.
    seed: seed of the permutation.

  Returns:
    (train_mask, val_mask, test_mask): disjoint bool [N].
  """
  if not (0 < train_fraction and 0 <= val_fraction and train_fraction + val_fraction <= 1):
    raise ValueError(f'train_fraction={train_fraction} and val_fraction={val_fraction} must be '
                     'positive and sum to at most 1.')
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  masks = [np.zeros(labels.shape, bool) for _ in range(3)]
  for label in np.unique(labels[labels >= 0]):
    members = rng.permutation(np.flatnonzero(labels == label))
    n_train = max(1, _round_half_up(train_fraction * members.size))
    n_val = min(_round_half_up(val_fraction * members.size), members.size - n_train)
    masks[0][members[:n_train]] = True
    masks[1][members[n_train:n_train + n_val]] = True
    masks[2][members[n_train + n_val:]] = True
  return masks[0], masks[1], masks[2]


def per_class_split_masks(labels: np.ndarray, *, train_per_class: int, num_val: int,
                          num_test: int,
                          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A Planetoid-style split: k training nodes per class, then random validation and test.

  With one `np.random.default_rng(seed)`: each class in increasing label order gives
  `train_per_class` random nodes to train; the other labelled nodes are permuted and the
  first `num_val` go to validation, the next `num_test` to test (Yang et al., 2016; Kipf &
  Welling, 2017 use 20 / 500 / 1,000).

  Args:
    labels: int [N]; -1 marks an unlabelled node, which is never chosen.
    train_per_class: training nodes per class.
    num_val: validation nodes.
    num_test: test nodes.
    seed: seed of the choice.

  Returns:
    (train_mask, val_mask, test_mask): disjoint bool [N].

  Raises:
    ValueError: a class has fewer than `train_per_class` nodes, or too few nodes are left for
      validation and test.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  train = np.zeros(labels.shape, bool)
  for label in np.unique(labels[labels >= 0]):
    members = np.flatnonzero(labels == label)
    if members.size < train_per_class:
      raise ValueError(f'class {label} has {members.size} nodes, fewer than '
                       f'train_per_class={train_per_class}.')
    train[rng.choice(members, train_per_class, replace=False)] = True
  rest = rng.permutation(np.flatnonzero((labels >= 0) & ~train))
  if rest.size < num_val + num_test:
    raise ValueError(f'{rest.size} labelled nodes are left after the training nodes, fewer '
                     f'than num_val + num_test = {num_val + num_test}.')
  val = np.zeros(labels.shape, bool)
  test = np.zeros(labels.shape, bool)
  val[rest[:num_val]] = True
  test[rest[num_val:num_val + num_test]] = True
  return train, val, test


def identity_features(num_nodes: int) -> np.ndarray:
  """One-hot node ids, float32 [N, N]: the features of a featureless graph."""
  return np.eye(num_nodes, dtype=np.float32)


# ------------------------------------------------------------------------------------------
# graph-tool's binary .gt format.
#
# From graph-tool's documentation ("The gt file format"): the magic string '⛾ gt' (6 bytes
# of UTF-8), a version byte (1) and an endianness byte (0 little, 1 big); a comment string;
# a directedness byte and N (uint64); for each node in turn, its out-neighbours as a uint64
# count and that many node indices, each uint8 / uint16 / uint32 / uint64 for N up to
# 2**8-1 / 2**16-1 / 2**32-1 / more (an undirected edge is listed once); then the number of
# property maps (uint64) and each map: its key type (uint8: 0 graph, 1 vertex, 2 edge), its
# name (a string), its value type (uint8, `GT_VALUE_TYPES`) and its values: one for a graph
# property, one per node in index order, or one per edge in adjacency-list order. Strings
# and vectors are a uint64 length and then their elements.

GT_MAGIC = '⛾ gt'.encode('utf-8')
GT_VERSION = 1
# Value type index -> (name, NumPy element type or None for strings / objects, is a vector).
GT_VALUE_TYPES = (
    ('bool', 'u1', False), ('int16_t', 'i2', False), ('int32_t', 'i4', False),
    ('int64_t', 'i8', False), ('double', 'f8', False), ('long double', 'f16', False),
    ('string', None, False), ('vector<bool>', 'u1', True), ('vector<int16_t>', 'i2', True),
    ('vector<int32_t>', 'i4', True), ('vector<int64_t>', 'i8', True),
    ('vector<double>', 'f8', True), ('vector<long double>', 'f16', True),
    ('vector<string>', None, True), ('python::object', None, False),
)
_GT_KEY_TYPES = ('graph', 'vertex', 'edge')


class GtGraph(NamedTuple):
  """The contents of one .gt file, edges in the file's order."""

  num_nodes: int
  directed: bool
  sources: np.ndarray  # int64 [E]: the node whose adjacency list holds the edge
  targets: np.ndarray  # int64 [E]
  graph_properties: dict[str, Any]
  # name -> values: a NumPy array [N] / [E] for scalar types (bool as bool), a list of
  # str for strings, of arrays for vectors, of lists of str for vector<string>, and of
  # bytes for python::object (the pickled bytes, never unpickled).
  vertex_properties: dict[str, Any]
  edge_properties: dict[str, Any]
  property_types: dict[tuple[str, str], str]  # (key type, name) -> value type name
  comment: str


class _Bytes:
  """A cursor over a file's bytes that says where it ran out."""

  def __init__(self, data: bytes, path: str, endian: str = '<'):
    self.data, self.path, self.endian, self.pos = data, path, endian, 0

  def corrupt(self, what: str) -> DatasetError:
    return DatasetError(
        f'{self.path} is not a valid graph-tool .gt file: {what}. The file is probably '
        'truncated or corrupt; get it again (for the Debian collection: '
        f'{INSTALL_COMMAND}).')

  def take(self, size: int, what: str) -> memoryview:
    if size < 0 or self.pos + size > len(self.data):
      raise self.corrupt(f'it ends at byte {len(self.data)} while reading {what} '
                         f'({size} bytes from byte {self.pos})')
    view = memoryview(self.data)[self.pos:self.pos + size]
    self.pos += size
    return view

  def u8(self, what: str) -> int:
    return self.take(1, what)[0]

  def u64(self, what: str) -> int:
    return struct.unpack(self.endian + 'Q', self.take(8, what))[0]

  def array(self, dtype: str, count: int, what: str) -> np.ndarray:
    dtype = np.dtype(dtype).newbyteorder(self.endian)
    if count > (len(self.data) - self.pos) // max(dtype.itemsize, 1):
      raise self.corrupt(f'it ends at byte {len(self.data)} while reading {what} '
                         f'({count} values of {dtype.itemsize} bytes from byte {self.pos})')
    return np.frombuffer(self.take(count * dtype.itemsize, what), dtype=dtype)

  def string(self, what: str) -> bytes:
    return bytes(self.take(self.u64(what + ' (its length)'), what))


def _read_maybe_gzip(path: str, what: str) -> bytes:
  """The bytes of `path`, gunzipped when they start with gzip's magic bytes."""
  with open(path, 'rb') as f:
    data = f.read()
  if data[:2] != b'\x1f\x8b':
    return data
  try:
    return gzip.decompress(data)
  except (EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise DatasetError(f'{path} is not a readable gzip file ({e}); it is probably truncated '
                       f'or corrupt: get {what} again.') from e


def read_gt(path: str) -> GtGraph:
  """Reads a graph-tool binary graph file (.gt, plain or gzipped).

  Args:
    path: the file.

  Returns:
    A `GtGraph` with every property map of the file.

  Raises:
    DatasetError: naming `path`, when it is not a complete .gt file of version 1 (bad magic
      bytes, a truncated file, an out-of-range neighbour, an unknown type, bytes left over).
  """
  data = _read_maybe_gzip(path, 'the file')
  cursor = _Bytes(data, path)
  magic = bytes(cursor.take(len(GT_MAGIC), 'the magic bytes'))
  if magic != GT_MAGIC:
    raise cursor.corrupt(f'it starts with bytes {magic.hex(" ")} instead of the magic '
                         f'{GT_MAGIC.hex(" ")} ("⛾ gt")')
  version = cursor.u8('the version')
  if version != GT_VERSION:
    raise cursor.corrupt(f'its version is {version}; only version {GT_VERSION} is known')
  big_endian = cursor.u8('the endianness')
  if big_endian not in (0, 1):
    raise cursor.corrupt(f'its endianness byte is {big_endian}, neither 0 nor 1')
  cursor.endian = '>' if big_endian else '<'
  comment = cursor.string('the comment').decode('utf-8', 'replace')
  directed = cursor.u8('the directedness')
  num_nodes = cursor.u64('the number of nodes')
  if num_nodes <= 2**8 - 1:
    index_type = 'u1'
  elif num_nodes <= 2**16 - 1:
    index_type = 'u2'
  elif num_nodes <= 2**32 - 1:
    index_type = 'u4'
  else:
    index_type = 'u8'
  # Each adjacency list needs at least its 8-byte length: a cheap bound on a corrupt N.
  if num_nodes > len(data) // 8:
    raise cursor.corrupt(f'it declares {num_nodes} nodes, more than its {len(data)} bytes '
                         'can hold')
  targets = []
  degrees = np.zeros(num_nodes, np.int64)
  for node in range(num_nodes):
    degree = cursor.u64(f'the out-degree of node {node}')
    neighbours = cursor.array(index_type, degree, f'the neighbours of node {node}')
    degrees[node] = degree
    targets.append(neighbours)
  targets = (np.concatenate(targets).astype(np.int64) if targets
             else np.zeros(0, np.int64))
  if targets.size and int(targets.max()) >= num_nodes:
    raise cursor.corrupt(f'a neighbour index {int(targets.max())} is out of range for '
                         f'{num_nodes} nodes')
  sources = np.repeat(np.arange(num_nodes, dtype=np.int64), degrees)
  num_edges = int(targets.size)

  properties = ({}, {}, {})
  types = {}
  num_properties = cursor.u64('the number of property maps')
  for index in range(num_properties):
    key = cursor.u8(f'the key type of property map {index}')
    if key > 2:
      raise cursor.corrupt(f'property map {index} has key type {key}; 0 (graph), 1 (vertex) '
                           'and 2 (edge) are known')
    name = cursor.string(f'the name of property map {index}').decode('utf-8', 'replace')
    value_type = cursor.u8(f'the value type of property {name!r}')
    if value_type >= len(GT_VALUE_TYPES):
      raise cursor.corrupt(f'property {name!r} has value type {value_type}; types 0..'
                           f'{len(GT_VALUE_TYPES) - 1} are known')
    count = (1, num_nodes, num_edges)[key]
    values = _read_gt_values(cursor, value_type, count, f'the values of property {name!r}')
    properties[key][name] = values[0] if key == 0 else values
    types[(_GT_KEY_TYPES[key], name)] = GT_VALUE_TYPES[value_type][0]
  if cursor.pos != len(data):
    raise cursor.corrupt(f'{len(data) - cursor.pos} bytes follow the last property map')
  return GtGraph(
      num_nodes=int(num_nodes), directed=bool(directed), sources=sources, targets=targets,
      graph_properties=properties[0], vertex_properties=properties[1],
      edge_properties=properties[2], property_types=types, comment=comment)


def _read_gt_values(cursor: _Bytes, value_type: int, count: int, what: str) -> Any:
  """`count` values of one type: an array for scalars, a list otherwise."""
  type_name, element, is_vector = GT_VALUE_TYPES[value_type]
  if element == 'f16':
    # x86 long double, stored in 16 bytes; NumPy's longdouble is that type only there.
    if np.dtype(np.longdouble).itemsize != 16:
      raise cursor.corrupt(f'{what} are {type_name}, which this platform cannot read')
    element = np.longdouble
  if not is_vector and element is not None:
    values = cursor.array(element, count, what)
    native = values.dtype.newbyteorder('=')
    return values.astype(bool) if type_name == 'bool' else values.astype(native)
  values = []
  for i in range(count):
    if type_name in ('string', 'python::object'):
      raw = cursor.string(what)
      values.append(raw if type_name == 'python::object' else raw.decode('utf-8', 'replace'))
    elif type_name == 'vector<string>':
      length = cursor.u64(what)
      values.append([cursor.string(what).decode('utf-8', 'replace') for _ in range(length)])
    else:
      vector = cursor.array(element, cursor.u64(what), what)
      vector = vector.astype(vector.dtype.newbyteorder('='))
      values.append(vector.astype(bool) if type_name == 'vector<bool>' else vector)
  return values


# name -> (file, vertex property of the label, {value: label} or None when the values are
# already 0..C-1, label names).
GT_DATASETS: dict[str, tuple[str, str, dict[Any, int] | None, tuple[str, ...]]] = {
    # Adamic & Glance (2005): hyperlinks between US political blogs; leaning 0 / 1.
    'polblogs': ('polblogs.gt.gz', 'value', None, ('liberal', 'conservative')),
    # Girvan & Newman (2002): Division IA games of 2000; the file's 'value' conferences (its
    # 'value_tsevans' holds T. S. Evans's corrections, with 7 singleton classes).
    'football': ('football.gt.gz', 'value', None, (
        'Atlantic Coast', 'Big East', 'Big Ten', 'Big Twelve', 'Conference USA',
        'Independents', 'Mid-American', 'Mountain West', 'Pacific Ten', 'Southeastern',
        'Sun Belt', 'Western Athletic')),
    # Krebs (unpublished): books co-purchased on Amazon; Newman's l / n / c leaning.
    'polbooks': ('polbooks.gt.gz', 'value', {'l': 0, 'n': 1, 'c': 2},
                 ('liberal', 'neutral', 'conservative')),
}
GT_SPLIT = {'train_fraction': 0.1, 'val_fraction': 0.1}  # the rest (80 %) is test


def load_gt_dataset(name: str, *, data_dir: str | None = None, seed: int = 0) -> GraphDataset:
  """A labelled network of graph-tool's collection, undirected, with identity features.

  Edges are symmetrised (a directed graph such as polblogs becomes undirected), without
  self-loops or duplicates. The features are one-hot node ids. The split is stratified
  (`stratified_split_masks`): 10 % of each class train (at least one node), 10 %
  validation, the rest test, drawn with `seed`.

  Args:
    name: a key of `GT_DATASETS` ('polblogs', 'football', 'polbooks').
    data_dir: the directory of the .gt.gz files (default `graph_tool_collection_dir()`).
    seed: seed of the split.

  Returns:
    The `GraphDataset`.

  Raises:
    MissingDatasetError: the file is not there; the message says how to get it.
    DatasetError: the file is malformed or lacks the label property.
  """
  filename, label_property, label_values, label_names = GT_DATASETS[name]
  directory = graph_tool_collection_dir() if data_dir is None else os.fspath(data_dir)
  path = os.path.join(directory, filename)
  if not os.path.isfile(path):
    raise MissingDatasetError(
        f'{name}: {path} was not found. It is a data file of the Debian package '
        f'python3-graph-tool (graph_tool/collection/{filename}); run `{INSTALL_COMMAND}` to '
        'unpack it there (set $JSSL_DEBIAN_DATA to unpack elsewhere), or pass data_dir= the '
        'directory that holds it.')
  gt = read_gt(path)
  if label_property not in gt.vertex_properties:
    raise DatasetError(f'{path} has no vertex property {label_property!r} (it has '
                       f'{sorted(gt.vertex_properties)}), which holds the {name} labels.')
  raw = gt.vertex_properties[label_property]
  if label_values is None:
    values = np.asarray(raw, dtype=np.float64)
    labels = values.astype(np.int64)
    bad = (labels != values) | (labels < 0) | (labels >= len(label_names))
  else:
    labels = np.array([label_values.get(v, -1) for v in raw], dtype=np.int64)
    bad = labels < 0
  if np.any(bad):
    first = int(np.flatnonzero(bad)[0])
    raise DatasetError(f'{path}: vertex property {label_property!r} of node {first} is '
                       f'{raw[first]!r}, not one of the {len(label_names)} {name} classes.')
  labels = labels.astype(np.int32)
  senders, receivers = undirected_edges(gt.sources, gt.targets, gt.num_nodes)
  train, val, test = stratified_split_masks(labels, seed=seed, **GT_SPLIT)
  graph = Graph(identity_features(gt.num_nodes), senders, receivers, labels, train, val, test)
  return make_graph_dataset(name, graph, label_names=label_names,
                            feature_kind='identity (featureless graph): one-hot node id',
                            source=path)


# ------------------------------------------------------------------------------------------
# WordNet's noun graph.

WORDNET_DIR = '/usr/share/wordnet'
# Noun lexicographer files 03..28 (lexnames(5WN)); label = lex_filenum - 3.
WORDNET_NOUN_CATEGORIES = (
    'noun.Tops', 'noun.act', 'noun.animal', 'noun.artifact', 'noun.attribute', 'noun.body',
    'noun.cognition', 'noun.communication', 'noun.event', 'noun.feeling', 'noun.food',
    'noun.group', 'noun.location', 'noun.motive', 'noun.object', 'noun.person',
    'noun.phenomenon', 'noun.plant', 'noun.possession', 'noun.process', 'noun.quantity',
    'noun.relation', 'noun.shape', 'noun.state', 'noun.substance', 'noun.time')
_FIRST_NOUN_LEXFILE = 3
# Relation -> the pointer symbols read for it (wninput(5WN)). Only one direction of each
# pair of inverse pointers is needed (~ mirrors @, # mirrors %); both are read for the
# part-whole relations, which changes nothing after symmetrising.
WORDNET_RELATIONS = {
    'hypernym': ('@',),
    'instance_hypernym': ('@i',),
    'part': ('%p', '#p'),
    'member': ('%m', '#m'),
    'substance': ('%s', '#s'),
}
_SYMBOL_RELATION = {symbol: relation for relation, symbols in WORDNET_RELATIONS.items()
                    for symbol in symbols}
WORDNET_SPLIT = {'train_per_class': 20, 'num_val': 500, 'num_test': 1000}
# TF-IDF of the glosses (scikit-learn), then TruncatedSVD; fixed, so features are too.
WORDNET_TFIDF = {'min_df': 2, 'max_features': 20000, 'sublinear_tf': True,
                 'stop_words': 'english'}
WORDNET_SVD_SEED = 0
# Bump when the build changes, so that old caches are not read.
_WORDNET_BUILD_VERSION = 1


class WordNetNouns(NamedTuple):
  """WordNet's noun synsets as a graph, in the order of data.noun."""

  offsets: np.ndarray  # int64 [N]: each synset's byte offset in data.noun (its id)
  lex_filenums: np.ndarray  # int32 [N]: 3..28
  glosses: list[str]  # [N]: definition and examples
  senders: np.ndarray  # int32 [E]: undirected, both directions
  receivers: np.ndarray  # int32 [E]
  relation_counts: dict[str, int]  # relation -> distinct unordered synset pairs


def read_wordnet_nouns(path: str) -> WordNetNouns:
  """Parses WordNet's data.noun into synsets and their hypernym / part-whole links.

  Format (wndb(5WN)): license lines start with two spaces; every other line is one synset:
  `offset lex_filenum ss_type w_cnt [word lex_id]*w_cnt p_cnt [symbol offset pos st]*p_cnt
  | gloss`, w_cnt two hex digits, p_cnt three decimal digits, offset the line's byte offset.
  Edges are the noun-to-noun pointers of `WORDNET_RELATIONS`, made undirected.

  Args:
    path: data.noun.

  Returns:
    The `WordNetNouns`.

  Raises:
    DatasetError: naming `path` and the line, when a line does not parse, a synset's offset
      is not its byte offset, or a pointer names no synset.
  """
  offsets, lex_filenums, glosses = [], [], []
  pointer_sources, pointer_targets, pointer_relations = [], [], []
  relation_index = {relation: i for i, relation in enumerate(WORDNET_RELATIONS)}
  position = 0
  with open(path, 'rb') as f:
    for line_number, raw in enumerate(f, 1):
      start, position = position, position + len(raw)
      if raw.startswith(b'  '):
        continue
      def bad(what: str) -> DatasetError:
        return DatasetError(f'{path}, line {line_number}: {what}; not a WordNet data.noun '
                            f'synset line. The file may be corrupt: reinstall wordnet-base '
                            f'({INSTALL_COMMAND}).')
      line = raw.decode('utf-8', 'replace')
      head, bar, gloss = line.partition(' | ')
      if not bar:
        raise bad('no " | " before a gloss')
      fields = head.split()
      try:
        offset, lex_filenum, ss_type = int(fields[0]), int(fields[1]), fields[2]
        word_count = int(fields[3], 16)
        at = 4 + 2 * word_count
        pointer_count = int(fields[at])
        at += 1
        pointers = fields[at:at + 4 * pointer_count]
      except (IndexError, ValueError) as e:
        raise bad(f'its fields do not parse ({e})') from e
      if len(pointers) != 4 * pointer_count:
        raise bad(f'it declares {pointer_count} pointers but holds {len(pointers) // 4}')
      if offset != start:
        raise bad(f'its offset {offset:08d} is not its byte offset {start}')
      if ss_type != 'n':
        raise bad(f'its synset type is {ss_type!r}, not "n"')
      if not _FIRST_NOUN_LEXFILE <= lex_filenum < _FIRST_NOUN_LEXFILE + len(
          WORDNET_NOUN_CATEGORIES):
        raise bad(f'its lexicographer file {lex_filenum} is not a noun file (3..28)')
      node = len(offsets)
      offsets.append(offset)
      lex_filenums.append(lex_filenum)
      glosses.append(gloss.strip())
      for i in range(0, len(pointers), 4):
        symbol, target, pos = pointers[i], pointers[i + 1], pointers[i + 2]
        if pos == 'n' and symbol in _SYMBOL_RELATION:
          pointer_sources.append(node)
          pointer_targets.append(int(target))
          pointer_relations.append(relation_index[_SYMBOL_RELATION[symbol]])
  if not offsets:
    raise DatasetError(f'{path} holds no synset lines; it is not WordNet\'s data.noun.')
  offsets = np.asarray(offsets, np.int64)
  targets = np.searchsorted(offsets, np.asarray(pointer_targets, np.int64))
  targets = np.minimum(targets, offsets.size - 1)
  missing = offsets[targets] != np.asarray(pointer_targets, np.int64)
  if np.any(missing):
    first = int(np.flatnonzero(missing)[0])
    raise DatasetError(f'{path}: synset {offsets[pointer_sources[first]]:08d} points to noun '
                       f'synset {pointer_targets[first]:08d}, which is not in the file; the '
                       f'file may be truncated: reinstall wordnet-base ({INSTALL_COMMAND}).')
  sources = np.asarray(pointer_sources, np.int64)
  relations = np.asarray(pointer_relations, np.int64)
  n = offsets.size
  pair_keys = np.minimum(sources, targets) * n + np.maximum(sources, targets)
  not_loop = sources != targets
  relation_counts = {relation: int(np.unique(pair_keys[(relations == i) & not_loop]).size)
                     for relation, i in relation_index.items()}
  senders, receivers = undirected_edges(sources, targets, n)
  return WordNetNouns(offsets, np.asarray(lex_filenums, np.int32), glosses, senders,
                      receivers, relation_counts)


def gloss_features(glosses: list[str], feature_dim: int) -> np.ndarray:
  """TF-IDF of each text (`WORDNET_TFIDF`), TruncatedSVD to `feature_dim`, standardised.

  Args:
    glosses: [N] texts.
    feature_dim: D, the number of SVD components; less than the vocabulary size.

  Returns:
    float32 [N, D], every column of mean 0 and standard deviation 1 (or 0 if constant).
  """
  from sklearn import decomposition  # pylint: disable=g-import-not-at-top
  from sklearn.feature_extraction import text  # pylint: disable=g-import-not-at-top
  vectorizer = text.TfidfVectorizer(dtype=np.float32, **WORDNET_TFIDF)
  tfidf = vectorizer.fit_transform(glosses)
  if not 0 < feature_dim < tfidf.shape[1]:
    raise ValueError(f'feature_dim must be in [1, {tfidf.shape[1] - 1}] (the TF-IDF '
                     f'vocabulary has {tfidf.shape[1]} terms), got {feature_dim}.')
  svd = decomposition.TruncatedSVD(n_components=feature_dim, random_state=WORDNET_SVD_SEED)
  reduced = svd.fit_transform(tfidf).astype(np.float64)
  reduced -= reduced.mean(axis=0)
  scale = reduced.std(axis=0)
  reduced /= np.where(scale > 0, scale, 1.0)
  return reduced.astype(np.float32)


def _file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def _build_wordnet_arrays(path: str, feature_dim: int) -> dict[str, np.ndarray]:
  nouns = read_wordnet_nouns(path)
  return {
      'node_features': gloss_features(nouns.glosses, feature_dim),
      'senders': nouns.senders, 'receivers': nouns.receivers,
      'labels': (nouns.lex_filenums - _FIRST_NOUN_LEXFILE).astype(np.int32),
      'offsets': nouns.offsets,
      'relation_names': np.asarray(list(nouns.relation_counts)),
      'relation_counts': np.asarray(list(nouns.relation_counts.values()), np.int64),
  }


def wordnet_cache_path(path: str, feature_dim: int) -> str:
  """The cache file of the arrays built from `path` with `feature_dim`.

  Keyed by the file's SHA-256, the options, the build version and scikit-learn's version
  (TF-IDF and SVD could change with it), so a changed input never reads a stale cache.
  """
  import sklearn  # pylint: disable=g-import-not-at-top
  key = hashlib.sha256(
      f'{_file_sha256(path)} dim={feature_dim} tfidf={sorted(WORDNET_TFIDF.items())} '
      f'svd_seed={WORDNET_SVD_SEED} build={_WORDNET_BUILD_VERSION} '
      f'sklearn={sklearn.__version__}'.encode()).hexdigest()[:20]
  return os.path.join(cache_dir(), 'graph', f'wordnet_nouns-{feature_dim}d-{key}.npz')


def _wordnet_arrays(path: str, feature_dim: int) -> dict[str, np.ndarray]:
  """The built arrays, from the cache when it holds them, else built and cached."""
  cached = wordnet_cache_path(path, feature_dim)
  with build_lock(cached):
    return _cached_wordnet_arrays(path, feature_dim, cached)


def _cached_wordnet_arrays(path: str, feature_dim: int, cached: str) -> dict[str, np.ndarray]:
  if os.path.isfile(cached):
    try:
      with np.load(cached, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zlib.error, KeyError) as e:  # a damaged cache: rebuild it
      log.warning('Ignoring the unreadable cache %s (%s); rebuilding it.', cached, e)
  started = time.perf_counter()
  arrays = _build_wordnet_arrays(path, feature_dim)
  log.info('Built the WordNet noun graph from %s in %.1f s; caching it in %s.', path,
           time.perf_counter() - started, cached)
  try:
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(cached), suffix='.npz.tmp',
                                     delete=False) as f:
      np.savez(f, **arrays)
    os.replace(f.name, cached)
  except OSError as e:
    log.warning('Could not cache the WordNet noun graph in %s (%s); it will be built again '
                'next time. Set $JSSL_CACHE_DIR to a writable directory.', cached, e)
  return arrays


def load_wordnet_nouns(*, data_dir: str | None = None, feature_dim: int = 256,
                       seed: int = 0) -> GraphDataset:
  """WordNet 3.0's noun graph: 82,115 synsets, their 26 lexicographer categories as labels.

  Nodes are the noun synsets of data.noun, in file order. Edges join a synset to its
  hypernyms, instance hypernyms and part / member / substance holonyms (`WORDNET_RELATIONS`),
  undirected: 106,614 synset pairs, 213,228 directed edges. Node features are the TF-IDF of
  each gloss (`WORDNET_TFIDF`), reduced to `feature_dim` dimensions by TruncatedSVD
  (random_state `WORDNET_SVD_SEED`) and standardised; float32 and the same on every call.
  The arrays are cached in `cache_dir()`/graph (`wordnet_cache_path`), since building them
  takes seconds.

  The categories follow the is-a hierarchy (a synset's hypernym is usually in its own
  category), so the edges nearly give the labels away and the task is easy: a sanity check
  and a large-graph workload, not a hard benchmark.

  The split is Planetoid's recipe (`per_class_split_masks`): 20 training nodes per class,
  500 validation and 1,000 test nodes, drawn with `seed`.

  Args:
    data_dir: the directory of data.noun (default /usr/share/wordnet).
    feature_dim: number of SVD components of the gloss features.
    seed: seed of the split (the features do not depend on it).

  Returns:
    The `GraphDataset` named 'wordnet_nouns'.

  Raises:
    MissingDatasetError: data.noun is not there; the message says how to get it.
    DatasetError: data.noun is malformed.
  """
  directory = WORDNET_DIR if data_dir is None else os.fspath(data_dir)
  path = os.path.join(directory, 'data.noun')
  if not os.path.isfile(path):
    raise MissingDatasetError(
        f'wordnet_nouns: {path} was not found. It is in the Debian package wordnet-base; '
        f'run `{INSTALL_COMMAND}` (or `sudo apt-get install wordnet-base`), or pass '
        'data_dir= a directory holding WordNet 3.0\'s data.noun.')
  arrays = _wordnet_arrays(path, feature_dim)
  labels = arrays['labels']
  train, val, test = per_class_split_masks(labels, seed=seed, **WORDNET_SPLIT)
  graph = Graph(arrays['node_features'], arrays['senders'], arrays['receivers'], labels,
                train, val, test)
  return make_graph_dataset(
      'wordnet_nouns', graph, label_names=WORDNET_NOUN_CATEGORIES,
      feature_kind=f'gloss TF-IDF, {feature_dim}-d truncated SVD, standardised', source=path)


# ------------------------------------------------------------------------------------------
# Planetoid (Cora, CiteSeer, PubMed) from the files a user brings.

PLANETOID_FILES = ('x', 'tx', 'allx', 'y', 'ty', 'ally', 'graph', 'test.index')
PLANETOID_NUM_VAL = 500


class _PlanetoidUnpickler(pickle.Unpickler):
  """Unpickles only what Planetoid files hold: NumPy arrays, SciPy sparse matrices, dicts.

  Pickles can run code; these come from outside, so every other global is refused. Old
  module paths (Python 2's, numpy.core, scipy.sparse.csr) resolve to today's objects.
  """

  def find_class(self, module: str, name: str) -> Any:
    import collections  # pylint: disable=g-import-not-at-top
    import copyreg  # pylint: disable=g-import-not-at-top
    import codecs  # pylint: disable=g-import-not-at-top
    from scipy import sparse  # pylint: disable=g-import-not-at-top
    root = module.split('.')[0]
    if root == 'numpy':
      allowed = {'ndarray': np.ndarray, 'dtype': np.dtype,
                 '_reconstruct': np.empty(0).__reduce__()[0],
                 'scalar': np.float64(0).__reduce__()[0]}
      if name in allowed:
        return allowed[name]
    elif module == 'scipy.sparse' or module.startswith('scipy.sparse.'):
      if (name.endswith('_matrix') or name.endswith('_array')) and hasattr(sparse, name):
        return getattr(sparse, name)
    elif module in ('builtins', '__builtin__'):
      allowed = {'list': list, 'dict': dict, 'set': set, 'frozenset': frozenset,
                 'tuple': tuple, 'int': int, 'float': float, 'object': object,
                 'bytes': bytes, 'bytearray': bytearray, 'str': str}
      if name in allowed:
        return allowed[name]
    elif module == 'collections' and name in ('defaultdict', 'OrderedDict'):
      return getattr(collections, name)
    elif module in ('copyreg', 'copy_reg') and name == '_reconstructor':
      return copyreg._reconstructor  # pylint: disable=protected-access
    elif module == '_codecs' and name == 'encode':
      return codecs.encode
    raise pickle.UnpicklingError(f'refusing to load {module}.{name}: a Planetoid file holds '
                                 'only NumPy arrays, SciPy sparse matrices and dicts')


def _load_planetoid_pickle(path: str) -> Any:
  try:
    with open(path, 'rb') as f:
      # latin1: the files were pickled by Python 2, whose byte strings hold array data.
      return _PlanetoidUnpickler(f, encoding='latin1').load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
          IndexError) as e:
    raise DatasetError(f'{path} is not a readable Planetoid pickle ({type(e).__name__}: '
                       f'{e}); it is probably truncated or corrupt: get it again.') from e


def _dense(matrix: Any, path: str) -> np.ndarray:
  """A 2-D dense float64 array from a sparse matrix or array."""
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  array = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
  if array.ndim != 2:
    raise DatasetError(f'{path} holds an array of shape {array.shape}; a Planetoid matrix '
                       'is 2-D [rows, columns].')
  return array.astype(np.float64)


def _one_hot_labels(rows: np.ndarray) -> np.ndarray:
  """argmax of one-hot rows; -1 for a row with no 1 (a node without a label)."""
  return np.where(rows.max(axis=1) > 0, rows.argmax(axis=1), -1).astype(np.int32)


def load_planetoid(name: str, data_dir: str | None, *,
                   row_normalize: bool = True) -> GraphDataset:
  """Cora, CiteSeer or PubMed from the standard Planetoid files (Yang et al., 2016).

  Reads ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index} from `data_dir`: allx / ally
  are the features / one-hot labels of the first nodes (x / y, their first len(y) rows,
  are the training nodes), tx / ty those of the test nodes, in the order that test.index
  (one node id per line) lists them, and graph a dict of adjacency lists. Following the
  standard loaders, node ids run up to max(test.index); ids in that range which test.index
  leaves out (CiteSeer's isolated nodes) get zero features and no label (-1, in no mask).
  Edges are made undirected, without self-loops or duplicates.

  Features are row-normalised to sum 1 (as the GCN and DGI papers preprocess them) unless
  `row_normalize` is False; an all-zero row stays zero.

  The split is the standard one: train = the first len(y) nodes, validation = the next
  500, test = test.index.

  Args:
    name: 'cora', 'citeseer' or 'pubmed' (the <name> of the files).
    data_dir: the directory of the files.
    row_normalize: whether to divide each feature row by its sum.

  Returns:
    The `GraphDataset` named 'planetoid:<name>'.

  Raises:
    MissingDatasetError: a file is missing; the message lists the files expected.
    DatasetError: a file is malformed or the files do not fit together.
  """
  if data_dir is None:
    raise MissingDatasetError(
        f'{PLANETOID_PREFIX}{name}: no data_dir given. Planetoid datasets are not shipped in '
        'any package; pass data_dir= a directory holding '
        f'{", ".join(f"ind.{name}.{part}" for part in PLANETOID_FILES)}.')
  data_dir = os.fspath(data_dir)
  paths = {part: os.path.join(data_dir, f'ind.{name}.{part}') for part in PLANETOID_FILES}
  missing = [path for path in paths.values() if not os.path.isfile(path)]
  if missing:
    raise MissingDatasetError(
        f'{PLANETOID_PREFIX}{name}: missing {", ".join(missing)}. Planetoid datasets are not '
        'shipped in any package: put the eight standard files '
        f'{", ".join(f"ind.{name}.{part}" for part in PLANETOID_FILES)} (from the Planetoid '
        'or GCN repositories) in data_dir.')
  loaded = {part: _load_planetoid_pickle(paths[part])
            for part in PLANETOID_FILES if part != 'test.index'}
  try:
    with open(paths['test.index']) as f:
      test_index = np.array([int(line) for line in f if line.strip()], np.int64)
  except ValueError as e:
    raise DatasetError(f'{paths["test.index"]} is not a list of node ids, one a line '
                       f'({e}).') from e

  allx, tx = _dense(loaded['allx'], paths['allx']), _dense(loaded['tx'], paths['tx'])
  ally, ty = _dense(loaded['ally'], paths['ally']), _dense(loaded['ty'], paths['ty'])
  num_train = _dense(loaded['y'], paths['y']).shape[0]
  num_labelled = allx.shape[0]

  def check(condition: bool, what: str) -> None:
    if not condition:
      raise DatasetError(f'{PLANETOID_PREFIX}{name} in {data_dir}: {what}; the files do not '
                         'fit together as a Planetoid dataset.')

  check(ally.shape[0] == num_labelled, f'allx has {num_labelled} rows but ally {ally.shape[0]}')
  check(ty.shape[0] == tx.shape[0] == test_index.size,
        f'tx has {tx.shape[0]} rows, ty {ty.shape[0]}, test.index {test_index.size} ids')
  check(tx.shape[1] == allx.shape[1], f'tx has {tx.shape[1]} columns but allx {allx.shape[1]}')
  check(ty.shape[1] == ally.shape[1], f'ty has {ty.shape[1]} columns but ally {ally.shape[1]}')
  check(num_train + PLANETOID_NUM_VAL <= num_labelled,
        f'y has {num_train} rows; with {PLANETOID_NUM_VAL} validation nodes that is more '
        f'than the {num_labelled} rows of allx')
  check(test_index.size == 0 or int(test_index.min()) >= num_labelled,
        f'test.index holds node {int(test_index.min()) if test_index.size else 0}, one of '
        f'the first {num_labelled} (allx) nodes')
  check(np.unique(test_index).size == test_index.size, 'test.index repeats a node id')
  num_nodes = max(num_labelled + tx.shape[0],
                  int(test_index.max()) + 1 if test_index.size else 0)

  features = np.zeros((num_nodes, allx.shape[1]), np.float64)
  features[:num_labelled] = allx
  features[test_index] = tx
  labels = np.full(num_nodes, -1, np.int32)
  labels[:num_labelled] = _one_hot_labels(ally)
  labels[test_index] = _one_hot_labels(ty)
  if row_normalize:
    sums = features.sum(axis=1, keepdims=True)
    features = features / np.where(sums > 0, sums, 1.0)

  adjacency = loaded['graph']
  if not isinstance(adjacency, dict):
    raise DatasetError(f'{paths["graph"]} holds a {type(adjacency).__name__}; a Planetoid '
                       'graph is a dict {node: [neighbours]}.')
  sources, targets = [], []
  for node, neighbours in adjacency.items():
    neighbours = np.asarray(list(neighbours), np.int64)
    sources.append(np.full(neighbours.size, int(node), np.int64))
    targets.append(neighbours)
  sources = np.concatenate(sources) if sources else np.zeros(0, np.int64)
  targets = np.concatenate(targets) if targets else np.zeros(0, np.int64)
  if sources.size:
    low = min(int(sources.min()), int(targets.min()))
    high = max(int(sources.max()), int(targets.max()))
    check(low >= 0 and high < num_nodes,
          f'graph holds node ids in [{low}, {high}], outside the {num_nodes} nodes')
  senders, receivers = undirected_edges(sources, targets, num_nodes)

  train = np.zeros(num_nodes, bool)
  train[:num_train] = True
  val = np.zeros(num_nodes, bool)
  val[num_train:num_train + PLANETOID_NUM_VAL] = True
  test = np.zeros(num_nodes, bool)
  test[test_index] = True
  for mask_name, mask in (('train', train), ('validation', val), ('test', test)):
    check(np.all(labels[mask] >= 0),
          f'{int(np.sum(labels[mask] < 0))} {mask_name} nodes have an all-zero label row')
  graph = Graph(features.astype(np.float32), senders, receivers, labels, train, val, test)
  kind = 'bag of words' + (', row-normalised' if row_normalize else '')
  return make_graph_dataset(
      f'{PLANETOID_PREFIX}{name}', graph,
      label_names=tuple(f'class {i}' for i in range(ally.shape[1])),
      feature_kind=f'{kind} (Planetoid)', source=data_dir)


# ------------------------------------------------------------------------------------------
# A synthetic graph for tests.


def toy_graph(num_nodes: int = 64, num_classes: int = 4, feature_dim: int = 8,
              seed: int = 0) -> GraphDataset:
  """A tiny stochastic block model with class-correlated Gaussian features: a test fixture.

  Classes are balanced (node i has class i mod C, then shuffled). Two nodes are joined with
  probability 0.3 within a class and 0.02 across classes; a node's features are its class's
  mean (drawn from N(0, 1) per class) plus N(0, 1) noise. The split is stratified 50 / 25 /
  25 %. Everything is drawn from `np.random.default_rng(seed)`, so the graph is the same on
  every call. Fast and easy to learn on; not a benchmark.

  Args:
    num_nodes: N, at least 4 * num_classes (so every class is in every split).
    num_classes: C, at least 2.
    feature_dim: F.
    seed: seed of the graph, its features and its split.

  Returns:
    The `GraphDataset` named 'toy'.
  """
  if num_classes < 2 or num_nodes < 4 * num_classes or feature_dim < 1:
    raise ValueError(f'toy_graph needs num_classes >= 2, num_nodes >= 4 * num_classes and '
                     f'feature_dim >= 1; got num_nodes={num_nodes}, num_classes={num_classes},'
                     f' feature_dim={feature_dim}.')
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(num_nodes) % num_classes).astype(np.int32)
  same_class = labels[:, None] == labels[None, :]
  linked = np.triu(rng.random((num_nodes, num_nodes)) < np.where(same_class, 0.3, 0.02), 1)
  senders, receivers = undirected_edges(*np.nonzero(linked), num_nodes)
  means = rng.normal(size=(num_classes, feature_dim))
  features = (means[labels] + rng.normal(size=(num_nodes, feature_dim))).astype(np.float32)
  train, val, test = stratified_split_masks(labels, train_fraction=0.5, val_fraction=0.25,
                                            seed=seed)
  graph = Graph(features, senders, receivers, labels, train, val, test)
  return make_graph_dataset(
      'toy', graph, label_names=tuple(f'block {i}' for i in range(num_classes)),
      feature_kind='synthetic: class mean + Gaussian noise (stochastic block model)')


# ------------------------------------------------------------------------------------------
# By name.

GRAPH_DATASETS: tuple[str, ...] = (*GT_DATASETS, 'wordnet_nouns', 'toy')


def check_graph_dataset_name(name: str) -> None:
  """Raises ValueError, listing the valid names, unless `load_graph_dataset` accepts `name`."""
  if name in GRAPH_DATASETS:
    return
  if name.startswith(PLANETOID_PREFIX) and len(name) > len(PLANETOID_PREFIX):
    return
  raise ValueError(
      f'unknown graph dataset {name!r}. Valid names: {", ".join(GRAPH_DATASETS)}; or '
      f'"{PLANETOID_PREFIX}NAME" with data_dir= the directory of the Planetoid files '
      f'ind.NAME.* (NAME e.g. {", ".join(PLANETOID_NAMES)}).')


def load_graph_dataset(name: str, *, data_dir: str | None = None, feature_dim: int = 256,
                       seed: int = 0) -> GraphDataset:
  """Loads a graph dataset by name.

  Args:
    name: one of `GRAPH_DATASETS`, or 'planetoid:<name>' (e.g. 'planetoid:cora').
    data_dir: where the files are: for graph-tool networks the directory of the .gt.gz files
      (default $JSSL_DEBIAN_DATA/graph_tool_collection); for 'wordnet_nouns' the directory
      of data.noun (default /usr/share/wordnet); for Planetoid the directory of the
      ind.<name>.* files (required). 'toy' takes none.
    feature_dim: dimension of built features: 'wordnet_nouns' (SVD components) and 'toy'.
      The graph-tool networks (identity features, one per node) and Planetoid (its stored
      bag of words) keep their own and ignore it.
    seed: seed of the split (and of the whole toy graph). Fixed splits (Planetoid's) ignore
      it.

  Returns:
    The `GraphDataset`.

  Raises:
    ValueError: unknown name (the message lists the valid ones), or unusable options.
    MissingDatasetError: the data is not on this machine; the message says how to get it.
    DatasetError: the data is malformed; the message names the file.
  """
  check_graph_dataset_name(name)
  if name in GT_DATASETS:
    return load_gt_dataset(name, data_dir=data_dir, seed=seed)
  if name == 'wordnet_nouns':
    return load_wordnet_nouns(data_dir=data_dir, feature_dim=feature_dim, seed=seed)
  if name == 'toy':
    if data_dir is not None:
      raise ValueError(f'the toy graph is synthetic and takes no data_dir, got {data_dir!r}.')
    return toy_graph(feature_dim=feature_dim, seed=seed)
  return load_planetoid(name[len(PLANETOID_PREFIX):], data_dir)
