"""PyTorch CPU reference for the speed of jssl's small-CNN SimCLR step on 28x28 images.

Not part of jssl (torch is not a dependency): it times the same model, projector, loss and
optimizer as `experiments/configs/simclr.py:fashion_mnist`, in PyTorch's CPU build, so that
`python -m jssl.bench --config=experiments/configs/simclr.py:fashion_mnist --augment=false`
has something to be compared with. Install torch in a separate environment:

  python3 -m venv /work/torchvenv
  /work/torchvenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
  /work/torchvenv/bin/python experiments/torch_cpu_reference.py --steps=30

One step = forward of both views (512 images, 28x28x1, interleaved as jssl does), NT-Xent,
backward and AdamW, i.e. what jssl's step does *without* augmentation (made once, outside the
timing, as random images), without the online probe and without the collapse diagnostics. The
model mirrors `jssl.models.SmallCNN(widths=(16, 32, 64, 512))`: (x - 0.5) / 0.25, blocks of 3x3
conv (no bias) -> BatchNorm (momentum 0.1 = flax's 0.9, eps 1e-5) -> ReLU with a 2x2 max-pool
before every block after the first while the map is at least 4x4 (28 -> 14 -> 7 -> 3), global
average pooling; projector Linear(512, 512, no bias) -> BN -> ReLU -> Linear(512, 128); AdamW
(lr 1e-3, weight decay 1e-4 on conv/linear weights only, as jssl's mask).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F


class SmallCNN(nn.Module):

  def __init__(self, widths=(16, 32, 64, 512), in_channels=1, size=28):
    super().__init__()
    layers, channels = [], in_channels
    for i, width in enumerate(widths):
      if i > 0 and size >= 4:
        layers.append(nn.MaxPool2d(2, 2))
        size //= 2
      layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                 nn.BatchNorm2d(width, momentum=0.1, eps=1e-5), nn.ReLU(inplace=True)]
      channels = width
    self.blocks = nn.Sequential(*layers)

  def forward(self, x):
    return self.blocks((x - 0.5) / 0.25).mean(dim=(2, 3))


class SimCLR(nn.Module):

  def __init__(self, widths, hidden=512, out=128):
    super().__init__()
    self.encoder = SmallCNN(widths)
    self.projector = nn.Sequential(nn.Linear(widths[-1], hidden, bias=False),
                                   nn.BatchNorm1d(hidden, momentum=0.1, eps=1e-5), nn.ReLU(),
                                   nn.Linear(hidden, out))

  def forward(self, x):
    return self.projector(self.encoder(x))


def nt_xent(z1, z2, temperature):
  """As jssl.losses.nt_xent: 2N anchors, the other view positive, self-similarity masked."""
  n = z1.shape[0]
  z = F.normalize(torch.cat([z1, z2]), dim=-1)
  logits = (z @ z.T) / temperature
  logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), -1e9)
  positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
  return F.cross_entropy(logits, positive)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch_size', type=int, default=256, help='images (each gives 2 views)')
  parser.add_argument('--steps', type=int, default=30, help='timed steps')
  parser.add_argument('--warmup', type=int, default=5)
  parser.add_argument('--threads', type=int, default=0, help='0: torch default')
  parser.add_argument('--channels_last', action='store_true', help='NHWC memory format')
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  model = SimCLR((16, 32, 64, 512))
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = model.to(memory_format=memory_format)
  decay = [p for name, p in model.named_parameters() if name.endswith('weight') and p.ndim > 1]
  no_decay = [p for name, p in model.named_parameters() if not (name.endswith('weight')
                                                                 and p.ndim > 1)]
  optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': 1e-4},
                                 {'params': no_decay, 'weight_decay': 0.0}], lr=1e-3)
  # Two views per image, interleaved [x1_0, x2_0, x1_1, ...] as jssl's SimCLR.
  views = torch.rand(2 * args.batch_size, 1, 28, 28).contiguous(memory_format=memory_format)

  def step():
    optimizer.zero_grad(set_to_none=True)
    z = model(views)
    loss = nt_xent(z[0::2], z[1::2], temperature=0.5)
    loss.backward()
    optimizer.step()
    return loss

  for _ in range(args.warmup):
    step()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
        f'{"channels_last" if args.channels_last else "NCHW"}, batch {args.batch_size} x 2 views '
        f'(no augmentation): step {1e3 * median:.1f} ms median (min {1e3 * min(times):.1f}, '
        f'max {1e3 * max(times):.1f}) = {args.batch_size / median:.1f} images/s')


if __name__ == '__main__':
  main()
