"""Pure, jit-compatible image augmentations (SimCLR / BYOL views) on device."""

from jssl.augment.image import augment_example
from jssl.augment.image import augment_view
from jssl.augment.image import augment_views
from jssl.augment.image import center_resize
from jssl.augment.image import color_jitter
from jssl.augment.image import cutout
from jssl.augment.image import eval_view
from jssl.augment.image import map_examples
from jssl.augment.image import random_blur
from jssl.augment.image import random_flip
from jssl.augment.image import random_grayscale
from jssl.augment.image import random_resized_crop
from jssl.augment.image import random_solarize
from jssl.augment.image import rotate90
from jssl.augment.image import to_float
from jssl.augment.image import ViewConfig
from jssl.augment.presets import COMPOSE_TRANSFORMS
from jssl.augment.presets import compose_views
from jssl.augment.presets import get_views
from jssl.augment.presets import local_crop_size
from jssl.augment.presets import multicrop
from jssl.augment.presets import PRESETS
from jssl.augment.presets import views_from_config
from jssl.augment.text import mask_tokens
from jssl.augment.text import pack_pair
from jssl.augment.text import random_ordinary_tokens
