"""The colour emoji dataset: the list read from emoji-test.txt (groups, skin tones dropped),
rendered colour images, the split, and the error when the Debian packages are missing."""

import numpy as np
import pytest

from jssl import data
from jssl.data import emoji


def test_emoji_are_colour_images_in_nine_balanced_enough_groups():
  dataset = data.load_dataset('emoji')
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (1309, 186, 375)
  assert dataset.num_classes == 9 and dataset.image_shape == (32, 32, 3)
  batch = dataset.train.get_batch(np.arange(64))
  images = batch['image'].astype(np.float32)
  assert batch['image'].dtype == np.uint8
  # Colour: channels differ (a grey image would have R = G = B), and the corners are white.
  assert np.mean(np.abs(images[..., 0] - images[..., 2])) > 10
  assert np.all(batch['image'][:, 0, 0] == 255)
  counts = np.bincount(np.concatenate([s.labels for s in (dataset.train, dataset.validation,
                                                          dataset.test)]))
  assert counts.tolist() == [166, 363, 152, 133, 218, 85, 261, 223, 269]
  with pytest.raises(ValueError, match='takes no data_dir'):
    data.load_dataset('emoji', data_dir='/tmp')
  with pytest.raises(ValueError, match='stored_size=200 is outside'):  # 16 is in test_pixelcnn
    data.load_dataset('emoji', image_size=200)


def test_the_list_drops_skin_tones_and_keeps_groups(tmp_path):
  path = tmp_path / 'emoji-test.txt'
  path.write_text('# group: Smileys\n1F600 ; fully-qualified # grin\n'
                  '263A ; unqualified # smile\n# group: People\n'
                  '1F44B 1F3FD ; fully-qualified # wave: medium skin tone\n'
                  '1F44B ; fully-qualified # wave\n', encoding='utf-8')
  names, groups = emoji.read_emoji_list(str(path))
  assert names == ['\U0001F600', '\U0001F44B'] and groups == ['Smileys', 'People']
  path.write_text('# nothing here\n', encoding='utf-8')
  with pytest.raises(data.DatasetError, match='no fully-qualified emoji'):
    emoji.read_emoji_list(str(path))


def test_missing_packages_say_how_to_install(monkeypatch):
  monkeypatch.setattr(emoji, 'FONT', '/nonexistent/NotoColorEmoji.ttf')
  emoji.load_emoji.cache_clear()
  try:
    with pytest.raises(data.MissingDatasetError, match='apt-get install fonts-noto-color-emoji'):
      emoji.load_emoji()
  finally:
    emoji.load_emoji.cache_clear()
