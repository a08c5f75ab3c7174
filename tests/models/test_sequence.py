"""The sequence and grid networks of CPC: padding never reaches the real steps, the GRU and the
row-causal context never see the future."""

import jax
import jax.numpy as jnp
import numpy as np

from jssl.models.sequence import (Conv1DEncoder, GRUContext, RowCausalContext,
                                  downsampled_lengths, step_mask)


def test_conv1d_encoder_ignores_padding_and_downsamples_lengths():
  encoder = Conv1DEncoder(widths=(8, 6), kernel_sizes=(4, 3), strides=(2, 2))
  x = jax.random.normal(jax.random.key(0), (3, 13, 2))
  lengths = jnp.asarray([13, 7, 1])
  params = encoder.init(jax.random.key(1), x, lengths)
  z, new = encoder.apply(params, x, lengths)
  assert z.shape == (3, 4, 6) and new.tolist() == [4, 2, 1]  # ceil(ceil(n / 2) / 2)
  np.testing.assert_array_equal(new, downsampled_lengths(lengths, (2, 2)))
  assert np.all(np.asarray(z)[~np.asarray(step_mask(new, 4))] == 0)
  # Garbage past each length changes nothing.
  noisy = jnp.where(step_mask(lengths, 13)[..., None], x, 1e3)
  np.testing.assert_allclose(encoder.apply(params, noisy, lengths)[0], z, atol=1e-6)
  # A series' encoding does not depend on the rest of the batch.
  np.testing.assert_allclose(encoder.apply(params, x[1:2], lengths[1:2])[0], z[1:2], atol=1e-6)


def test_gru_context_is_causal():
  context = GRUContext(hidden_dim=5)
  z = jax.random.normal(jax.random.key(0), (2, 6, 3))
  params = context.init(jax.random.key(1), z)
  c = context.apply(params, z)
  changed = context.apply(params, z.at[:, 4].add(10.0))
  np.testing.assert_allclose(changed[:, :4], c[:, :4], atol=1e-6)
  assert not np.allclose(changed[:, 4], c[:, 4])


def test_row_causal_context_reads_only_rows_above_and_its_own():
  context = RowCausalContext(hidden_dim=4, num_layers=3, kernel_size=3)
  grid = jax.random.normal(jax.random.key(0), (2, 6, 5, 3))
  params = context.init(jax.random.key(1), grid)
  c = context.apply(params, grid)
  assert c.shape == (2, 6, 5, 4)
  changed = context.apply(params, grid.at[:, 3].add(10.0))  # row 3 changes
  np.testing.assert_allclose(changed[:, :3], c[:, :3], atol=1e-6)
  assert not np.allclose(changed[:, 3:], c[:, 3:])
  # ... and a change at one column of row 0 reaches the neighbouring columns below it.
  moved = context.apply(params, grid.at[:, 0, 2].add(10.0))
  assert not np.allclose(moved[:, 1, 1], c[:, 1, 1])
