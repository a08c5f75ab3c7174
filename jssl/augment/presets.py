"""Named augmentation presets: the views of SimCLR, BYOL and a variant for tiny images.

    views = get_views('byol', out_size=32, blur_prob=0.0)  # overrides apply to every view
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from jssl.augment.image import ViewConfig


def _simclr(out_size: int) -> tuple[ViewConfig, ...]:
  """SimCLR on ImageNet (Chen et al., 2020, Appendix A): colour strength s = 1, blur p = 0.5."""
  view = ViewConfig(
      out_size=out_size, crop_scale=(0.08, 1.0), flip_prob=0.5, jitter_prob=0.8,
      brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, grayscale_prob=0.2,
      blur_prob=0.5, blur_sigma=(0.1, 2.0), solarize_prob=0.0)
  return (view, view)


def _simclr_cifar(out_size: int) -> tuple[ViewConfig, ...]:
  """SimCLR on CIFAR (Chen et al., 2020, Appendix B.9): no blur, colour strength s = 0.5."""
  return tuple(
      dataclasses.replace(view, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                          blur_prob=0.0)
      for view in _simclr(out_size))


def _byol(out_size: int) -> tuple[ViewConfig, ...]:
  """BYOL's asymmetric pair (Grill et al., 2020, Table 6)."""
  common = dict(
      out_size=out_size, crop_scale=(0.08, 1.0), flip_prob=0.5, jitter_prob=0.8,
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_prob=0.2,
      blur_sigma=(0.1, 2.0))
  return (ViewConfig(**common, blur_prob=1.0, solarize_prob=0.0),
          ViewConfig(**common, blur_prob=0.1, solarize_prob=0.2))


def _small(out_size: int) -> tuple[ViewConfig, ...]:
  """Tiny (grayscale) images such as 8x8 digits or 28x28 Fashion-MNIST.

  Milder crops (at least 20% of the area) because a small crop of a tiny digit is mostly
  background; brightness / contrast jitter only; no grayscale, blur or solarization.
  """
  view = ViewConfig(
      out_size=out_size, crop_scale=(0.2, 1.0), flip_prob=0.5, jitter_prob=0.8,
      brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0, grayscale_prob=0.0,
      blur_prob=0.0, solarize_prob=0.0)
  return (view, view)


def _crop_flip(out_size: int) -> tuple[ViewConfig, ...]:
  """Random resized crop (20-100% of the area) and horizontal flip only: no colour change.

  For methods whose views are made from an image's colours (CMC's L and ab channels), which a
  colour jitter or grayscale conversion would corrupt (Tian et al., 2019, crop as in their code).
  """
  view = ViewConfig(out_size=out_size, crop_scale=(0.2, 1.0), flip_prob=0.5)
  return (view, view)


PRESETS: dict[str, Callable[[int], tuple[ViewConfig, ...]]] = {
    'simclr': _simclr,
    'simclr_cifar': _simclr_cifar,
    'byol': _byol,
    'small': _small,
    'crop_flip': _crop_flip,
}

_FIELDS = tuple(field.name for field in dataclasses.fields(ViewConfig))

# Named transformations for composition studies (SimCLR, Chen et al. 2020, Fig. 5): each is
# a set of ViewConfig fields applied on top of the identity view (the whole image, resized).
# Strengths are the `small` preset's (crop, colour) or SimCLR's (cutout, rotation); on
# grayscale images colour jitter changes only brightness and contrast.
COMPOSE_TRANSFORMS: dict[str, dict] = {
    'crop': dict(crop_scale=(0.2, 1.0), flip_prob=0.5),
    'cutout': dict(cutout_prob=1.0, cutout_size=0.5),
    'color': dict(jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                  grayscale_prob=0.2),
    'blur': dict(blur_prob=1.0, blur_sigma=(0.1, 1.0)),
    'rotate': dict(rotate_prob=1.0),
}


def compose_views(names: str, *, out_size: int, num_views: int = 2) -> tuple[ViewConfig, ...]:
  """Views made of exactly the named transformations, e.g. 'crop+color' (no preset).

  Every view gets the same composition; the transformations run in `augment_example`'s fixed
  order (crop, flip, colour, blur, cutout, rotation), so 'a+b' equals 'b+a'.

  Args:
    names: '+'-joined keys of `COMPOSE_TRANSFORMS`; 'none' is the identity view.
    out_size: side of the views.
    num_views: how many (identical) view configurations.

  Raises:
    ValueError: an unknown or repeated name.
  """
  parts = [part.strip() for part in names.split('+')]
  if parts == ['none']:
    parts = []
  unknown = [part for part in parts if part not in COMPOSE_TRANSFORMS]
  if unknown or len(set(parts)) != len(parts):
    raise ValueError(f'augment.compose={names!r}: give distinct transformations from '
                     f'{sorted(COMPOSE_TRANSFORMS)} joined by "+" (e.g. "crop+color"), or "none"')
  fields = {}
  for part in parts:
    fields.update(COMPOSE_TRANSFORMS[part])
  view = ViewConfig(out_size=out_size, crop_scale=fields.pop('crop_scale', (1.0, 1.0)),
                    crop_ratio=(1.0, 1.0) if 'crop' not in parts else (3 / 4, 4 / 3), **fields)
  return (view,) * num_views


def get_views(name: str, *, out_size: int, **overrides) -> tuple[ViewConfig, ...]:
  """The views of a named preset, with `overrides` applied to every view.

  Args:
    name: one of `PRESETS`.
    out_size: side of every output view.
    **overrides: `ViewConfig` fields, e.g. `blur_prob=0.0`.

  Returns:
    Tuple of `ViewConfig`, one per view.

  Raises:
    ValueError: unknown preset or unknown field.
  """
  if name not in PRESETS:
    raise ValueError(f'Unknown augmentation preset {name!r}; valid presets: {sorted(PRESETS)}')
  unknown = sorted(set(overrides) - set(_FIELDS))
  if unknown:
    raise ValueError(f'Unknown ViewConfig field(s) {unknown} in overrides for preset {name!r}; '
                     f'valid fields: {list(_FIELDS)}')
  return tuple(dataclasses.replace(view, **overrides) for view in PRESETS[name](out_size))


# Fields of a config's `augment` section that are not ViewConfig overrides.
_MULTICROP_FIELDS = ('num_local_crops', 'local_crop_size', 'local_crop_scale', 'compose')


def local_crop_size(image_size: int) -> int:
  """Default side of a multi-crop local view: 96/224 of the global views (SwAV, DINO)."""
  return max(1, round(image_size * 96 / 224))


def multicrop(global_views: tuple[ViewConfig, ...], *, num_local: int, local_size: int,
              local_scale: tuple[float, float]) -> tuple[ViewConfig, ...]:
  """Global views followed by `num_local` small crops (Caron et al. 2020, multi-crop).

  Each local view is the first global view with a smaller output side and crop scale, so the
  photometric augmentations stay the same.

  Args:
    global_views: the full-resolution views (e.g. a preset's pair).
    num_local: number of local views to append (0 returns `global_views`).
    local_size: side of the local views.
    local_scale: (min, max) fraction of the image area a local crop keeps.

  Returns:
    `global_views + (local,) * num_local`.
  """
  local = dataclasses.replace(global_views[0], out_size=local_size, crop_scale=local_scale)
  return tuple(global_views) + (local,) * num_local


def views_from_config(augment_config, *, out_size: int,
                      multi_crop: bool = False) -> tuple[ViewConfig, ...]:
  """`get_views` from a config's `augment` section: `preset` plus every field that is set.

  A non-empty `compose` ('crop+color', see `compose_views`) replaces the preset.

  Fields left at None keep the preset's value; e.g. `--config.augment.blur_prob=0.0`.

  Args:
    augment_config: the config's `augment` section.
    out_size: side of the preset's views.
    multi_crop: append `augment_config.num_local_crops` local views (see `multicrop`); only
      methods that consume them ask for this.

  Returns:
    Tuple of `ViewConfig`.
  """
  overrides = {key: value for key, value in augment_config.items()
               if key not in ('preset',) + _MULTICROP_FIELDS and value is not None}
  compose = augment_config.get('compose')
  if compose:  # a composition study replaces the preset; the overrides still apply
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
      raise ValueError(f'Unknown ViewConfig field(s) {unknown}; valid fields: {list(_FIELDS)}')
    views = tuple(dataclasses.replace(view, **overrides)
                  for view in compose_views(compose, out_size=out_size))
  else:
    views = get_views(augment_config.preset, out_size=out_size, **overrides)
  num_local = augment_config.get('num_local_crops', 0)
  if not multi_crop or not num_local:
    return views
  size = augment_config.get('local_crop_size') or local_crop_size(out_size)
  return multicrop(views, num_local=num_local, local_size=size,
                   local_scale=tuple(augment_config.local_crop_scale))
