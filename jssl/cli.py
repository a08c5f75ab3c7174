"""What the command lines (`jssl.main`, `jssl.bench`) share: absl flag parsing with clear errors."""

from __future__ import annotations

import sys

from absl import flags


def parse_flags(argv, *, program: str = 'jssl'):
  """absl's parser, with a bad config override or flag turned into a one-line error (exit 2).

  `program` starts each message (`jssl: error: ...`); use it as
  `app.run(main, flags_parser=functools.partial(parse_flags, program='jssl.bench'))`.
  """
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as error:  # raised by ml_collections for unknown fields
    text = str(error).strip('\'"').replace('\\n', ' ').replace('\\\'', "'")
    print(f'{program}: error: unknown config field in the command line: {text}\nThe fields a '
          'config has are listed in jssl/config.py (base_config) and in the experiment config '
          'file.', file=sys.stderr)
    sys.exit(2)
  except (flags.Error, ValueError) as error:  # bad values, unknown flags or config variants
    lines = [line for line in str(error).splitlines() if line.strip()]
    if 'Traceback (most recent call last):' in lines:  # keep what was said, not where
      lines = [lines[0], lines[-1]]
    print(f'{program}: error: ' + '\n'.join(lines), file=sys.stderr)
    sys.exit(2)
