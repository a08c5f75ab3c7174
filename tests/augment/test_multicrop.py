"""Multi-crop: two global views and V - 2 local ones, through the config and the step."""

import numpy as np
import pytest

from jssl import augment
from jssl.augment import presets
from jssl.config import ConfigError
from jssl.config import base_config
from jssl.config import validate_config
from jssl.methods import common


def _config(**augment_fields):
  config = base_config()
  config.method = 'simclr'
  config.simclr = {'temperature': 0.5}
  config.dataset.image_size = 32
  config.augment.preset = 'byol'
  config.augment.update(augment_fields)
  return config


def test_multicrop_appends_local_views_of_the_first_views_kind():
  views = presets.multicrop(presets.get_views('byol', out_size=32), num_local=3, local_size=12,
                            local_scale=(0.05, 0.3))
  assert [v.out_size for v in views] == [32, 32, 12, 12, 12]
  assert views[0].crop_scale == (0.08, 1.0) and views[2].crop_scale == (0.05, 0.3)
  # Photometric settings of the locals are the first (global) view's.
  assert views[2].blur_prob == views[0].blur_prob == 1.0
  assert views[2].solarize_prob == views[0].solarize_prob == 0.0


def test_config_fields_drive_multicrop_and_only_multicrop_methods_see_locals():
  config = _config(num_local_crops=4, crop_scale=(0.14, 1.0))
  views = common.multicrop_views(config, 'SwAV')
  assert [v.out_size for v in views] == [32, 32, 14, 14, 14, 14]  # 32 * 96 / 224 = 13.7
  assert views[0].crop_scale == (0.14, 1.0) and views[-1].crop_scale == (0.05, 0.4)
  assert len(common.views_for(config, 2, 'SimCLR')) == 2  # others ignore the locals
  config.augment.local_crop_size = 8
  assert [v.out_size for v in common.multicrop_views(config, 'DINO')][2:] == [8] * 4
  assert presets.local_crop_size(224) == 96


def test_views_of_two_resolutions_come_out_of_one_augmentation_call():
  views = common.multicrop_views(_config(num_local_crops=2, local_crop_size=8), 'DINO')
  images = np.random.default_rng(0).integers(0, 256, (4, 36, 36, 3), dtype=np.uint8)
  import jax  # pylint: disable=g-import-not-at-top
  out = augment.augment_views(jax.random.key(0), images, views)
  assert [x.shape for x in out] == [(4, 32, 32, 3)] * 2 + [(4, 8, 8, 3)] * 2


@pytest.mark.parametrize('field,value,needle', [
    ('num_local_crops', -1, 'config.augment.num_local_crops=-1'),
    ('local_crop_size', 40, 'config.augment.local_crop_size=40'),
])
def test_bad_multicrop_fields_are_named(field, value, needle):
  config = _config(**{field: value})
  with pytest.raises(ConfigError, match=needle.replace('.', r'\.')):
    validate_config(config, device_count=1)
