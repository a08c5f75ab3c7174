"""Colour emoji: 1,870 labelled 32x32 RGB images rendered from Debian's Noto Color Emoji font.

The emoji and their groups come from Unicode's `emoji-test.txt` (Debian `unicode-data`); each
fully-qualified emoji without a skin-tone modifier (the five tones of one person would be
near-copies across the splits) is drawn by Pillow from `NotoColorEmoji.ttf` (Debian
`fonts-noto-color-emoji`, its bitmaps at size 109), composited on white and resized to 32x32
(or `--config.dataset.stored_size`, 8 to 128) with a Lanczos filter. Labels are the 9 groups: Smileys & Emotion (166), People & Body (363),
Animals & Nature (152), Food & Drink (133), Travel & Places (218), Activities (85), Objects
(261), Symbols (223), Flags (269). The split is the digits' stratified 70 / 10 / 20 % with a
fixed seed: 1,309 / 186 / 375. Rendering takes about 2 s and is kept for the process.

  sudo apt-get install fonts-noto-color-emoji unicode-data   (experiments/install_data.sh)
"""

from __future__ import annotations

import functools
import os

import numpy as np

from jssl.data.base import ArraySource, Dataset, DatasetError, MissingDatasetError
from jssl.data.digits import split_indices

FONT = '/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf'
EMOJI_TEST = '/usr/share/unicode/emoji/emoji-test.txt'
SIZE = 32
_FONT_SIZE = 109  # the one size of the font's bitmaps
_CANVAS = (136, 128)  # the bitmaps' extent at that size
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_SPLIT_SEED = 0


def read_emoji_list(path: str = EMOJI_TEST) -> tuple[list[str], list[str]]:
  """(emoji strings, their group names) of the fully-qualified emoji without skin tones, in
  the file's order.

  Raises:
    DatasetError: the file has no '# group:' lines or no fully-qualified emoji.
  """
  emoji, groups, group = [], [], None
  with open(path, encoding='utf-8') as handle:
    for line in handle:
      if line.startswith('# group:'):
        group = line.split(':', 1)[1].strip()
        continue
      if line.startswith('#') or ';' not in line:
        continue
      codes, rest = line.split(';', 1)
      if rest.split('#', 1)[0].strip() != 'fully-qualified':
        continue
      points = [int(code, 16) for code in codes.split()]
      if group is None or any(p in _SKIN_TONES for p in points):
        continue
      emoji.append(''.join(map(chr, points)))
      groups.append(group)
  if not emoji:
    raise DatasetError(f'{path}: no fully-qualified emoji under "# group:" headers; is it '
                       "Unicode's emoji-test.txt?")
  return emoji, groups


def render(emoji: list[str], font_path: str = FONT, size: int = SIZE) -> np.ndarray:
  """uint8 [N, size, size, 3]: each emoji drawn in colour, on white, resized."""
  from PIL import Image, ImageDraw, ImageFont  # pylint: disable=g-import-not-at-top
  font = ImageFont.truetype(font_path, _FONT_SIZE)
  images = np.zeros((len(emoji), size, size, 3), np.uint8)
  for i, text in enumerate(emoji):
    canvas = Image.new('RGBA', _CANVAS, (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((0, 0), text, font=font, embedded_color=True)
    white = Image.new('RGB', _CANVAS, (255, 255, 255))
    white.paste(canvas, mask=canvas.split()[3])
    images[i] = np.asarray(white.resize((size, size), Image.LANCZOS))
  return images


@functools.lru_cache(maxsize=2)
def load_emoji(size: int = SIZE) -> Dataset:
  """The emoji dataset (see the module docstring), rendered at `size` x `size` (the config's
  `dataset.stored_size`; the splits do not depend on it).

  Raises:
    MissingDatasetError: the font or emoji-test.txt is not installed; the message says how.
  """
  missing = [p for p in (FONT, EMOJI_TEST) if not os.path.isfile(p)]
  if missing:
    raise MissingDatasetError(
        f'emoji: {", ".join(missing)} not found. Install the Debian packages '
        '(sudo apt-get install fonts-noto-color-emoji unicode-data, or run '
        'experiments/install_data.sh).')
  emoji, groups = read_emoji_list()
  names = tuple(dict.fromkeys(groups))  # the file's group order
  labels = np.asarray([names.index(g) for g in groups], np.int32)
  images = render(emoji, size=size)
  train, validation, test = split_indices(labels, validation_fraction=0.1, test_fraction=0.2,
                                          seed=_SPLIT_SEED)
  part = lambda idx: ArraySource(images[idx], labels[idx])
  return Dataset(name='emoji', train=part(train), validation=part(validation), test=part(test),
                 num_classes=len(names))
