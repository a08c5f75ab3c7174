"""Any prepared TFDS image dataset (cifar10, stl10, imagenet2012, ...) as random-access sources.

Examples are read by index from the dataset's ArrayRecord files through
`builder.as_data_source`, so TFDS needs no TensorFlow here, and the deterministic,
resumable iterator (`jssl.data.iterator`) can ask for any example of any epoch directly.
Images are decoded with PIL on the host and, where asked or needed, resized so that every
batch has one shape.

Nothing is downloaded at run time: a dataset must already be prepared (`tfds build NAME
--file_format=array_record`, which needs TensorFlow and usually internet, on any machine)
in the TFDS data directory; otherwise `MissingDatasetError` says how to get it.

`tensorflow_datasets` is imported inside the functions, so `import jssl.data` stays fast
for users of the in-memory datasets.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
from typing import Any

import numpy as np
from PIL import Image

from jssl.data.base import Dataset, MissingDatasetError

# Fraction of 'train' held out for validation when a dataset has no split to spare for it
# (cifar10/100: 45,000 train / 5,000 validation).
HOLDOUT_PERCENT = 10

# (train, validation, test) for datasets the generic rule of `default_splits` gets wrong.
SPLITS = {
    # TFDS's 'test' split of ImageNet has no labels; results are reported on the official
    # 'validation' split, and validation is 1 % of train (12,812 images, big_vision's
    # "minival").
    'imagenet2012': ('train[:99%]', 'train[99%:]', 'validation'),
}


def resolve_data_dir(data_dir: str | None) -> str:
  """`data_dir`, or TFDS's default ($TFDS_DATA_DIR, else ~/tensorflow_datasets) when None."""
  if data_dir is not None:
    return os.fspath(data_dir)
  from tensorflow_datasets.core import constants  # pylint: disable=g-import-not-at-top
  return constants.get_default_data_dir()


def default_splits(name: str, available: list[str] | tuple[str, ...]) -> tuple[str, str, str]:
  """Which TFDS splits serve as train, validation and test.

  `SPLITS` first; otherwise 'train', 'validation', 'test' when all three exist; otherwise
  validation is the last `HOLDOUT_PERCENT` % of 'train' (TFDS shuffles examples when it
  prepares a dataset, so this slice is fixed and not ordered by class), and test is 'test',
  else 'validation', else another `HOLDOUT_PERCENT` % of 'train'.

  Args:
    name: the TFDS builder name, without config or version (e.g. 'cifar10').
    available: the dataset's split names.

  Returns:
    (train, validation, test) TFDS split strings.
  """
  if name in SPLITS:
    return SPLITS[name]
  if 'train' not in available:
    raise ValueError(f'TFDS dataset {name!r} has no "train" split (it has {sorted(available)}); '
                     'pass train_split, validation_split and test_split explicitly.')
  if 'validation' in available and 'test' in available:
    return 'train', 'validation', 'test'
  held_out = 100 - HOLDOUT_PERCENT
  if 'test' in available or 'validation' in available:
    test = 'test' if 'test' in available else 'validation'
    return f'train[:{held_out}%]', f'train[{held_out}%:]', test
  return (f'train[:{held_out - HOLDOUT_PERCENT}%]',
          f'train[{held_out - HOLDOUT_PERCENT}%:{held_out}%]', f'train[{held_out}%:]')


def resize_and_center_crop(image: Image.Image, size: int) -> Image.Image:
  """Scales the shorter side to `size` (PIL bilinear, antialiased), then crops the centre.

  Args:
    image: a PIL image of any size.
    size: side of the square result.

  Returns:
    A `size` x `size` PIL image of the same mode.
  """
  width, height = image.size
  scale = size / min(width, height)
  new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
  if new_size != (width, height):
    image = image.resize(new_size, resample=Image.BILINEAR)
  left, top = (new_size[0] - size) // 2, (new_size[1] - size) // 2
  return image.crop((left, top, left + size, top + size))


class TfdsSource:
  """One split of a prepared TFDS dataset, read by index.

  Random access is all a source provides. For multi-host training every process opens the
  same source and the iterator asks each process's source only for that process's indices
  of every global batch, so the source itself knows nothing about processes.

  Attributes:
    name: the TFDS dataset name.
    split: the TFDS split string it reads (e.g. 'train[:90%]').
    file_format: the storage format read by index ('array_record'; TFDS also reads
      'parquet' by index).
    image_shape: (H, W, C) of every image `get_batch` returns.
    image_size: side images are resized and centre-cropped to, or None to keep them as
      they are stored.
  """

  def __init__(self, data_source: Any, *, name: str, split: str, file_format: str,
               image_shape: tuple[int, int, int], image_size: int | None,
               image_key: str = 'image', label_key: str = 'label'):
    """Wraps a TFDS data source.

    Args:
      data_source: what `builder.as_data_source(split)` returns: `len` and `__getitems__`
        of examples, the image left encoded (bytes) or already an array.
      name: the TFDS dataset name, for messages.
      split: the TFDS split string, for messages.
      file_format: the format `data_source` reads.
      image_shape: (H, W, C) of the returned images; C is 1 or 3.
      image_size: when not None, every image is resized and centre-cropped to this side
        (and image_shape must be (image_size, image_size, C)).
      image_key: the example's image feature.
      label_key: the example's label feature.
    """
    if image_shape[-1] not in (1, 3):
      raise ValueError(f'only 1- or 3-channel images are supported, got shape {image_shape}')
    if image_size is not None and image_shape[:2] != (image_size, image_size):
      raise ValueError(f'image_shape {image_shape} does not match image_size {image_size}')
    self._data_source = data_source
    self.name = name
    self.split = split
    self.file_format = file_format
    self.image_shape = tuple(image_shape)
    self.image_size = image_size
    self._image_key = image_key
    self._label_key = label_key
    self._mode = 'L' if image_shape[-1] == 1 else 'RGB'
    self._pool = None  # decoding threads, started on first use

  def __len__(self) -> int:
    return len(self._data_source)

  def __getstate__(self):
    # Sent to the input pipeline's worker processes (grain): each starts its own threads.
    state = dict(self.__dict__)
    state['_pool'] = None
    return state

  def _decode_pool(self) -> concurrent.futures.ThreadPoolExecutor:
    if self._pool is None:
      self._pool = concurrent.futures.ThreadPoolExecutor(
          max_workers=min(32, os.cpu_count() or 1), thread_name_prefix=f'jssl-decode-{self.name}')
    return self._pool

  def __repr__(self) -> str:
    return (f'TfdsSource(name={self.name!r}, split={self.split!r}, len={len(self)}, '
            f'image_shape={self.image_shape}, file_format={self.file_format!r})')

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Reads, decodes and (if `image_size`) resizes the examples at `indices`.

    Args:
      indices: int [B], positions in this split, 0 <= i < len(self).

    Returns:
      {'image': uint8 [B, H, W, C], 'label': int32 [B]}.
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
      raise ValueError(f'indices must be a 1-D integer array, got {indices.dtype} '
                       f'{indices.shape}')
    if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
      raise IndexError(f'indices must be in [0, {len(self)}) for {self.name} split '
                       f'{self.split!r}; got values from {indices.min()} to {indices.max()}')
    examples = self._data_source.__getitems__([int(i) for i in indices])
    images = np.empty((indices.size, *self.image_shape), np.uint8)
    # PIL releases the GIL while decoding and resizing, so threads decode in parallel (an
    # ImageNet batch of 4096 JPEGs is far too slow on one core). `map` keeps the order.
    decoded = self._decode_pool().map(
        lambda pair: self._image(pair[1][self._image_key], pair[0]), zip(indices, examples))
    for row, image in enumerate(decoded):
      images[row] = image
    labels = np.asarray([example[self._label_key] for example in examples], np.int32)
    return {'image': images, 'label': labels.reshape(indices.shape)}

  def _image(self, value: bytes | np.ndarray, index: int) -> np.ndarray:
    """Decodes one stored image to uint8 [H, W, C] of `image_shape`."""
    if isinstance(value, (bytes, np.bytes_)):
      with Image.open(io.BytesIO(value)) as encoded:
        image = encoded.convert(self._mode)  # also fixes CMYK / palette / grey JPEGs and PNGs
    else:
      image = np.asarray(value)
    if self.image_size is not None:
      if isinstance(image, np.ndarray):
        image = Image.fromarray(image[..., 0] if self._mode == 'L' else image)
      image = resize_and_center_crop(image, self.image_size)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
      array = array[..., None]
    if array.shape != self.image_shape:
      raise ValueError(
          f'example {index} of {self.name} split {self.split!r} has an image of shape '
          f'{array.shape}, not {self.image_shape}; pass image_size to resize every image to '
          'one size.')
    return array


def _missing_message(name: str, data_dir: str, builder: Any | None, reason: str) -> str:
  """What `MissingDatasetError` says: what is missing, where we looked, how to get it."""
  looked_at = builder.data_dir if builder is not None else os.path.join(data_dir, name)
  lines = [
      f'TFDS dataset {name!r} is not available: {reason}.',
      f'Looked in the TFDS data_dir {data_dir} (at {looked_at}).',
      'jssl only reads prepared datasets and never downloads at run time. To get it:',
  ]
  manual = builder is not None and getattr(builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None)
  manual_dir = os.path.join(data_dir, 'downloads', 'manual')
  if manual:
    lines += [
        f'  - {name} must be downloaded by hand: put the files below into {manual_dir}, then',
        f'    run `tfds build {name} --data_dir={data_dir} --manual_dir={manual_dir} '
        '--file_format=array_record` (building needs `pip install tensorflow`).',
        '    TFDS says: ' + ' '.join(str(manual).split()),
    ]
  else:
    lines += [
        '  - on a machine with internet (and `pip install tensorflow tensorflow-datasets`), '
        f'run `tfds build {name} --data_dir=DIR --file_format=array_record`,',
        f'    then copy DIR/{name.split(":")[0].split("/")[0]} into {data_dir} here;',
    ]
  lines.append('  - or point --config.dataset.data_dir at a TFDS data_dir where it is prepared.')
  return '\n'.join(lines)


def _random_access_format(builder: Any, name: str, data_dir: str) -> str:
  """The prepared file format that allows reading by index; array_record preferred."""
  from tensorflow_datasets.core import file_adapters  # pylint: disable=g-import-not-at-top
  available = builder.info.available_file_formats()
  usable = available & file_adapters.FileFormat.with_random_access()
  if file_adapters.FileFormat.ARRAY_RECORD in usable:
    return file_adapters.FileFormat.ARRAY_RECORD.value
  if usable:
    return sorted(f.value for f in usable)[0]
  stored = ', '.join(sorted(f.value for f in available)) or 'an unknown format'
  raise ValueError(
      f'TFDS dataset {name!r} in {builder.data_dir} is stored as {stored}, which cannot be '
      'read by index; jssl\'s deterministic, resumable iterator needs random access, which '
      'TFDS provides for array_record. Rebuild it with `tfds build '
      f'{name} --data_dir={data_dir} '
      '--file_format=array_record`, or convert it in place with `tfds convert_format '
      f'--dataset_version_dir={builder.data_dir} --out_file_format=array_record` (both '
      'need TensorFlow).')


def load_tfds(name: str, *, data_dir: str | None = None, image_size: int | None = None,
              train_split: str | None = None, validation_split: str | None = None,
              test_split: str | None = None, image_key: str = 'image',
              label_key: str = 'label') -> Dataset:
  """Opens a prepared TFDS image-classification dataset as train / validation / test sources.

  Split defaults (`default_splits`): cifar10/100, mnist, svhn_cropped, stl10:
  'train[:90%]' / 'train[90%:]' / 'test'; imagenette (no test split): 'train[:90%]' /
  'train[90%:]' / 'validation'; imagenet2012: 'train[:99%]' / 'train[99%:]' / 'validation'.
  Any split string of the TFDS slicing API can be passed instead.

  Args:
    name: TFDS name, optionally with config and version ('imagenette/160px-v2:1.0.0').
    data_dir: TFDS data directory; None means $TFDS_DATA_DIR or ~/tensorflow_datasets.
    image_size: side every image is resized (shorter side, PIL bilinear) and centre-cropped
      to. None keeps the stored size, which is only possible when all images have one size
      (cifar10: 32, stl10: 96); imagenet2012 and imagenette need it.
    train_split: TFDS split read as train; None for the default above.
    validation_split: TFDS split read as validation; None for the default above.
    test_split: TFDS split read as test; None for the default above.
    image_key: the image feature's name.
    label_key: the label feature's name (a `ClassLabel`).

  Returns:
    A `Dataset` of `TfdsSource`s, images uint8 [H, W, C] with C the stored channel count
    (1 for grey datasets), labels int32, num_classes from the label feature.

  Raises:
    MissingDatasetError: the dataset is not prepared in data_dir (nothing is downloaded).
    ValueError: the dataset is stored in a format without random access (tfrecord), has no
      such features, or has images of varying size and image_size is None.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)

  data_dir = resolve_data_dir(data_dir)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as e:
    raise MissingDatasetError(_missing_message(
        name, data_dir, None,
        'it is neither a dataset of the installed TFDS catalog nor prepared in the data_dir'
    )) from e
  if not builder.is_prepared():
    raise MissingDatasetError(_missing_message(
        name, data_dir, builder, 'it is not prepared in the data_dir'))
  file_format = _random_access_format(builder, name, data_dir)

  features = builder.info.features
  for role, key in (('image_key', image_key), ('label_key', label_key)):
    if key not in features:
      raise ValueError(f'TFDS dataset {name!r} has no feature {key!r} (it has '
                       f'{sorted(features.keys())}); pass {role}=... to choose one.')
  image_feature, label_feature = features[image_key], features[label_key]
  stored_shape = tuple(image_feature.shape)
  if len(stored_shape) != 3 or np.dtype(image_feature.np_dtype) != np.uint8:
    raise ValueError(f'feature {image_key!r} of {name!r} is {image_feature}; jssl reads uint8 '
                     'images of shape [H, W, C].')
  if not hasattr(label_feature, 'num_classes'):
    raise ValueError(f'feature {label_key!r} of {name!r} is {label_feature}, not a '
                     'ClassLabel; pass label_key=... to choose the class label.')
  channels = stored_shape[-1]
  if image_size is None:
    if None in stored_shape:
      raise ValueError(f'images of TFDS dataset {name!r} vary in size (stored shape '
                       f'{stored_shape}); pass image_size=... (--config.dataset.image_size) '
                       'to resize them to one size.')
    image_shape = stored_shape
  else:
    if image_size <= 0:
      raise ValueError(f'image_size must be positive, got {image_size}')
    image_shape = (image_size, image_size, channels)

  defaults = default_splits(builder.name, list(builder.info.splits.keys()))
  splits = tuple(given if given is not None else default
                 for given, default in zip((train_split, validation_split, test_split), defaults))
  # Stored encoded images are decoded here with PIL; other features decode as TFDS does.
  decoders = ({image_key: tfds.decode.SkipDecoding()}
              if isinstance(image_feature, tfds.features.Image) else None)
  sources = [TfdsSource(data_source, name=name, split=split, file_format=file_format,
                        image_shape=image_shape, image_size=image_size, image_key=image_key,
                        label_key=label_key)
             for split, data_source in split_sources(builder, name, splits,
                                                     file_format=file_format,
                                                     decoders=decoders)]
  train, validation, test = sources
  return Dataset(name=name, train=train, validation=validation, test=test,
                 num_classes=int(label_feature.num_classes))


def split_sources(builder, name: str, splits, *, file_format, decoders=None) -> list:
  """[(split, random-access data source)] of the train / validation / test `splits`.

  Raises:
    ValueError: a split that selects no example, naming the split and the option to change.
  """
  out = []
  for role, split in zip(('train', 'validation', 'test'), splits):
    try:
      data_source = builder.as_data_source(split=split, decoders=decoders,
                                           file_format=file_format)
    except ValueError as error:  # ArrayRecord refuses a slice that selects no file at all
      if 'can not be of 0 length' not in str(error):
        raise
      data_source = ()
    if not len(data_source):
      raise ValueError(f'the {role} split {split!r} of TFDS dataset {name!r} is empty; '
                       f'choose another {role}_split.')
    out.append((split, data_source))
  return out
