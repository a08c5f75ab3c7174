"""Tests of jssl.data.text: readers, tokenizer, fixed splits, windows, caches, TFDS text.

A small corpus is written here in the real formats: an R lazy-load database of six "novels"
(serialised with `rdata`'s own writer, compressed with zlib, indexed by a gzipped R list),
WordNet data files and fortune files. The real Debian data is read once per reader to check
its counts and pin its splits.
"""

import gzip
import json
import lzma
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
import rdata

from jssl.data import text
from jssl.data.base import Dataset, DatasetError, MissingDatasetError

WORDS = ('the', 'lady', 'said', 'that', 'her', 'sister', 'had', 'walked', 'to', 'town', 'and',
         'was', 'not', 'pleased', 'with', 'a', 'letter', 'from', 'captain', 'wentworth', 'of',
         'bath', 'fortune', 'marriage', 'house', 'evening', 'ball', 'dance', 'horse', 'rain')
GLOSS_WORDS = ('a', 'kind', 'of', 'animal', 'tool', 'that', 'is', 'used', 'for', 'making',
               'the', 'act', 'moving', 'quickly', 'state', 'being', 'happy', 'in', 'water',
               'person', 'who', 'writes', 'plant', 'having', 'leaves', 'red', 'small', 'large')
VOCAB = 160
LENGTH = 8


def _sentence(rng, words, n):
  return ' '.join(rng.choice(words, n))


def _crc_split(key):
  """The documented split rule, written out: crc32 % 100 -> <90 train, <95 validation, test."""
  bucket = zlib.crc32(key.encode()) % 100
  return 0 if bucket < 90 else 1 if bucket < 95 else 2


# ----------------------------------------------------------------- writers of the real formats


def _r_bytes(value):
  return rdata.unparser.unparse_data(rdata.conversion.convert_python_to_r_data(value))


def _store(data, compression):
  """One object as R's lazyLoadDBinsertValue stores it."""
  header = len(data).to_bytes(4, 'big')
  if compression == 0:
    return data
  if compression == 1:
    return header + zlib.compress(data)
  return header + b'Z' + lzma.compress(data)  # compression 3, xz


def write_lazyload_db(directory, objects, compression=1, *, drop=0):
  """Rdata.rdb + Rdata.rdx holding `objects` ({name: list of str}); `drop` bytes cut off the
  end of the .rdb (a truncated download)."""
  os.makedirs(directory, exist_ok=True)
  rdb, variables = b'', {}
  for name, lines in objects.items():
    blob = _store(_r_bytes(np.array(lines)), compression)
    variables[name] = np.array([len(rdb), len(blob)], np.int32)
    rdb += blob
  compressed = True if compression == 1 else np.array([compression], np.int32)
  index = {'variables': variables, 'references': {}, 'compressed': compressed}
  with open(os.path.join(directory, 'Rdata.rdb'), 'wb') as f:
    f.write(rdb[:len(rdb) - drop])
  with open(os.path.join(directory, 'Rdata.rdx'), 'wb') as f:
    f.write(gzip.compress(_r_bytes(index)))


def make_books(seed=0):
  """{book: (lines, chapters)}: lines as in janeaustenr, chapters = the paragraphs each
  chapter (0 = front matter) must read as."""
  rng = np.random.default_rng(seed)
  books = {}
  for b, book in enumerate(text.AUSTEN_BOOKS):
    lines = [book.upper(), '', '', 'By Jane Austen', '']
    chapters = [[book.upper(), 'By Jane Austen']]
    for c in range(1, 5 + b % 3):
      lines += [f'CHAPTER {c}' if b % 2 else f'Chapter {c}', '', '']
      paragraphs = []
      for _ in range(1 + (b + c) % 3):
        paragraph = [_sentence(rng, WORDS, 6) for _ in range(1 + c % 3)]
        lines += ['   ' + paragraph[0]] + paragraph[1:] + ['', '']
        paragraphs.append(' '.join(paragraph))
      if c == 2:  # "chapter" inside prose is no heading
        lines += ['chapter and verse', '']
        paragraphs.append('chapter and verse')
      chapters.append(paragraphs)
    books[book] = (lines, chapters)
  return books


HEADER = ('  1 This software and database is being provided to you, the LICENSEE, by  \n'
          '  2 Princeton University under the following license.  \n')


def _synset_line(offset, lex, ss_type, words, pointers, gloss, frames=()):
  fields = [f'{offset:08d}', f'{lex:02d}', ss_type, f'{len(words):02x}']
  for word in words:
    fields += [word, '0']
  fields.append(f'{len(pointers):03d}')
  for symbol, target, pos in pointers:
    fields += [symbol, f'{target:08d}', pos, '0000']
  if ss_type == 'v':
    fields.append(f'{len(frames):02d}')
    for frame in frames:
      fields += ['+', f'{frame:02d}', '00']
  return ' '.join(fields) + f' | {gloss}  \n'


def make_wordnet(directory, seed=1, per_file=40):
  """Writes data.noun/verb/adj/adv; returns their synsets as (pos, offset, lex, lemmas, gloss)
  in file order."""
  rng = np.random.default_rng(seed)
  lexes = {'n': (3, 5, 6, 18), 'v': (29, 38), 'a': (0, 1, 44), 'r': (2,)}
  os.makedirs(directory, exist_ok=True)
  synsets = []
  for file_name, pos in text.WORDNET_FILES:
    content = HEADER
    for i in range(per_file):
      lex = lexes[pos][i % len(lexes[pos])]
      ss_type = 's' if pos == 'a' and i % 4 == 3 else pos
      words = [f'{pos}word{i}', f'{pos}_multi_word{i}'][:1 + i % 2]
      written = list(words)
      if pos == 'a' and i % 5 == 0:
        written[0] += '(p)'
      if i == 7:  # 17 words: w_cnt is hexadecimal "11"
        words = [f'syn{j}' for j in range(17)]
        written = list(words)
      gloss = _sentence(rng, GLOSS_WORDS, 3 + i % 9)
      if i % 3:  # two in three have an example sentence
        gloss += f'; "an example {i}"'
      pointers = [('@', 1740, pos)] * (i % 3)
      frames = (2, 8)[:i % 3] if pos == 'v' else ()
      offset = len(content.encode())
      content += _synset_line(offset, lex, ss_type, written, pointers, gloss, frames)
      synsets.append((pos, offset, lex, tuple(w.replace('_', ' ') for w in words), gloss))
    with open(os.path.join(directory, file_name), 'w') as f:
      f.write(content)
  return synsets


def make_fortunes(directory, seed=2, per_file=30):
  """Writes three fortune files (plus a .dat, a .u8 link and off/ to be skipped); returns
  {category: texts}."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(directory, 'off'))
  fortunes = {}
  for c, category in enumerate(('animals', 'jokes', 'quotes')):
    texts = []
    for i in range(per_file):
      lines = [_sentence(rng, WORDS, 4 + i % 5) for _ in range(1 + i % 3)]
      if i % 4 == 0:
        lines.append('\t\t-- A. Author')
      texts.append('\n'.join(lines))
    body = '%\n'.join(t + '\n' for t in texts)
    if c == 1:
      body = '%\n' + body + '%\n%\n'  # leading and trailing separators, an empty fortune
    with open(os.path.join(directory, category), 'w') as f:
      f.write(body)
    fortunes[category] = texts
  with open(os.path.join(directory, 'jokes.dat'), 'wb') as f:
    f.write(struct.pack('>5I', 2, per_file, 100, 10, 0))
  os.symlink('jokes', os.path.join(directory, 'jokes.u8'))
  with open(os.path.join(directory, 'off', 'rude'), 'w') as f:
    f.write('not read\n%\n')
  return fortunes


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  """A data_dir with janeaustenr/, wordnet/ and fortunes/; the cache in a private directory."""
  root = tmp_path_factory.mktemp('text_data')
  books = make_books()
  write_lazyload_db(root / 'janeaustenr', {b: lines for b, (lines, _) in books.items()})
  synsets = make_wordnet(root / 'wordnet')
  fortunes = make_fortunes(root / 'fortunes')
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('JSSL_CACHE_DIR', os.fspath(tmp_path_factory.mktemp('text_cache')))
    yield {'dir': os.fspath(root), 'books': books, 'synsets': synsets, 'fortunes': fortunes}


@pytest.fixture(scope='module')
def corpus_tokenizer(corpus):
  return text.pretraining_tokenizer(vocab_size=VOCAB, data_dir=corpus['dir'])


# --------------------------------------------------------------------------------- readers


def test_lazyload_db_round_trip_and_compressions(tmp_path):
  objects = {'first': ['a line', '', 'ünïcode line'], 'second': ['x'] * 5}
  for compression in (0, 1, 3):
    directory = tmp_path / str(compression)
    write_lazyload_db(directory, objects, compression)
    variables, found = text.read_lazyload_index(os.fspath(directory / 'Rdata.rdx'))
    assert found == compression and sorted(variables) == ['first', 'second']
    assert variables['first'][0] == 0
    for name, lines in objects.items():
      value = text.read_lazyload_object(os.fspath(directory / 'Rdata.rdb'), name,
                                        variables[name], compression)
      assert list(value) == lines


def test_lazyload_db_malformed(tmp_path):
  write_lazyload_db(tmp_path / 'cut', {'only': ['a', 'b'] * 50}, drop=5)
  variables, compression = text.read_lazyload_index(os.fspath(tmp_path / 'cut' / 'Rdata.rdx'))
  rdb = os.fspath(tmp_path / 'cut' / 'Rdata.rdb')
  with pytest.raises(DatasetError, match='truncated') as error:
    text.read_lazyload_object(rdb, 'only', variables['only'], compression)
  assert rdb in str(error.value) and "'only'" in str(error.value)
  # Right length, corrupt zlib stream.
  with open(rdb, 'r+b') as f:
    f.write(b'\x00\x00\x00\x10garbage!')
  with pytest.raises(DatasetError, match='does not decompress'):
    text.read_lazyload_object(rdb, 'only', (0, 12), compression)
  rdx = tmp_path / 'cut' / 'Rdata.rdx'
  rdx.write_bytes(b'not an index at all')
  with pytest.raises(DatasetError, match='Rdata.rdx'):
    text.read_lazyload_index(os.fspath(rdx))


def test_austen_chapters_exact():
  lines = ['EMMA', '', 'By Jane Austen', '', 'VOLUME I', '', 'CHAPTER I', '',
           '  Emma Woodhouse, handsome,', 'clever, and rich,', '', '', 'She was', '',
           'Chapter 2', 'chapter and verse.', '', 'CHAPTER III']
  assert text.austen_chapters(lines) == [
      ['EMMA', 'By Jane Austen', 'VOLUME I'],
      ['Emma Woodhouse, handsome, clever, and rich,', 'She was'],
      ['chapter and verse.'],
      []]


def test_read_austen_from_written_database(corpus):
  books = corpus['books']
  directory = os.path.join(corpus['dir'], 'janeaustenr')
  lines = text.read_austen_lines(directory)
  assert list(lines) == list(text.AUSTEN_BOOKS)
  for book, (written, _) in books.items():
    assert lines[book] == written
  expected = [(book, chapter) for book, (_, chapters) in books.items() for chapter in chapters]
  assert text.read_austen(directory) == expected


def test_austen_missing_and_incomplete(tmp_path):
  with pytest.raises(MissingDatasetError) as error:
    text.read_austen_lines(os.fspath(tmp_path))
  message = str(error.value)
  assert os.path.join(os.fspath(tmp_path), 'Rdata.rdx') in message
  assert 'r-cran-janeaustenr' in message and 'bash experiments/install_data.sh' in message
  write_lazyload_db(tmp_path, {'emma': ['a']})
  with pytest.raises(DatasetError, match="no object 'mansfieldpark'"):
    text.read_austen_lines(os.fspath(tmp_path))


def test_lexnames_table():
  assert len(text.LEXNAMES) == 45 and len(set(text.LEXNAMES)) == 45
  assert text.LEXNAMES[:4] == ('adj.all', 'adj.pert', 'adv.all', 'noun.Tops')
  assert text.LEXNAMES[28:30] == ('noun.time', 'verb.body')
  assert text.LEXNAMES[43:] == ('verb.weather', 'adj.ppl')
  assert [n.split('.')[0] for n in text.LEXNAMES[3:29]] == ['noun'] * 26
  assert [n.split('.')[0] for n in text.LEXNAMES[29:44]] == ['verb'] * 15


def test_wordnet_lines_exact(tmp_path):
  path = tmp_path / 'data.verb'
  path.write_text(
      HEADER +
      '00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 002 * 00005041 v 0000 '
      '^ 00004227 v 0103 02 + 02 00 + 08 00 | draw air into, and expel out of, the lungs; '
      '"I can breathe better"  \n'
      '00002325 29 v 01 respire 1 000 00 | undergo respiration  \n')
  first, second = text.parse_wordnet_data(os.fspath(path), 'v')
  assert first == text.Synset(offset=1740, pos='v', ss_type='v', lex_filenum=29,
                              lemmas=('breathe', 'take a breath', 'respire', 'suspire'),
                              gloss='draw air into, and expel out of, the lungs; '
                                    '"I can breathe better"')
  assert first.lexname == 'verb.body' and first.key == 'wordnet/v/00001740'
  assert second.lemmas == ('respire',) and second.gloss == 'undergo respiration'
  adj = tmp_path / 'data.adj'
  adj.write_text('00004296 44 s 02 galore(ip) 0 in_stock(p) 0 001 & 00004000 a 0000 | plenty  \n')
  (synset,) = text.parse_wordnet_data(os.fspath(adj), 'a')
  assert (synset.ss_type, synset.lexname, synset.lemmas) == ('s', 'adj.ppl',
                                                             ('galore', 'in stock'))


@pytest.mark.parametrize('line, what', [
    ('00001740 03 n 01 entity 0 002 @ 00000001 n 0000 | gloss  ', 'account for'),
    ('00001740 03 n 01 entity 0 000 gloss without bar', 'no "|"'),
    ('00001740 45 n 01 entity 0 000 | gloss', 'lex_filenum 45'),
    ('00001740 03 x 01 entity 0 000 | gloss', "ss_type 'x'"),
    ('00001740 03 n zz entity 0 000 | gloss', 'do not follow'),
])
def test_wordnet_malformed(tmp_path, line, what):
  path = tmp_path / 'data.noun'
  path.write_text(HEADER + line + '\n')
  with pytest.raises(DatasetError, match=what) as error:
    text.parse_wordnet_data(os.fspath(path), 'n')
  assert f'{path}, line 3' in str(error.value)


def test_read_wordnet_written_files(corpus, tmp_path):
  synsets = text.read_wordnet(os.path.join(corpus['dir'], 'wordnet'))
  assert [(s.pos, s.offset, s.lex_filenum, s.lemmas, s.gloss) for s in synsets] == (
      corpus['synsets'])
  assert {s.ss_type for s in synsets} == {'n', 'v', 'a', 's', 'r'}
  with pytest.raises(MissingDatasetError) as error:
    text.read_wordnet(os.fspath(tmp_path))
  assert 'data.noun' in str(error.value) and 'wordnet-base' in str(error.value)
  assert 'bash experiments/install_data.sh' in str(error.value)


def test_fortunes_written_files(corpus, tmp_path):
  directory = os.path.join(corpus['dir'], 'fortunes')
  fortunes = text.read_fortunes(directory)
  assert fortunes == corpus['fortunes']  # no .dat, .u8 or off/, no empty fortune
  bad = tmp_path / 'bad'
  bad.mkdir()
  (bad / 'latin').write_bytes(b'caf\xe9\n%\n')
  with pytest.raises(DatasetError, match='UTF-8') as error:
    text.read_fortunes(os.fspath(bad))
  assert 'latin' in str(error.value)
  with pytest.raises(MissingDatasetError) as error:
    text.read_fortunes(os.fspath(tmp_path / 'absent'))
  assert 'fortunes' in str(error.value) and 'install_data.sh' in str(error.value)


# ------------------------------------------------------------------------------- tokenizer


def _training_texts(corpus):
  return [' '.join(p) for _, (_, chapters) in corpus['books'].items() for p in chapters]


def test_tokenizer_deterministic_and_special_ids(corpus, tmp_path):
  texts = _training_texts(corpus) + [s[4] for s in corpus['synsets']]
  first = text.train_tokenizer(texts, vocab_size=VOCAB, path=tmp_path / 'a' / 'tok.json')
  second = text.train_tokenizer(texts, vocab_size=VOCAB, path=tmp_path / 'b.json')
  assert (tmp_path / 'a' / 'tok.json').read_bytes() == (tmp_path / 'b.json').read_bytes()
  assert first.fingerprint == second.fingerprint
  assert first.vocab_size == VOCAB
  assert (first.pad_id, first.unk_id, first.cls_id, first.sep_id, first.mask_id) == (
      0, 1, 2, 3, 4)
  assert first.special_ids == (0, 1, 2, 3, 4)
  ids = first.encode('The lady walked to BATH')
  assert ids and not set(ids) & set(first.special_ids)
  assert first.decode(ids) == 'the lady walked to bath'
  assert first.encode('Café') == first.encode('cafe')  # lowercased, accents stripped
  assert first.encode('€') == [first.unk_id]           # a character never seen in training
  assert first.encode_batch(['the lady', 'rain']) == [first.encode('the lady'),
                                                      first.encode('rain')]
  loaded = text.load_tokenizer(os.fspath(tmp_path / 'b.json'))
  assert loaded.encode('the sister walked') == first.encode('the sister walked')
  vocab = json.loads((tmp_path / 'b.json').read_text())['model']['vocab']
  assert [token for token, i in sorted(vocab.items(), key=lambda kv: kv[1])[:5]] == list(
      text.SPECIAL_TOKENS)


def test_tokenizer_vocab_too_small(tmp_path):
  texts = ['abc abd', 'bcd!']
  with pytest.raises(ValueError, match=r'minimum is (\d+)') as error:
    text.train_tokenizer(texts, vocab_size=6, path=tmp_path / 't.json')
  minimum = int(error.value.args[0].split('minimum is ')[1].split()[0])
  # 5 special + a b c d ! + ##b ##c ##d
  assert minimum == 5 + 5 + 3
  assert text.train_tokenizer(texts, vocab_size=minimum,
                              path=tmp_path / 't.json').vocab_size == minimum


def test_load_tokenizer_errors(tmp_path):
  with pytest.raises(FileNotFoundError):
    text.load_tokenizer(os.fspath(tmp_path / 'absent.json'))
  (tmp_path / 'bad.json').write_text('{"not": "a tokenizer"')
  with pytest.raises(DatasetError, match='bad.json'):
    text.load_tokenizer(os.fspath(tmp_path / 'bad.json'))
  good = text.train_tokenizer(['a b c'], vocab_size=20, path=tmp_path / 'good.json')
  content = good.to_json().replace('[MASK]', '[MSK]')
  (tmp_path / 'nomask.json').write_text(content)
  with pytest.raises(DatasetError, match=r"lacks the special tokens \['\[MASK\]'\]"):
    text.load_tokenizer(os.fspath(tmp_path / 'nomask.json'))


# -------------------------------------------------------------------------------- datasets


def test_split_rule():
  keys = [f'austen/emma/{i}' for i in range(2000)]
  splits = np.array([text.split_of(k) for k in keys])
  assert list(splits) == [_crc_split(k) for k in keys]
  fractions = np.bincount(splits, minlength=3) / len(keys)
  assert abs(fractions[0] - 0.9) < 0.03 and abs(fractions[1] - 0.05) < 0.02


def _pad(ids, length):
  ids = list(ids)[:length]
  return ids + [0] * (length - len(ids))


def _expected_windows(corpus, tokenizer, split):
  """Naive reference: documents in order (chapters book by book, then the WordNet glosses of
  the split by lexicographer file), windows of LENGTH with the next one."""
  documents = []
  for b, (_, chapters) in enumerate(corpus['books'].values()):
    for c, paragraphs in enumerate(chapters):
      if _crc_split(f'austen/{text.AUSTEN_BOOKS[b]}/{c}') == split:
        documents.append((b, [i for p in paragraphs for i in tokenizer.encode(p)]))
  for lex in range(45):
    glosses = [s[4] for s in corpus['synsets']
               if s[2] == lex and _crc_split(f'wordnet/{s[0]}/{s[1]:08d}') == split]
    if glosses:
      documents.append((6, [i for g in glosses for i in tokenizer.encode(g)]))
  rows = []
  for label, ids in documents:
    for start in range(0, len(ids), LENGTH):
      rows.append((_pad(ids[start:start + LENGTH], LENGTH),
                   _pad(ids[start + LENGTH:start + 2 * LENGTH], LENGTH), label))
  return rows


def test_austen_wordnet_windows(corpus, corpus_tokenizer):
  dataset = text.load_text_dataset('austen_wordnet', vocab_size=VOCAB, max_length=LENGTH,
                                   data_dir=corpus['dir'])
  assert isinstance(dataset, Dataset) and isinstance(dataset, text.TextDataset)
  assert dataset.modality == 'text' and dataset.max_length == LENGTH
  assert dataset.num_classes == 7 and dataset.label_names[6] == 'wordnet'
  assert dataset.tokenizer.path == corpus_tokenizer.path
  for split, source in enumerate((dataset.train, dataset.validation, dataset.test)):
    expected = _expected_windows(corpus, corpus_tokenizer, split)
    assert len(source) == len(expected) > 0
    assert source.seq_length == LENGTH
    np.testing.assert_array_equal(source.tokens, [r[0] for r in expected])
    np.testing.assert_array_equal(source.next_tokens, [r[1] for r in expected])
    np.testing.assert_array_equal(source.labels, [r[2] for r in expected])
  # A document's last window is padded, and its next window is all padding.
  assert (dataset.train.tokens == 0).any() and not dataset.train.next_tokens[-1].any()
  with pytest.raises(AttributeError, match='text dataset'):
    _ = dataset.image_shape


def test_labelled_datasets_splits_and_truncation(corpus, corpus_tokenizer):
  glosses = text.load_text_dataset('wordnet_glosses', vocab_size=VOCAB, max_length=LENGTH,
                                   data_dir=corpus['dir'])
  assert glosses.tokenizer.path == corpus_tokenizer.path  # the corpus's own vocabulary
  assert glosses.num_classes == 45 and glosses.label_names == text.LEXNAMES
  fortunes = text.load_text_dataset('fortunes', vocab_size=VOCAB, max_length=LENGTH,
                                    data_dir=corpus['dir'])
  assert fortunes.label_names == ('animals', 'jokes', 'quotes') and fortunes.num_classes == 3
  items = {
      glosses: [(s[4], s[2], f'wordnet/{s[0]}/{s[1]:08d}') for s in corpus['synsets']],
      fortunes: [(t, c, 'fortunes/' + t) for c, texts in enumerate(corpus['fortunes'].values())
                 for t in texts],
  }
  for dataset, examples in items.items():
    sizes = []
    for split, source in enumerate((dataset.train, dataset.validation, dataset.test)):
      chosen = [(t, label) for t, label, key in examples if _crc_split(key) == split]
      sizes.append(len(chosen))
      assert source.next_tokens is None
      np.testing.assert_array_equal(
          source.tokens, [_pad(corpus_tokenizer.encode(t), LENGTH) for t, _ in chosen])
      np.testing.assert_array_equal(source.labels, [label for _, label in chosen])
      batch = source.get_batch(np.array([0, len(source) - 1, 0]))
      assert set(batch) == {'tokens', 'label'}
      assert batch['tokens'].dtype == np.int32 and batch['tokens'].shape == (3, LENGTH)
      assert batch['label'].dtype == np.int32 and batch['label'].shape == (3,)
    assert sum(sizes) == len(examples) and min(sizes) > 0
  truncated = [len(corpus_tokenizer.encode(t)) > LENGTH for t, _, _ in items[glosses]]
  assert any(truncated) and not all(truncated)


def test_get_batch_and_token_source_checks(corpus):
  dataset = text.load_text_dataset('austen_wordnet', vocab_size=VOCAB, max_length=LENGTH,
                                   data_dir=corpus['dir'])
  source = dataset.validation
  batch = source.get_batch(np.array([1, 0]))
  assert set(batch) == {'tokens', 'label', 'next_tokens'}
  for key in ('tokens', 'next_tokens'):
    assert batch[key].dtype == np.int32 and batch[key].shape == (2, LENGTH)
  np.testing.assert_array_equal(batch['tokens'], source.tokens[[1, 0]])
  with pytest.raises(IndexError, match=rf'\[0, {len(source)}\)'):
    source.get_batch(np.array([len(source)]))
  with pytest.raises(IndexError):
    source.get_batch(np.array([-1]))
  assert source.get_batch(np.array([], np.int64))['tokens'].shape == (0, LENGTH)
  tokens = np.zeros((3, 4), np.int32)
  with pytest.raises(ValueError, match='int32'):
    text.TokenSource(tokens.astype(np.int64), np.zeros(3, np.int32))
  with pytest.raises(ValueError, match='labels'):
    text.TokenSource(tokens, np.zeros(2, np.int32))
  with pytest.raises(ValueError, match='next_tokens'):
    text.TokenSource(tokens, np.zeros(3, np.int32), np.zeros((3, 5), np.int32))


def test_load_text_dataset_argument_errors(corpus, corpus_tokenizer):
  with pytest.raises(ValueError, match='austen_wordnet, wordnet_glosses, fortunes'):
    text.load_text_dataset('austen', vocab_size=VOCAB, max_length=8)
  with pytest.raises(ValueError, match='max_length'):
    text.load_text_dataset('fortunes', vocab_size=VOCAB, max_length=0)
  with pytest.raises(ValueError, match=f'has {VOCAB} ids'):
    text.load_text_dataset('fortunes', vocab_size=VOCAB + 1, max_length=8,
                           tokenizer=corpus_tokenizer, data_dir=corpus['dir'])


def test_missing_data_errors(tmp_path, corpus_tokenizer):
  empty = os.fspath(tmp_path)
  # The default tokenizer needs the pre-training corpus first.
  with pytest.raises(MissingDatasetError, match='r-cran-janeaustenr') as error:
    text.load_text_dataset('fortunes', vocab_size=VOCAB, max_length=8, data_dir=empty)
  assert os.path.join(empty, 'janeaustenr', 'Rdata.rdx') in str(error.value)
  for name, package, path in (('fortunes', 'fortunes', 'fortunes'),
                              ('wordnet_glosses', 'wordnet-base', 'wordnet/data.noun')):
    with pytest.raises(MissingDatasetError, match=package) as error:
      text.load_text_dataset(name, vocab_size=VOCAB, max_length=8, data_dir=empty,
                             tokenizer=corpus_tokenizer)
    assert os.path.join(empty, path) in str(error.value)
    assert 'bash experiments/install_data.sh' in str(error.value)


def test_caches_reused_and_keyed_by_content(corpus, corpus_tokenizer, tmp_path, monkeypatch):
  cache = text.cache_dir()
  text.load_text_dataset('wordnet_glosses', vocab_size=VOCAB, max_length=LENGTH,
                         data_dir=corpus['dir'])
  cached = sorted(os.listdir(os.path.join(cache, 'tokenized')))
  assert any(n.startswith('wordnet_glosses-wordpiece-') for n in cached)

  def no_parsing(*args, **kwargs):
    raise AssertionError('the cached corpus should have been used')

  with monkeypatch.context() as patch:
    patch.setattr(text, 'read_wordnet', no_parsing)
    patch.setattr(text, 'read_austen', no_parsing)
    again = text.load_text_dataset('wordnet_glosses', vocab_size=VOCAB, max_length=LENGTH + 3,
                                   data_dir=corpus['dir'])  # any max_length reads the cache
  assert again.train.seq_length == LENGTH + 3
  assert sorted(os.listdir(os.path.join(cache, 'tokenized'))) == cached
  # Changed data: another fingerprint, so a new tokenizer and tokenised corpus.
  changed = tmp_path / 'changed'
  shutil.copytree(corpus['dir'], changed, symlinks=True)
  with open(changed / 'wordnet' / 'data.adv', 'a') as f:
    f.write(_synset_line(99999, 2, 'r', ['quickly'], [], 'with speed'))
  other = text.pretraining_tokenizer(vocab_size=VOCAB, data_dir=os.fspath(changed))
  assert other.path != corpus_tokenizer.path and os.path.isfile(other.path)


def test_damaged_caches_name_the_file(corpus, corpus_tokenizer, tmp_path, monkeypatch):
  monkeypatch.setenv('JSSL_CACHE_DIR', os.fspath(tmp_path))
  shutil.copytree(os.path.dirname(corpus_tokenizer.path), tmp_path / 'tokenizers')
  damaged = tmp_path / 'tokenizers' / os.path.basename(corpus_tokenizer.path)
  damaged.write_text('{')
  with pytest.raises(DatasetError, match='delete it') as error:
    text.load_text_dataset('fortunes', vocab_size=VOCAB, max_length=4, data_dir=corpus['dir'])
  assert str(damaged) in str(error.value)
  text.load_text_dataset('fortunes', vocab_size=VOCAB, max_length=4, data_dir=corpus['dir'],
                         tokenizer=corpus_tokenizer)
  (npz,) = (tmp_path / 'tokenized').glob('*.npz')  # beside it, the build's .lock file
  npz.write_bytes(b'PK broken')
  with pytest.raises(DatasetError, match='delete it') as error:
    text.load_text_dataset('fortunes', vocab_size=VOCAB, max_length=4, data_dir=corpus['dir'],
                           tokenizer=corpus_tokenizer)
  assert str(npz) in str(error.value)


# ------------------------------------------------------------------------------------ TFDS


def test_tfds_text_stand_in(tmp_path, corpus_tokenizer):
  tfds = pytest.importorskip('tensorflow_datasets')

  with tfds.core.registered.skip_registration():

    class JsslTestReviews(tfds.core.GeneratorBasedBuilder):
      """imdb_reviews-like: 20 train and 6 test reviews, review i has label i % 2."""

      VERSION = tfds.core.Version('1.0.0')

      def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, disable_shuffling=True,
            features=tfds.features.FeaturesDict({
                'text': tfds.features.Text(),
                'label': tfds.features.ClassLabel(names=['neg', 'pos'])}))

      def _split_generators(self, dl_manager):
        del dl_manager
        return {'train': self._generate_examples(0, 20),
                'test': self._generate_examples(20, 26)}

      def _generate_examples(self, start, stop):
        for i in range(start, stop):
          yield i, {'text': _review(i), 'label': i % 2}

  data_dir = os.fspath(tmp_path)
  JsslTestReviews(data_dir=data_dir, file_format='array_record').download_and_prepare()
  dataset = text.load_tfds_text('jssl_test_reviews', tokenizer=corpus_tokenizer,
                                max_length=LENGTH, data_dir=data_dir)
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (18, 2, 6)
  assert dataset.label_names == ('neg', 'pos') and dataset.num_classes == 2
  assert dataset.modality == 'text' and dataset.tokenizer is corpus_tokenizer
  for source, first, indices in ((dataset.train, 0, [0, 17, 3]), (dataset.validation, 18, [1]),
                                 (dataset.test, 20, [5, 0])):
    batch = source.get_batch(np.array(indices))
    assert batch['tokens'].dtype == np.int32 and batch['label'].dtype == np.int32
    np.testing.assert_array_equal(
        batch['tokens'], [_pad(corpus_tokenizer.encode(_review(first + i)), LENGTH)
                          for i in indices])
    np.testing.assert_array_equal(batch['label'], [(first + i) % 2 for i in indices])
  with pytest.raises(ValueError, match="no feature 'review'"):
    text.load_tfds_text('jssl_test_reviews', tokenizer=corpus_tokenizer, max_length=4,
                        data_dir=data_dir, text_key='review')
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(MissingDatasetError, match='tfds build jssl_test_reviews'):
    text.load_tfds_text('jssl_test_reviews', tokenizer=corpus_tokenizer, max_length=4,
                        data_dir=os.fspath(empty))


def _review(i):
  return f'Review {i}: the lady said the ball was {"not " * (i % 3)}pleasing, très bien'


# ------------------------------------------------------------------------ the real Debian data


def test_real_austen_counts():
  lines = text.read_austen_lines()
  assert {book: len(v) for book, v in lines.items()} == {
      'emma': 16235, 'mansfieldpark': 15349, 'northangerabbey': 7856, 'persuasion': 8328,
      'prideprejudice': 13030, 'sensesensibility': 12624}  # 73,422 lines
  chapters = [(book, c, paragraphs) for book, v in lines.items()
              for c, paragraphs in enumerate(text.austen_chapters(v))]
  assert len(chapters) == 6 + 269  # front matter + chapters
  assert sum(len(p) for _, _, p in chapters) == 10029
  splits = np.bincount([text.split_of(f'austen/{b}/{c}') for b, c, _ in chapters])
  assert list(splits) == [249, 12, 14]  # pinned: the fixed split must never move


def test_real_wordnet_counts():
  synsets = text.read_wordnet()
  assert len(synsets) == 117659
  pos = np.unique([s.pos for s in synsets], return_counts=True)
  assert dict(zip(*pos)) == {'n': 82115, 'v': 13767, 'a': 18156, 'r': 3621}
  lex = np.bincount([s.lex_filenum for s in synsets], minlength=45)
  assert len(lex) == 45 and lex.min() > 0
  assert (lex[3], lex[16], lex[44]) == (51, 42, 60)  # noun.Tops, noun.motive, adj.ppl
  splits = np.bincount([text.split_of(s.key) for s in synsets])
  assert list(splits) == [105690, 5935, 6034]


def test_real_fortunes_counts_match_strfile_indexes():
  fortunes = text.read_fortunes()
  assert len(fortunes) == 43
  for category, texts in fortunes.items():
    with open(os.path.join(text.FORTUNES_DIR, category + '.dat'), 'rb') as f:
      _, count = struct.unpack('>2I', f.read(8))  # strfile header: version, numstr
    assert len(texts) == count, category
  assert sum(map(len, fortunes.values())) == 15217
  assert 'off' not in fortunes and not any(c.endswith(('.dat', '.u8')) for c in fortunes)
