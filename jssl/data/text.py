"""Text datasets: offline corpora from Debian packages and TFDS text datasets, tokenised on the host.

Three datasets are read from files that `bash experiments/install_data.sh` puts on a machine
(nothing is downloaded at run time):

- 'austen_wordnet', the pre-training corpus: the six Jane Austen novels (Debian
  `r-cran-janeaustenr`, an R lazy-load database) and the glosses of WordNet 3.0 (Debian
  `wordnet-base`). Its *documents* are the Austen chapters and, per split, the WordNet glosses
  grouped by lexicographer file (noun.animal, verb.motion, ...). Each document is one stream of
  token ids cut into consecutive windows of `max_length`; every window comes with the window that
  follows it in the same document (`next_tokens`), from which the device builds BERT's
  next-sentence pairs. Its label is the source: the book (0-5) or 6 for WordNet.
- 'wordnet_glosses': gloss -> lexicographer category (45 classes).
- 'fortunes': fortune-cookie text (Debian `fortunes` + `fortunes-min`) -> category file (43).

Splits are fixed: an Austen chapter, a WordNet synset and a fortune go to train / validation /
test (90 / 5 / 5 %) by the CRC-32 of a stable key (`split_of`), so they are the same on every
machine and under every Python hash seed. A synset has the same split in 'austen_wordnet' and in
'wordnet_glosses', so a model pre-trained on the corpus never read a gloss it is probed on.

The WordPiece tokenizer (Hugging Face `tokenizers`, BERT normalisation) is trained on the train
split of the pre-training corpus only, deterministically, and saved in the cache directory
($JSSL_CACHE_DIR, default ~/.cache/jssl) as `tokenizers/<corpus>-wordpiece-<vocab>-<data>.json`,
where <data> fingerprints the data files (so a changed corpus never meets a stale vocabulary).
The labelled datasets use that tokenizer by default, so a model pre-trained on the corpus reads
them with its own vocabulary. Tokenised corpora are cached there too (`tokenized/*.npz`), so a
second load reads no text at all.

Arrays hold content ids only, padded with the pad id (0) at the end; the device adds [CLS] and
[SEP] (DESIGN.md: everything about an example's inputs beyond decoding happens there).
"""

from __future__ import annotations

import bz2
import dataclasses
import functools
import hashlib
import itertools
import lzma
import os
import re
import tempfile
import zlib
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from jssl.data.base import Dataset, DatasetError, MissingDatasetError, build_lock

TEXT_DATASETS: tuple[str, ...] = ('austen_wordnet', 'wordnet_glosses', 'fortunes')
PRETRAINING_CORPUS = 'austen_wordnet'

SPECIAL_TOKENS: tuple[str, ...] = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
CONTINUATION_PREFIX = '##'

INSTALL_COMMAND = 'bash experiments/install_data.sh'
AUSTEN_PACKAGE = 'r-cran-janeaustenr'
WORDNET_PACKAGE = 'wordnet-base'
FORTUNES_PACKAGE = 'fortunes + fortunes-min'
WORDNET_DIR = '/usr/share/wordnet'
FORTUNES_DIR = '/usr/share/games/fortunes'

# The objects of janeaustenr's lazy-load database, in the order of their labels 0..5.
AUSTEN_BOOKS: tuple[str, ...] = ('emma', 'mansfieldpark', 'northangerabbey', 'persuasion',
                                 'prideprejudice', 'sensesensibility')
WORDNET_LABEL = len(AUSTEN_BOOKS)  # the source label of a WordNet document in 'austen_wordnet'
AUSTEN_WORDNET_LABELS: tuple[str, ...] = AUSTEN_BOOKS + ('wordnet',)

# WordNet's data files; the POS letter of each is part of a synset's key (satellite adjectives,
# ss_type 's', live in data.adj and have its letter 'a').
WORDNET_FILES: tuple[tuple[str, str], ...] = (
    ('data.noun', 'n'), ('data.verb', 'v'), ('data.adj', 'a'), ('data.adv', 'r'))

# Lexicographer file names by number, from the lex_filenum table of WordNet's lexnames(5WN);
# Debian's wordnet-base ships no `lexnames` file.
LEXNAMES: tuple[str, ...] = (
    'adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.act', 'noun.animal', 'noun.artifact',
    'noun.attribute', 'noun.body', 'noun.cognition', 'noun.communication', 'noun.event',
    'noun.feeling', 'noun.food', 'noun.group', 'noun.location', 'noun.motive', 'noun.object',
    'noun.person', 'noun.phenomenon', 'noun.plant', 'noun.possession', 'noun.process',
    'noun.quantity', 'noun.relation', 'noun.shape', 'noun.state', 'noun.substance', 'noun.time',
    'verb.body', 'verb.change', 'verb.cognition', 'verb.communication', 'verb.competition',
    'verb.consumption', 'verb.contact', 'verb.creation', 'verb.emotion', 'verb.motion',
    'verb.perception', 'verb.possession', 'verb.social', 'verb.stative', 'verb.weather',
    'adj.ppl')

SPLITS: tuple[str, ...] = ('train', 'validation', 'test')
# A key goes to train when crc32(key) % 100 < 90, to validation when < 95, else to test.
_SPLIT_BOUNDS = (90, 95)

# Part of every cache key: bump it whenever parsing, splitting or tokenising changes, so that
# caches written by older code are never read.
_FORMAT_VERSION = 1
# Texts handed to the Rust tokenizer at a time (bounds the memory of its Encoding objects).
_ENCODE_CHUNK = 8192


def split_of(key: str) -> int:
  """The fixed split of an item: 0 train (90 %), 1 validation (5 %), 2 test (5 %).

  Args:
    key: a stable name of the item, e.g. 'austen/emma/3' or 'wordnet/n/00001740'.

  Returns:
    0, 1 or 2, from the CRC-32 of the key's UTF-8 bytes (the same on every machine, unlike
    Python's salted `hash`).
  """
  bucket = zlib.crc32(key.encode('utf-8')) % 100
  return 0 if bucket < _SPLIT_BOUNDS[0] else 1 if bucket < _SPLIT_BOUNDS[1] else 2


def debian_data_dir() -> str:
  """Where install_data.sh unpacks data-only Debian packages: $JSSL_DEBIAN_DATA or
  ~/.local/share/jssl/debian."""
  return os.environ.get('JSSL_DEBIAN_DATA') or os.path.expanduser('~/.local/share/jssl/debian')


def cache_dir() -> str:
  """Where tokenizers and tokenised corpora are cached: $JSSL_CACHE_DIR or ~/.cache/jssl."""
  return os.environ.get('JSSL_CACHE_DIR') or os.path.expanduser('~/.cache/jssl')


def _missing(path: str, package: str, what: str) -> MissingDatasetError:
  return MissingDatasetError(
      f'{what} not found: {path} does not exist. It comes from the Debian package {package}; '
      f'run `{INSTALL_COMMAND}` (from the jssl repository) to install it.')


def _write_atomically(path: str, write: Callable[[Any], None]) -> None:
  """Writes a file through `write(file)` into a temporary file that is then renamed onto
  `path`, so concurrent readers (other processes, xdist workers) never see half a file."""
  directory = os.path.dirname(path)
  try:
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=os.path.basename(path))
  except OSError as e:
    raise OSError(f'cannot write {path} ({e}); set $JSSL_CACHE_DIR to a writable '
                  'directory.') from e
  try:
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a cache is not
    with os.fdopen(fd, 'wb') as f:
      write(f)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


class Tokenizer:
  """A Hugging Face `tokenizers` tokenizer with the five special tokens jssl's text models use.

  `encode` returns content ids only: [CLS] / [SEP] / [MASK] are placed by the device.

  Attributes:
    vocab_size: number of ids, special tokens included (the embedding table's size).
    pad_id: id of [PAD]; always 0, so zero-initialised arrays are padding.
    unk_id: id of [UNK], which stands for a word no vocabulary piece covers.
    cls_id: id of [CLS].
    sep_id: id of [SEP].
    mask_id: id of [MASK].
    special_ids: (pad_id, unk_id, cls_id, sep_id, mask_id).
    path: the JSON file the tokenizer was loaded from or saved to, or None.
  """

  def __init__(self, tokenizer: Any, path: str | None = None):
    """Wraps a `tokenizers.Tokenizer`.

    Its padding and truncation are switched off (on this object), so ids are never padded or
    cut behind the caller's back.

    Args:
      tokenizer: a `tokenizers.Tokenizer` whose vocabulary holds [PAD] (as id 0), [UNK], [CLS],
        [SEP] and [MASK].
      path: where it is stored, for messages and cache keys.

    Raises:
      ValueError: a special token is missing, or [PAD] is not 0.
    """
    ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    missing = [token for token, i in zip(SPECIAL_TOKENS, ids) if i is None]
    where = f' ({path})' if path else ''
    if missing:
      raise ValueError(f'the tokenizer{where} lacks the special tokens {missing}; jssl needs '
                       f'all of {list(SPECIAL_TOKENS)}.')
    if ids[0] != 0:
      raise ValueError(f'[PAD] has id {ids[0]} in the tokenizer{where}; jssl pads with 0, '
                       'so [PAD] must be id 0.')
    tokenizer.no_padding()
    tokenizer.no_truncation()
    self._tokenizer = tokenizer
    self.path = path
    self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = ids
    self.special_ids: tuple[int, ...] = tuple(ids)
    self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)

  def __repr__(self) -> str:
    return f'Tokenizer(vocab_size={self.vocab_size}, path={self.path!r})'

  @property
  def backend(self) -> Any:
    """The wrapped `tokenizers.Tokenizer`."""
    return self._tokenizer

  @functools.cached_property
  def fingerprint(self) -> str:
    """SHA-256 of the tokenizer's JSON: what cached tokenisations are keyed by."""
    return hashlib.sha256(self.to_json().encode('utf-8')).hexdigest()

  def to_json(self) -> str:
    """The tokenizer as Hugging Face JSON (what `load_tokenizer` reads)."""
    return self._tokenizer.to_str(pretty=True)

  def encode(self, text: str) -> list[int]:
    """Token ids of `text`, without special tokens."""
    return self._tokenizer.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """`encode` of every text (in parallel in Rust), in order."""
    ids = []
    for start in range(0, len(texts), _ENCODE_CHUNK):
      chunk = list(texts[start:start + _ENCODE_CHUNK])
      ids.extend(e.ids for e in self._tokenizer.encode_batch(chunk, add_special_tokens=False))
    return ids

  def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
    """Text of `ids` ("##" pieces joined to their word); padding and other special tokens are
    left out unless `skip_special_tokens` is False."""
    return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)


def _wordpiece(vocab: dict[str, int] | None = None) -> Any:
  """An (untrained, or with `vocab`) BERT-style WordPiece tokenizer: NFD + lowercase + accents
  stripped + control characters removed, split on whitespace and punctuation."""
  from tokenizers import Tokenizer as HfTokenizer  # pylint: disable=g-import-not-at-top
  from tokenizers import decoders, models, normalizers, pre_tokenizers  # pylint: disable=g-import-not-at-top
  tokenizer = HfTokenizer(models.WordPiece(
      vocab, unk_token='[UNK]', continuing_subword_prefix=CONTINUATION_PREFIX,
      max_input_chars_per_word=100))
  tokenizer.normalizer = normalizers.BertNormalizer(
      clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
  tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tokenizer.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX)
  return tokenizer


def _train_vocab(texts: list[str], vocab_size: int, initial: Sequence[str]) -> dict[str, int]:
  """Runs HF's WordPiece trainer; `initial` tokens get ids 0, 1, ... in this order."""
  from tokenizers import trainers  # pylint: disable=g-import-not-at-top
  tokenizer = _wordpiece()
  trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size, special_tokens=list(initial), show_progress=False,
      continuing_subword_prefix=CONTINUATION_PREFIX)
  tokenizer.train_from_iterator(texts, trainer=trainer)
  return tokenizer.get_vocab(with_added_tokens=False)


def _base_vocab(texts: list[str]) -> list[str]:
  """Sorted characters and "##" characters of `texts` (the trainer's merge-free vocabulary)."""
  return sorted(token for token in _train_vocab(texts, 0, SPECIAL_TOKENS)
                if token not in SPECIAL_TOKENS)


def _is_character(token: str) -> bool:
  return len(token.removeprefix(CONTINUATION_PREFIX)) == 1


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, path: str) -> Tokenizer:
  """Trains a BERT-style WordPiece tokenizer on `texts` and saves it as JSON at `path`.

  Deterministic: the same texts give a byte-identical file, whatever the process or thread
  count. HF's trainer alone is not: it numbers the "##x" continuation characters in the order
  of a randomly seeded hash map, and merges of equal count are then ordered by those numbers.
  So a first, merge-free pass collects the base vocabulary (the special tokens, every
  character and every "##" character), and the real pass is given that base, sorted, as its
  first tokens, which fixes every id the merges depend on. The result is rebuilt as a plain
  WordPiece tokenizer with only the five special tokens as added tokens.

  Args:
    texts: the training texts (the training split only).
    vocab_size: wanted number of ids, special tokens included; the trainer stops earlier when
      the texts offer no more merges.
    path: the JSON file to write (its directory is created).

  Returns:
    The trained `Tokenizer`, with `path` set.

  Raises:
    ValueError: no texts, or `vocab_size` is below the base vocabulary of these texts (the
      message gives that minimum).
  """
  texts = list(texts)
  if not any(text.strip() for text in texts):
    raise ValueError('train_tokenizer needs at least one non-empty text.')
  # The base vocabulary only depends on which words occur, not how often: the merge-free pass
  # reads each distinct whitespace-separated piece once (~50x less text than the corpus).
  pieces = sorted({piece for text in texts for piece in text.split()})
  base = _base_vocab([' '.join(pieces[i:i + 4096]) for i in range(0, len(pieces), 4096)])
  minimum = len(SPECIAL_TOKENS) + len(base)
  if vocab_size < minimum:
    continuations = sum(token.startswith(CONTINUATION_PREFIX) for token in base)
    raise ValueError(
        f'vocab_size={vocab_size} is too small for these texts: the minimum is {minimum} (the '
        f'{len(SPECIAL_TOKENS)} special tokens, {len(base) - continuations} characters and '
        f'{continuations} "{CONTINUATION_PREFIX}" continuation characters); choose '
        f'vocab_size >= {minimum}.')
  vocab = _train_vocab(texts, vocab_size, SPECIAL_TOKENS + tuple(base))
  if any(_is_character(token) for token, i in vocab.items() if i >= minimum):
    # Python's and Rust's ideas of whitespace differ on a few control characters, so the
    # pieces can miss a character the real pass saw: redo the base pass on the texts.
    base = _base_vocab(texts)
    minimum = len(SPECIAL_TOKENS) + len(base)
    if vocab_size < minimum:
      return train_tokenizer(texts, vocab_size=vocab_size, path=path)  # raises ValueError
    vocab = _train_vocab(texts, vocab_size, SPECIAL_TOKENS + tuple(base))
  if [vocab.get(token) for token in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
    raise RuntimeError(f'the WordPiece trainer did not number {SPECIAL_TOKENS} 0..4 '
                       '(a tokenizers version jssl was not tested with?).')
  backend = _wordpiece(vocab)
  backend.add_special_tokens(list(SPECIAL_TOKENS))
  tokenizer = Tokenizer(backend, os.fspath(path))
  content = tokenizer.to_json().encode('utf-8')
  _write_atomically(os.fspath(path), lambda f: f.write(content))
  return tokenizer


def load_tokenizer(path: str) -> Tokenizer:
  """Reads a tokenizer saved by `train_tokenizer` (or any HF tokenizer JSON with jssl's five
  special tokens and [PAD] = 0).

  Raises:
    FileNotFoundError: no file at `path`.
    DatasetError: the file is not a usable tokenizer (the message names it and says why).
  """
  from tokenizers import Tokenizer as HfTokenizer  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no tokenizer file at {path}')
  try:
    with open(path, encoding='utf-8') as f:
      backend = HfTokenizer.from_str(f.read())
    return Tokenizer(backend, path)
  except Exception as e:  # HF raises plain Exception subclasses for malformed JSON
    raise DatasetError(f'{path} is not a usable tokenizer file: {e}') from e


def _cached_tokenizer(corpus: str, vocab_size: int, data_fingerprint: str,
                      train_texts: Callable[[], list[str]]) -> Tokenizer:
  """The corpus's tokenizer from the cache, trained (on `train_texts()`) and saved if absent."""
  path = os.path.join(cache_dir(), 'tokenizers',
                      f'{corpus}-wordpiece-{vocab_size}-{data_fingerprint[:12]}.json')
  with build_lock(path):
    if os.path.isfile(path):
      try:
        return load_tokenizer(path)
      except DatasetError as e:
        raise DatasetError(f'{e}\nThe cached tokenizer {path} is damaged: delete it '
                           f'(rm {path}) and it will be trained again.') from e
    return train_tokenizer(train_texts(), vocab_size=vocab_size, path=path)


# ---------------------------------------------------------------------------------------------
# Jane Austen: R lazy-load database
# ---------------------------------------------------------------------------------------------


def _r_decompress(blob: bytes, compression: int, where: str) -> bytes:
  """One object's bytes as R's lazyLoadDBinsertValue stored them (compress = 0, 1, 2 or 3).

  compress=1: a 4-byte big-endian length, then a zlib stream. compress=2 / 3: the length,
  then a type byte ('0' stored, '1' zlib, '2' bzip2, 'Z' xz) and the data. 0: as serialised.
  """
  if compression == 0:
    return blob
  if len(blob) < 4:
    raise DatasetError(f'{where}: {len(blob)} bytes, too short for the 4-byte length header')
  expected = int.from_bytes(blob[:4], 'big')
  try:
    if compression == 1:
      data = zlib.decompress(blob[4:])
    elif compression in (2, 3):
      kind, payload = blob[4:5], blob[5:]
      decompress = {b'0': bytes, b'1': zlib.decompress, b'2': bz2.decompress,
                    b'Z': lzma.decompress}.get(kind)
      if decompress is None:
        raise DatasetError(f'{where}: unknown compression type byte {kind!r}')
      data = decompress(payload)
    else:
      raise DatasetError(f'{where}: unknown compression {compression} in the index')
  except (zlib.error, OSError, lzma.LZMAError, ValueError, EOFError) as e:
    if isinstance(e, DatasetError):
      raise
    raise DatasetError(f'{where}: the compressed object does not decompress ({e})') from e
  if len(data) != expected:
    raise DatasetError(f'{where}: decompressed to {len(data)} bytes, the header says {expected}')
  return data


def _parse_r(data: bytes, where: str) -> Any:
  """An R-serialised object (XDR, with or without gzip/bzip2/xz) as Python, via `rdata`."""
  import rdata  # pylint: disable=g-import-not-at-top  (imports pandas: slow)
  try:
    return rdata.conversion.convert(rdata.parser.parse_data(data, extension='.rds'))
  except Exception as e:  # rdata raises assorted errors (ValueError, NotImplementedError, ...)
    raise DatasetError(f'{where}: not a readable R serialisation ({type(e).__name__}: {e})') from e


def read_lazyload_index(rdx_path: str) -> tuple[dict[str, tuple[int, int]], int]:
  """Reads the index (.rdx) of an R lazy-load database.

  The index is an R list serialised and gzip-compressed (or, in older databases, stored like an
  object: 4-byte length + zlib) with 'variables' (name -> (offset, length) in the .rdb),
  'references' (environments; not read here) and 'compressed' (TRUE / 1: zlib, 2: bzip2,
  3: xz, FALSE: none).

  Args:
    rdx_path: the .rdx file.

  Returns:
    ({object name: (offset, length)}, compression 0..3).

  Raises:
    DatasetError: naming the file, when it is not such an index.
  """
  with open(rdx_path, 'rb') as f:
    raw = f.read()
  if raw[:2] == b'\x1f\x8b' or raw[:3] == b'BZh' or raw[:6] == b'\xfd7zXZ\x00':
    data = raw  # rdata decompresses these itself
  else:
    data = _r_decompress(raw, 1, rdx_path)
  index = _parse_r(data, rdx_path)
  if not isinstance(index, dict) or 'variables' not in index or 'compressed' not in index:
    raise DatasetError(f'{rdx_path} is not an R lazy-load index: it holds '
                       f'{type(index).__name__} {str(index)[:120]}, not a list with '
                       '"variables" and "compressed".')
  variables = {}
  for name, location in index['variables'].items():
    location = np.asarray(location)
    if location.shape != (2,) or not np.issubdtype(location.dtype, np.integer):
      raise DatasetError(f'{rdx_path}: the location of {name!r} is {location!r}, not '
                         '(offset, length)')
    variables[str(name)] = (int(location[0]), int(location[1]))
  compressed = np.asarray(index['compressed']).reshape(-1)
  if compressed.size != 1:
    raise DatasetError(f'{rdx_path}: "compressed" is {compressed!r}, not one value')
  compression = int(compressed[0])
  return variables, compression


def read_lazyload_object(rdb_path: str, name: str, location: tuple[int, int],
                         compression: int) -> Any:
  """Reads one object of an R lazy-load database (.rdb) at the index's (offset, length).

  Returns:
    The object converted by `rdata` (a character vector becomes a NumPy array of str).

  Raises:
    DatasetError: naming the file and object, when the bytes are not there or do not parse.
  """
  offset, length = location
  with open(rdb_path, 'rb') as f:
    f.seek(offset)
    blob = f.read(length)
  where = f'{rdb_path}, object {name!r} at offset {offset}'
  if offset < 0 or len(blob) != length:
    raise DatasetError(f'{where}: the index says {length} bytes but the file has '
                       f'{max(len(blob), 0)} there (truncated?)')
  return _parse_r(_r_decompress(blob, compression, where), where)


def austen_dir(data_dir: str | None = None) -> str:
  """The directory of janeaustenr's Rdata.rdb / Rdata.rdx: `data_dir`/janeaustenr, by default
  under `debian_data_dir()`."""
  return os.path.join(debian_data_dir() if data_dir is None else data_dir, 'janeaustenr')


def read_austen_lines(directory: str | None = None) -> dict[str, list[str]]:
  """The six novels as lines, from janeaustenr's lazy-load database.

  Args:
    directory: holding Rdata.rdx and Rdata.rdb; None: `austen_dir()`.

  Returns:
    {book: lines} in `AUSTEN_BOOKS` order (73,422 lines in Debian's r-cran-janeaustenr).

  Raises:
    MissingDatasetError: a file is missing (the message says how to install it).
    DatasetError: a file is malformed or lacks a book.
  """
  directory = austen_dir() if directory is None else directory
  rdx, rdb = (os.path.join(directory, 'Rdata' + ext) for ext in ('.rdx', '.rdb'))
  for path in (rdx, rdb):
    if not os.path.isfile(path):
      raise _missing(path, AUSTEN_PACKAGE, 'The Jane Austen novels')
  variables, compression = read_lazyload_index(rdx)
  books = {}
  for book in AUSTEN_BOOKS:
    if book not in variables:
      raise DatasetError(f'{rdx} has no object {book!r} (it has {sorted(variables)}); it is not '
                         f'the index of {AUSTEN_PACKAGE}. Run `{INSTALL_COMMAND}` again.')
    lines = read_lazyload_object(rdb, book, variables[book], compression)
    if not isinstance(lines, np.ndarray) or lines.ndim != 1 or lines.dtype.kind not in 'UO':
      raise DatasetError(f'{rdb}: object {book!r} is {type(lines).__name__} '
                         f'{getattr(lines, "dtype", "")}, not a character vector of lines')
    books[book] = ['' if line is None else str(line) for line in lines]
  return books


def austen_chapters(lines: Sequence[str]) -> list[list[str]]:
  """Cuts one novel's lines into chapters of paragraphs.

  A line starting with "CHAPTER" or "Chapter" begins a chapter (the heading itself is not
  kept); paragraphs are runs of non-blank lines, stripped and joined by single spaces. What
  precedes the first heading (title page, preface) is chapter 0, possibly empty.

  Args:
    lines: the novel's lines.

  Returns:
    [paragraphs of chapter 0, paragraphs of chapter 1, ...].
  """
  chapters: list[list[str]] = [[]]
  paragraph: list[str] = []

  def flush():
    if paragraph:
      chapters[-1].append(' '.join(paragraph))
      paragraph.clear()

  for line in lines:
    if line.startswith(('CHAPTER', 'Chapter')):
      flush()
      chapters.append([])
    elif line.strip():
      paragraph.append(line.strip())
    else:
      flush()
  flush()
  return chapters


def read_austen(directory: str | None = None) -> list[tuple[str, list[str]]]:
  """The novels as documents: [(book, paragraphs)] for every chapter (chapter 0 of each book
  is its front matter), books in `AUSTEN_BOOKS` order. Raises as `read_austen_lines`."""
  return [(book, chapter) for book, lines in read_austen_lines(directory).items()
          for chapter in austen_chapters(lines)]


# ---------------------------------------------------------------------------------------------
# WordNet
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Synset:
  """One WordNet synset.

  Attributes:
    offset: its byte offset in its data file (the synset's id there).
    pos: the POS letter of its data file: 'n', 'v', 'a' (satellites included) or 'r'.
    ss_type: the synset type of the line: 'n', 'v', 'a', 's' (adjective satellite) or 'r'.
    lex_filenum: its lexicographer file number, 0..44 (index of `LEXNAMES`).
    lemmas: its words, '_' read as ' ', adjective markers such as '(p)' removed.
    gloss: its definition and examples.
  """

  offset: int
  pos: str
  ss_type: str
  lex_filenum: int
  lemmas: tuple[str, ...]
  gloss: str

  @property
  def lexname(self) -> str:
    """The lexicographer category, e.g. 'noun.animal'."""
    return LEXNAMES[self.lex_filenum]

  @property
  def key(self) -> str:
    """Stable name: 'wordnet/<pos>/<8-digit offset>', what its split is drawn from."""
    return f'wordnet/{self.pos}/{self.offset:08d}'


_ADJECTIVE_MARKER = re.compile(r'\((?:a|p|ip)\)$')


def _parse_synset(line: str, pos: str, path: str, line_number: int) -> Synset:
  """One synset line of a WordNet data file (wndb(5WN)):
  offset lex_filenum ss_type w_cnt (word lex_id)*w_cnt p_cnt (symbol offset pos source/target)*
  p_cnt [f_cnt (+ f_num w_num)*f_cnt, verbs only] | gloss."""

  def malformed(what: str) -> DatasetError:
    return DatasetError(
        f'{path}, line {line_number}: not a WordNet synset line ({what}): {line[:100]!r}. '
        f'The file is truncated or corrupt; reinstall {WORDNET_PACKAGE} '
        f'(`{INSTALL_COMMAND}`, or apt-get install --reinstall {WORDNET_PACKAGE}).')

  bar = line.find('|')
  if bar < 0:
    raise malformed('no "|" before the gloss')
  fields = line[:bar].split()
  try:
    offset, lex_filenum, ss_type = int(fields[0]), int(fields[1]), fields[2]
    w_cnt = int(fields[3], 16)
    words = fields[4:4 + 2 * w_cnt:2]
    end = 4 + 2 * w_cnt
    p_cnt = int(fields[end])
    end += 1 + 4 * p_cnt
    if ss_type == 'v':
      f_cnt = int(fields[end])
      end += 1 + 3 * f_cnt
  except (IndexError, ValueError) as e:
    raise malformed(f'fields do not follow the format: {e}') from e
  if end != len(fields):
    raise malformed(f'its counts account for {end} fields before "|", it has {len(fields)}')
  if len(words) != w_cnt or w_cnt == 0:
    raise malformed(f'w_cnt is {w_cnt} but {len(words)} words follow')
  if ss_type not in ('n', 'v', 'a', 's', 'r'):
    raise malformed(f'unknown ss_type {ss_type!r}')
  if not 0 <= lex_filenum < len(LEXNAMES):
    raise malformed(f'lex_filenum {lex_filenum} is not in 0..{len(LEXNAMES) - 1}')
  lemmas = tuple(_ADJECTIVE_MARKER.sub('', word).replace('_', ' ') for word in words)
  return Synset(offset=offset, pos=pos, ss_type=ss_type, lex_filenum=lex_filenum,
                lemmas=lemmas, gloss=line[bar + 1:].strip())


def parse_wordnet_data(path: str, pos: str) -> list[Synset]:
  """Reads one WordNet data file (data.noun, ...): its synsets in file order.

  Lines starting with two spaces are the licence header and are skipped.

  Args:
    path: the file.
    pos: its POS letter ('n', 'v', 'a', 'r'), recorded in each synset.

  Raises:
    DatasetError: naming the file and line, for a line not in the format.
  """
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise DatasetError(f'{path} is not UTF-8 text ({e}); reinstall {WORDNET_PACKAGE}.') from e
  synsets = []
  for line_number, line in enumerate(text.split('\n'), 1):
    if line.startswith('  ') or not line.strip():
      continue
    synsets.append(_parse_synset(line, pos, path, line_number))
  return synsets


def read_wordnet(directory: str | None = None) -> list[Synset]:
  """Every synset of data.noun, data.verb, data.adj, data.adv (in this order).

  Args:
    directory: WordNet's dict directory; None: /usr/share/wordnet (Debian wordnet-base).

  Returns:
    The synsets (117,659 in WordNet 3.0).

  Raises:
    MissingDatasetError: a data file is missing.
    DatasetError: a data file is malformed.
  """
  directory = WORDNET_DIR if directory is None else directory
  synsets = []
  for name, pos in WORDNET_FILES:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
      raise _missing(path, WORDNET_PACKAGE, 'WordNet')
    synsets.extend(parse_wordnet_data(path, pos))
  return synsets


# ---------------------------------------------------------------------------------------------
# Fortunes
# ---------------------------------------------------------------------------------------------


def parse_fortune_file(path: str) -> list[str]:
  """The texts of one fortune file: separated by lines holding only '%', trailing whitespace
  and surrounding blank lines removed, empty ones skipped.

  Raises:
    DatasetError: the file is not UTF-8.
  """
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    content = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise DatasetError(f'{path} is not a UTF-8 fortune file ({e}); reinstall '
                       f'{FORTUNES_PACKAGE} (`{INSTALL_COMMAND}`).') from e
  texts, lines = [], []
  for line in content.split('\n') + ['%']:
    if line.rstrip('\r') == '%':
      text = '\n'.join(lines).strip('\n').rstrip()
      if text.strip():
        texts.append(text)
      lines = []
    else:
      lines.append(line.rstrip('\r'))
  return texts


def fortune_files(directory: str) -> dict[str, str]:
  """{category: path} of the fortune files of a directory, sorted: every regular file except
  the strfile indexes (.dat), the .u8 links and hidden files; subdirectories (such as the
  offensive off/) are not entered."""
  files = {}
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    if (name.startswith('.') or name.endswith(('.dat', '.u8')) or os.path.islink(path)
        or not os.path.isfile(path)):
      continue
    files[name] = path
  return files


def read_fortunes(directory: str | None = None) -> dict[str, list[str]]:
  """Every fortune by category (the file name), categories sorted.

  Args:
    directory: None: /usr/share/games/fortunes (Debian fortunes + fortunes-min: 43 files,
      15,217 texts, the counts their strfile .dat indexes give).

  Raises:
    MissingDatasetError: the directory is missing or holds no fortune file.
    DatasetError: a file is not UTF-8.
  """
  directory = FORTUNES_DIR if directory is None else directory
  if not os.path.isdir(directory):
    raise _missing(directory, FORTUNES_PACKAGE, 'The fortunes')
  files = fortune_files(directory)
  if not files:
    raise MissingDatasetError(f'{directory} holds no fortune file; they come from the Debian '
                              f'packages {FORTUNES_PACKAGE}: run `{INSTALL_COMMAND}`.')
  fortunes = {name: parse_fortune_file(path) for name, path in files.items()}
  return {name: texts for name, texts in fortunes.items() if texts}


# ---------------------------------------------------------------------------------------------
# Corpora: texts with splits, documents and labels
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataPaths:
  """Where the three corpora are read from."""

  austen: str    # directory of Rdata.rdb / Rdata.rdx
  wordnet: str   # directory of data.noun, data.verb, data.adj, data.adv
  fortunes: str  # directory of the fortune files

  @classmethod
  def from_data_dir(cls, data_dir: str | None = None) -> DataPaths:
    """`data_dir`/janeaustenr, `data_dir`/wordnet and `data_dir`/fortunes; with None, where
    install_data.sh puts them: `austen_dir()`, /usr/share/wordnet, /usr/share/games/fortunes."""
    if data_dir is None:
      return cls(austen=austen_dir(), wordnet=WORDNET_DIR, fortunes=FORTUNES_DIR)
    data_dir = os.fspath(data_dir)
    return cls(austen=os.path.join(data_dir, 'janeaustenr'),
               wordnet=os.path.join(data_dir, 'wordnet'),
               fortunes=os.path.join(data_dir, 'fortunes'))


@dataclasses.dataclass(frozen=True)
class _Units:
  """A corpus as texts ("units": paragraphs, glosses, fortunes) in document order."""

  texts: list[str]
  document: np.ndarray  # int64 [T]: the document of each unit; a document's units are adjacent
  split: np.ndarray     # int8 [T]: 0 train, 1 validation, 2 test
  label: np.ndarray     # int32 [T]
  label_names: tuple[str, ...]


def _units(texts, document, split, label, label_names) -> _Units:
  return _Units(list(texts), np.asarray(document, np.int64).reshape(-1),
                np.asarray(split, np.int8).reshape(-1), np.asarray(label, np.int32).reshape(-1),
                tuple(label_names))


def _austen_wordnet_units(paths: DataPaths) -> _Units:
  """Austen chapters (split per chapter) and WordNet glosses (split per synset, grouped per
  split by lexicographer file into documents)."""
  texts, document, split, label = [], [], [], []

  def add(unit_texts: Sequence[str], unit_split: int, unit_label: int) -> None:
    doc = document[-1] + 1 if document else 0
    texts.extend(unit_texts)
    document.extend([doc] * len(unit_texts))
    split.extend([unit_split] * len(unit_texts))
    label.extend([unit_label] * len(unit_texts))

  chapter_index: dict[str, int] = {}
  for book, paragraphs in read_austen(paths.austen):
    index = chapter_index[book] = chapter_index.get(book, -1) + 1
    add(paragraphs, split_of(f'austen/{book}/{index}'), AUSTEN_BOOKS.index(book))
  groups: dict[tuple[int, int], list[str]] = {}
  for synset in read_wordnet(paths.wordnet):
    groups.setdefault((split_of(synset.key), synset.lex_filenum), []).append(synset.gloss)
  for (group_split, _), glosses in sorted(groups.items()):
    add(glosses, group_split, WORDNET_LABEL)
  return _units(texts, document, split, label, AUSTEN_WORDNET_LABELS)


def _wordnet_gloss_units(paths: DataPaths) -> _Units:
  synsets = read_wordnet(paths.wordnet)
  return _units([s.gloss for s in synsets], np.arange(len(synsets)),
                [split_of(s.key) for s in synsets], [s.lex_filenum for s in synsets], LEXNAMES)


def _fortune_units(paths: DataPaths) -> _Units:
  fortunes = read_fortunes(paths.fortunes)
  texts, split, label = [], [], []
  for category, category_texts in enumerate(fortunes.values()):
    for text in category_texts:
      texts.append(text)
      split.append(split_of('fortunes/' + text))  # by content: duplicates share a split
      label.append(category)
  return _units(texts, np.arange(len(texts)), split, label, tuple(fortunes))


_UNITS: dict[str, Callable[[DataPaths], _Units]] = {
    'austen_wordnet': _austen_wordnet_units,
    'wordnet_glosses': _wordnet_gloss_units,
    'fortunes': _fortune_units,
}


def _data_files(name: str, paths: DataPaths) -> list[str]:
  """The files a corpus is read from; MissingDatasetError for the first one absent."""
  files = []
  if name == 'austen_wordnet':
    for ext in ('.rdx', '.rdb'):
      path = os.path.join(paths.austen, 'Rdata' + ext)
      if not os.path.isfile(path):
        raise _missing(path, AUSTEN_PACKAGE, 'The Jane Austen novels')
      files.append(path)
  if name in ('austen_wordnet', 'wordnet_glosses'):
    for file_name, _ in WORDNET_FILES:
      path = os.path.join(paths.wordnet, file_name)
      if not os.path.isfile(path):
        raise _missing(path, WORDNET_PACKAGE, 'WordNet')
      files.append(path)
  if name == 'fortunes':
    if not os.path.isdir(paths.fortunes):
      raise _missing(paths.fortunes, FORTUNES_PACKAGE, 'The fortunes')
    files.extend(fortune_files(paths.fortunes).values())
  return files


def _fingerprint(name: str, files: Sequence[str]) -> str:
  """SHA-256 over the corpus name, the format version and every file's name and bytes."""
  digest = hashlib.sha256(f'{name}\0{_FORMAT_VERSION}\0'.encode())
  for path in files:
    with open(path, 'rb') as f:
      content = f.read()
    digest.update(f'{os.path.basename(path)}\0{len(content)}\0'.encode())
    digest.update(content)
  return digest.hexdigest()


def pretraining_tokenizer(*, vocab_size: int, data_dir: str | None = None) -> Tokenizer:
  """The tokenizer of 'austen_wordnet': trained on its train split, cached (see module doc).

  Args:
    vocab_size: its number of ids (special tokens included).
    data_dir: as for `load_text_dataset`.

  Raises:
    MissingDatasetError / DatasetError: the corpus or the cached file is missing / unusable.
    ValueError: vocab_size below the corpus's base vocabulary.
  """
  paths = DataPaths.from_data_dir(data_dir)
  return _corpus_tokenizer(paths, vocab_size, functools.cache(
      lambda: _austen_wordnet_units(paths)))


def _corpus_tokenizer(paths: DataPaths, vocab_size: int,
                      units: Callable[[], _Units]) -> Tokenizer:
  fingerprint = _fingerprint(PRETRAINING_CORPUS, _data_files(PRETRAINING_CORPUS, paths))

  def train_texts() -> list[str]:
    corpus = units()
    return [text for text, split in zip(corpus.texts, corpus.split) if split == 0]

  return _cached_tokenizer(PRETRAINING_CORPUS, vocab_size, fingerprint, train_texts)


@dataclasses.dataclass(frozen=True)
class _Tokenized:
  """A corpus's units as one flat id array (unit u is ids[starts[u]:starts[u] + lengths[u]])."""

  ids: np.ndarray       # int32 [total]
  lengths: np.ndarray   # int64 [T]
  document: np.ndarray  # int64 [T]
  split: np.ndarray     # int8 [T]
  label: np.ndarray     # int32 [T]
  label_names: tuple[str, ...]

  @property
  def starts(self) -> np.ndarray:
    return np.cumsum(self.lengths) - self.lengths


def _tokenize(units: _Units, tokenizer: Tokenizer) -> _Tokenized:
  ids = tokenizer.encode_batch(units.texts)
  lengths = np.fromiter((len(i) for i in ids), np.int64, count=len(ids))
  flat = np.fromiter(itertools.chain.from_iterable(ids), np.int32, count=int(lengths.sum()))
  return _Tokenized(flat, lengths, units.document, units.split, units.label, units.label_names)


def _cached_tokenized(name: str, paths: DataPaths, tokenizer: Tokenizer,
                      units: Callable[[], _Units]) -> _Tokenized:
  """The tokenised corpus from `cache_dir()/tokenized`, computed and saved if absent."""
  fingerprint = _fingerprint(name, _data_files(name, paths))
  key = hashlib.sha256(f'{fingerprint}\0{tokenizer.fingerprint}'.encode()).hexdigest()[:16]
  path = os.path.join(cache_dir(), 'tokenized',
                      f'{name}-wordpiece-{tokenizer.vocab_size}-{key}.npz')
  with build_lock(path):
    if os.path.isfile(path):
      try:
        with np.load(path, allow_pickle=False) as f:
          return _Tokenized(f['ids'], f['lengths'], f['document'], f['split'], f['label'],
                            tuple(str(n) for n in f['label_names']))
      except Exception as e:  # zipfile / pickle / key errors of a damaged file
        raise DatasetError(f'the cached tokenised corpus {path} cannot be read ({e}); delete '
                           f'it (rm {path}) and it will be rebuilt.') from e
    tokenized = _tokenize(units(), tokenizer)
    arrays = {field: getattr(tokenized, field)
              for field in ('ids', 'lengths', 'document', 'split', 'label')}
    arrays['label_names'] = np.asarray(tokenized.label_names, dtype=str)
    _write_atomically(path, lambda f: np.savez(f, **arrays))
    return tokenized


# ---------------------------------------------------------------------------------------------
# Sources and datasets
# ---------------------------------------------------------------------------------------------


def pad_or_truncate(sequences: Sequence[Sequence[int]], length: int, *,
                    pad_id: int = 0) -> np.ndarray:
  """Each id sequence cut to its first `length` ids or padded with `pad_id` at the end.

  Returns:
    int32 [len(sequences), length].
  """
  out = np.full((len(sequences), length), pad_id, np.int32)
  for row, ids in enumerate(sequences):
    ids = ids[:length]
    out[row, :len(ids)] = ids
  return out


def _gather_rows(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, length: int,
                 pad_id: int) -> np.ndarray:
  """int32 [N, length]: row r is ids[starts[r]:starts[r] + lengths[r]] padded with pad_id
  (lengths <= length); in chunks, to bound the memory of the index arrays."""
  out = np.full((starts.size, length), pad_id, np.int32)
  if ids.size == 0:
    return out
  columns = np.arange(length)
  chunk = max(1, (1 << 22) // length)
  for first in range(0, starts.size, chunk):
    rows = slice(first, first + chunk)
    positions = np.minimum(starts[rows, None] + columns, ids.size - 1)
    valid = columns < lengths[rows, None]
    out[rows] = np.where(valid, ids[positions], pad_id)
  return out


@dataclasses.dataclass(frozen=True, eq=False)
class TokenSource:
  """A source of token sequences held in host memory.

  Attributes:
    tokens: int32 [N, L] content ids, padded with the pad id (0) at the end.
    labels: int32 [N].
    next_tokens: int32 [N, L], the window that follows each one in its document (all padding
      after a document's last window), or None for datasets without documents.
  """

  tokens: np.ndarray
  labels: np.ndarray
  next_tokens: np.ndarray | None = None

  def __post_init__(self):
    if self.tokens.ndim != 2 or self.tokens.dtype != np.int32:
      raise ValueError(f'tokens must be int32 [N, L], got {self.tokens.dtype} '
                       f'{self.tokens.shape}')
    if self.labels.shape != self.tokens.shape[:1] or self.labels.dtype != np.int32:
      raise ValueError(f'labels must be int32 [{self.tokens.shape[0]}], got '
                       f'{self.labels.dtype} {self.labels.shape}')
    if self.next_tokens is not None and (self.next_tokens.shape != self.tokens.shape
                                         or self.next_tokens.dtype != np.int32):
      raise ValueError(f'next_tokens must be int32 {self.tokens.shape} like tokens, got '
                       f'{self.next_tokens.dtype} {self.next_tokens.shape}')

  @property
  def seq_length(self) -> int:
    """L, the length of every sequence."""
    return self.tokens.shape[1]

  def __len__(self) -> int:
    return self.tokens.shape[0]

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """{'tokens': int32 [B, L], 'label': int32 [B]} (+ 'next_tokens' int32 [B, L]) for
    integer `indices` [B] in [0, len)."""
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
      raise IndexError(f'indices must be in [0, {len(self)}); got values from '
                       f'{indices.min()} to {indices.max()}')
    batch = {'tokens': self.tokens[indices], 'label': self.labels[indices]}
    if self.next_tokens is not None:
      batch['next_tokens'] = self.next_tokens[indices]
    return batch


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextDataset(Dataset):
  """Train / validation / test token sources of one text dataset, with its tokenizer.

  Attributes (beyond `Dataset`'s):
    tokenizer: the tokenizer the ids come from (its pad_id pads them; the device adds
      cls_id / sep_id / mask_id).
    max_length: L, the length of every sequence (content tokens only).
    label_names: the class names, label i is label_names[i].
    modality: 'text'.
  """

  tokenizer: Tokenizer
  max_length: int
  label_names: tuple[str, ...]
  modality: str = 'text'

  @property
  def image_shape(self):
    raise AttributeError(f'{self.name} is a text dataset: it has no image_shape; its sequences '
                         f'are max_length={self.max_length} tokens.')


def _window_source(corpus: _Tokenized, split: int, length: int, pad_id: int) -> TokenSource:
  """Consecutive windows of every document of `split`, each with the one after it."""
  keep = corpus.split == split
  starts, lengths, document = corpus.starts[keep], corpus.lengths[keep], corpus.document[keep]
  label = corpus.label[keep]
  if document.size:
    first = np.flatnonzero(np.r_[True, document[1:] != document[:-1]])
  else:
    first = np.zeros(0, np.int64)
  doc_starts, doc_labels = starts[first], label[first]
  doc_lengths = np.add.reduceat(lengths, first) if first.size else np.zeros(0, np.int64)
  # Units of a document are adjacent in `ids` as well, so a document is one contiguous run.
  windows = -(-doc_lengths // length)
  window_doc = np.repeat(np.arange(first.size), windows)
  within = np.arange(window_doc.size) - np.repeat(np.cumsum(windows) - windows, windows)
  window_starts = doc_starts[window_doc] + within * length
  window_lengths = np.minimum(length, doc_lengths[window_doc] - within * length)
  tokens = _gather_rows(corpus.ids, window_starts, window_lengths, length, pad_id)
  next_tokens = np.full_like(tokens, pad_id)
  same = window_doc[1:] == window_doc[:-1]
  next_tokens[:-1][same] = tokens[1:][same]
  return TokenSource(tokens, doc_labels[window_doc].astype(np.int32), next_tokens)


def _sequence_source(corpus: _Tokenized, split: int, length: int, pad_id: int) -> TokenSource:
  """Every unit of `split`, truncated / padded to `length`."""
  keep = corpus.split == split
  tokens = _gather_rows(corpus.ids, corpus.starts[keep],
                        np.minimum(corpus.lengths[keep], length), length, pad_id)
  return TokenSource(tokens, corpus.label[keep].astype(np.int32))


def load_text_dataset(name: str, *, vocab_size: int, max_length: int,
                      tokenizer: Tokenizer | None = None,
                      data_dir: str | None = None) -> TextDataset:
  """Loads 'austen_wordnet', 'wordnet_glosses' or 'fortunes' (see the module docstring).

  Args:
    name: one of `TEXT_DATASETS`.
    vocab_size: size of the vocabulary: the pre-training corpus's tokenizer is trained with
      it; a given `tokenizer` must have it.
    max_length: L, content tokens per sequence (the device adds [CLS] / [SEP] to them).
    tokenizer: None: the tokenizer of 'austen_wordnet' (`pretraining_tokenizer`), for every
      dataset, so a model pre-trained on the corpus reads them with its own vocabulary.
    data_dir: a directory with `janeaustenr/` (Rdata.rdb, Rdata.rdx), `wordnet/` (data.*)
      and `fortunes/`; None: where `bash experiments/install_data.sh` puts them.

  Returns:
    A `TextDataset`. 'austen_wordnet': windows of its documents, with 'next_tokens', labels
    = source (0-5 the book, 6 WordNet), in document order (every book's chapters in turn,
    then the split's WordNet glosses by lexicographer file number, each in file order);
    'wordnet_glosses': glosses, labels = lexicographer file (45); 'fortunes': texts, labels
    = category (sorted file names, 43). Examples of a split keep the order of the files.

  Raises:
    ValueError: unknown name, or unusable sizes.
    MissingDatasetError: data not on this machine; the message says how to install it.
    DatasetError: a data or cache file is malformed; the message names it.
  """
  if name not in TEXT_DATASETS:
    raise ValueError(f'unknown text dataset {name!r}; the text datasets are '
                     f'{", ".join(TEXT_DATASETS)} (TFDS ones: load_tfds_text).')
  if max_length < 1:
    raise ValueError(f'max_length must be at least 1, got {max_length}.')
  if tokenizer is not None and tokenizer.vocab_size != vocab_size:
    raise ValueError(f'vocab_size={vocab_size} but the given tokenizer ({tokenizer.path}) has '
                     f'{tokenizer.vocab_size} ids; pass its vocab_size.')
  paths = DataPaths.from_data_dir(data_dir)
  units = functools.cache(lambda: _UNITS[name](paths))
  if tokenizer is None:
    corpus_units = units if name == PRETRAINING_CORPUS else functools.cache(
        lambda: _austen_wordnet_units(paths))
    tokenizer = _corpus_tokenizer(paths, vocab_size, corpus_units)
  corpus = _cached_tokenized(name, paths, tokenizer, units)
  make_source = _window_source if name == PRETRAINING_CORPUS else _sequence_source
  train, validation, test = (make_source(corpus, split, max_length, tokenizer.pad_id)
                             for split in range(len(SPLITS)))
  return TextDataset(name=name, train=train, validation=validation, test=test,
                     num_classes=len(corpus.label_names), tokenizer=tokenizer,
                     max_length=max_length, label_names=corpus.label_names)


# ---------------------------------------------------------------------------------------------
# TFDS text datasets
# ---------------------------------------------------------------------------------------------

# (train, validation, test) where `jssl.data.tfds.default_splits` would pick a split without
# labels: GLUE's test labels are hidden (-1), results are reported on 'validation'.
TEXT_SPLITS = {'glue': ('train[:95%]', 'train[95%:]', 'validation')}


class TfdsTextSource:
  """One split of a prepared TFDS text dataset, read by index and tokenised per batch.

  Attributes:
    name: the TFDS dataset name.
    split: the TFDS split string it reads.
    seq_length: L of every returned sequence.
  """

  def __init__(self, data_source: Any, *, name: str, split: str, tokenizer: Tokenizer,
               max_length: int, text_key: str, label_key: str | None):
    """Wraps `builder.as_data_source(split)`.

    Args:
      data_source: `len` and `__getitems__` of examples (dicts of features).
      name: the TFDS dataset name, for messages.
      split: the TFDS split string, for messages.
      tokenizer: tokenizes the texts on the host, at every `get_batch`.
      max_length: texts are truncated / padded to this many ids.
      text_key: the example's text feature.
      label_key: the example's ClassLabel feature, or None (labels are then -1).
    """
    self._data_source = data_source
    self.name, self.split = name, split
    self._tokenizer, self.seq_length = tokenizer, max_length
    self._text_key, self._label_key = text_key, label_key

  def __len__(self) -> int:
    return len(self._data_source)

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """{'tokens': int32 [B, L], 'label': int32 [B]} for integer `indices` [B]."""
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
      raise IndexError(f'indices must be in [0, {len(self)}) for {self.name} split '
                       f'{self.split!r}; got values from {indices.min()} to {indices.max()}')
    flat = [int(i) for i in indices.reshape(-1)]
    examples = self._data_source.__getitems__(flat) if flat else []
    texts = [_as_text(example[self._text_key]) for example in examples]
    tokens = pad_or_truncate(self._tokenizer.encode_batch(texts), self.seq_length,
                             pad_id=self._tokenizer.pad_id)
    if self._label_key is None:
      labels = np.full(len(examples), -1, np.int32)
    else:
      labels = np.asarray([example[self._label_key] for example in examples], np.int32)
    return {'tokens': tokens.reshape(*indices.shape, self.seq_length),
            'label': labels.reshape(indices.shape)}


def _as_text(value: Any) -> str:
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode('utf-8')
  if isinstance(value, np.ndarray) and value.ndim == 0:
    return _as_text(value.item())
  return str(value)


def load_tfds_text(name: str, *, tokenizer: Tokenizer, max_length: int,
                   data_dir: str | None = None, text_key: str | None = None,
                   label_key: str | None = None, train_split: str | None = None,
                   validation_split: str | None = None,
                   test_split: str | None = None) -> TextDataset:
  """Opens a prepared TFDS text dataset (imdb_reviews, ag_news_subset, glue/sst2, lm1b, ...).

  Examples are read by index from its ArrayRecord files (no TensorFlow) and tokenised on the
  host with `tokenizer` at every batch. Nothing is downloaded: the dataset must be prepared
  (`tfds build NAME --file_format=array_record`) in the TFDS data dir. Splits as
  `jssl.data.tfds.default_splits`, except `TEXT_SPLITS`; any TFDS split string may be passed.

  Args:
    name: TFDS name, optionally with config and version ('glue/sst2:2.0.0').
    tokenizer: tokenizes the texts (e.g. the pre-training corpus's).
    max_length: L; texts are truncated / padded to L ids.
    data_dir: TFDS data dir; None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
    text_key: the text feature; None: the dataset's only `Text` feature.
    label_key: the class feature; None: 'label' if it is a ClassLabel, else the only
      ClassLabel, else none (unlabelled, e.g. lm1b: labels -1, num_classes 0).
    train_split: TFDS split read as train; None for the default.
    validation_split: likewise for validation.
    test_split: likewise for test.

  Returns:
    A `TextDataset` of `TfdsTextSource`s.

  Raises:
    MissingDatasetError: not prepared in data_dir (the message says how to prepare it).
    ValueError: stored without random access, no usable text / label feature, or an empty
      split.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  from jssl.data import tfds as tfds_lib  # pylint: disable=g-import-not-at-top

  if max_length < 1:
    raise ValueError(f'max_length must be at least 1, got {max_length}.')
  data_dir = tfds_lib.resolve_data_dir(data_dir)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as e:
    raise MissingDatasetError(tfds_lib._missing_message(  # pylint: disable=protected-access
        name, data_dir, None,
        'it is neither a dataset of the installed TFDS catalog nor prepared in the data_dir'
    )) from e
  if not builder.is_prepared():
    raise MissingDatasetError(tfds_lib._missing_message(  # pylint: disable=protected-access
        name, data_dir, builder, 'it is not prepared in the data_dir'))
  file_format = tfds_lib._random_access_format(builder, name, data_dir)  # pylint: disable=protected-access

  features = builder.info.features
  texts = [key for key, feature in features.items() if isinstance(feature, tfds.features.Text)]
  classes = [key for key, feature in features.items()
             if isinstance(feature, tfds.features.ClassLabel)]
  if text_key is None:
    if len(texts) != 1:
      raise ValueError(f'TFDS dataset {name!r} has {len(texts)} Text features ({texts}; all '
                       f'features: {sorted(features.keys())}); pass text_key=... to choose.')
    text_key = texts[0]
  elif text_key not in features:
    raise ValueError(f'TFDS dataset {name!r} has no feature {text_key!r} (it has '
                     f'{sorted(features.keys())}); pass text_key=... to choose one.')
  if label_key is None:
    label_key = 'label' if 'label' in classes else classes[0] if len(classes) == 1 else None
  elif label_key not in classes:
    raise ValueError(f'feature {label_key!r} of TFDS dataset {name!r} is not a ClassLabel (its '
                     f'ClassLabel features: {classes}); pass label_key=... to choose one.')
  label_names = tuple(features[label_key].names) if label_key is not None else ()

  defaults = TEXT_SPLITS.get(builder.name) or tfds_lib.default_splits(
      builder.name, list(builder.info.splits.keys()))
  splits = tuple(given if given is not None else default
                 for given, default in zip((train_split, validation_split, test_split), defaults))
  sources = [TfdsTextSource(data_source, name=name, split=split, tokenizer=tokenizer,
                            max_length=max_length, text_key=text_key, label_key=label_key)
             for split, data_source in tfds_lib.split_sources(builder, name, splits,
                                                              file_format=file_format)]
  train, validation, test = sources
  return TextDataset(name=name, train=train, validation=validation, test=test,
                     num_classes=len(label_names), tokenizer=tokenizer, max_length=max_length,
                     label_names=label_names)
