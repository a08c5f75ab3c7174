"""Builds `jssl_jpeg224`, a TFDS ArrayRecord dataset of 224x224 JPEGs, offline, for the input
pipeline benchmark (`python -m jssl.bench --data_only`, experiments/BENCHMARKS.md).

    python experiments/jpeg_dataset.py --data_dir=/tmp/tfds --num_images=4096

The images are natural photographs: random crops (a side of 160 to 427 pixels, random
position, random horizontal flip) of the two photographs that ship inside the scikit-learn
wheel (`sklearn/datasets/images/china.jpg` and `flower.jpg`, 640x427), resized to 224x224 and
encoded as JPEG at quality 90 (about 20 KiB each, like an ImageNet image stored at that size);
the label is the photograph (0 or 1). Decoding them costs what decoding any 224x224 JPEG
costs. TFDS's own builder writes the ArrayRecord files (no TensorFlow); the builder is not
registered, so `jssl.data.load_dataset('tfds:jssl_jpeg224', data_dir=...)` reads it from its
files like any prepared dataset.
"""

import argparse
import io
import os
import sys

import numpy as np
from PIL import Image

NAME = 'jssl_jpeg224'
SIZE = 224
PHOTOS = ('china.jpg', 'flower.jpg')


def _photos() -> list[Image.Image]:
  import sklearn.datasets  # pylint: disable=g-import-not-at-top
  directory = os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images')
  return [Image.open(os.path.join(directory, name)).convert('RGB') for name in PHOTOS]


def jpeg(photo: Image.Image, rng: np.random.Generator) -> bytes:
  """One random crop of `photo`, SIZE x SIZE, as JPEG bytes."""
  side = int(rng.integers(160, min(photo.size) + 1))
  left = int(rng.integers(0, photo.size[0] - side + 1))
  top = int(rng.integers(0, photo.size[1] - side + 1))
  image = photo.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.BILINEAR)
  if rng.random() < 0.5:
    image = image.transpose(Image.FLIP_LEFT_RIGHT)
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG', quality=90)
  return buffer.getvalue()


def build(data_dir: str, num_images: int, *, num_test: int = 64, seed: int = 0) -> str:
  """Writes the dataset under `data_dir` (train: num_images, test: num_test); returns its
  directory. The same arguments give the same bytes."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  photos = _photos()

  def examples(start, stop):
    for i in range(start, stop):
      rng = np.random.default_rng((seed, i))
      label = i % len(photos)
      # Bytes are stored as they are (no re-encoding): the dataset holds these JPEGs.
      yield i, {'image': jpeg(photos[label], rng), 'label': label}

  with tfds.core.registered.skip_registration():

    class JsslJpeg224(tfds.core.GeneratorBasedBuilder):
      """Random 224x224 crops of two photographs, as JPEG."""

      VERSION = tfds.core.Version('1.0.0')

      def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, disable_shuffling=True,
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Image(shape=(SIZE, SIZE, 3), encoding_format='jpeg'),
                'label': tfds.features.ClassLabel(num_classes=len(photos))}))

      def _split_generators(self, dl_manager):
        del dl_manager
        return {'train': self._generate_examples(0, num_images),
                'test': self._generate_examples(num_images, num_images + num_test)}

      def _generate_examples(self, start, stop):
        return examples(start, stop)

    builder = JsslJpeg224(data_dir=data_dir, file_format='array_record')
    builder.download_and_prepare()
  return builder.data_dir


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data_dir', required=True, help='TFDS data directory to write into.')
  parser.add_argument('--num_images', type=int, default=4096, help='training images')
  args = parser.parse_args(argv)
  if args.num_images < 1:
    parser.error(f'--num_images must be positive, got {args.num_images}')
  print(f'wrote {build(args.data_dir, args.num_images)}')


if __name__ == '__main__':
  sys.exit(main())
