"""What the command lines (`jssl.main`, `jssl.bench`) share: flag parsing and input checks
that end in one clean message (`<program>: error: ...`, exit status 2) instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from typing import NoReturn

from absl import flags

EXIT_USAGE = 2


def fail(program: str, message: str) -> NoReturn:
  print(f'{program}: error: {message}', file=sys.stderr)
  sys.exit(EXIT_USAGE)


def _config_spec(argv) -> str | None:
  """The value of --config in argv (`--config=X` or `--config X`), or None."""
  for i, arg in enumerate(argv[1:], start=1):
    if arg.startswith('--config='):
      return arg[len('--config='):]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _where(error: BaseException, path: str) -> str:
  """' (file.py line N)' for the innermost frame of `path` in the error's traceback."""
  if isinstance(error, SyntaxError) and error.lineno:
    return f' ({path} line {error.lineno})'
  frames = [f for f in traceback.extract_tb(error.__traceback__)
            if os.path.abspath(f.filename) == os.path.abspath(path)]
  return f' ({path} line {frames[-1].lineno})' if frames else ''


def check_config_file(spec: str) -> None:
  """Loads `path[:variant]` as `--config=` will, raising ValueError with one clear line for a
  missing file, a file that does not import, no `get_config`, a `get_config` that raises, or
  one that returns something other than a ConfigDict."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  path, _, variant = spec.partition(':')
  if not os.path.isfile(path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    here = os.path.join(root, 'experiments', 'configs', os.path.basename(path))
    hint = (f' Did you mean --config={os.path.relpath(here)}?' if os.path.isfile(here) else
            ' The experiment configs are in experiments/configs/, e.g. '
            '--config=experiments/configs/simclr.py.')
    what = 'is a directory' if os.path.isdir(path) else 'does not exist'
    raise ValueError(f'config file {path!r} {what} (from {os.getcwd()}).{hint}')
  module_spec = importlib.util.spec_from_file_location('jssl_config_check', path)
  if module_spec is None or module_spec.loader is None:
    raise ValueError(f'config file {path!r} is not a Python file; give a .py file that defines '
                     'get_config(arg=None).')
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as error:  # pylint: disable=broad-except
    detail = error.msg if isinstance(error, SyntaxError) else str(error)
    raise ValueError(f'config file {path!r} could not be loaded: {type(error).__name__}: '
                     f'{detail}{_where(error, path)}. Fix the file.') from None
  get_config = getattr(module, 'get_config', None)
  if not callable(get_config):
    raise ValueError(f'config file {path!r} defines no get_config(arg=None) function; a jssl '
                     'config returns an ml_collections.ConfigDict from get_config (see '
                     'experiments/configs/simclr.py).')
  try:
    config = get_config(variant) if variant else get_config()
  except Exception as error:  # pylint: disable=broad-except
    call = f'get_config({variant!r})' if variant else 'get_config()'
    raise ValueError(f'{call} of {path!r} raised {type(error).__name__}: {error}'
                     f'{_where(error, path)}.') from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ValueError(f'get_config of {path!r} returned {type(config).__name__!r}, not an '
                     'ml_collections.ConfigDict.')


def parse_flags(argv, *, program: str = 'jssl'):
  """absl's parser, with a bad config file, override or flag turned into a clean error (exit 2).

  `program` starts each message (`jssl: error: ...`); use it as
  `app.run(main, flags_parser=functools.partial(parse_flags, program='jssl.bench'))`.
  """
  spec = _config_spec(argv)
  if spec:
    try:
      check_config_file(spec)
    except ValueError as error:
      fail(program, str(error))
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as error:  # raised by ml_collections for unknown fields
    text = str(error).strip('\'"').replace('\\n', ' ').replace('\\\'', "'")
    fail(program, f'unknown config field in the command line: {text}\nThe fields a config has '
         'are listed in jssl/config.py (base_config) and in the experiment config file.')
  except (flags.Error, ValueError, TypeError) as error:  # bad values, unknown flags, variants
    lines = [line for line in str(error).splitlines() if line.strip()]
    if 'Traceback (most recent call last):' in lines:  # keep what was said, not where
      lines = [lines[0], lines[-1]]
    fail(program, '\n'.join(lines) or type(error).__name__)


def check_workdir(program: str, workdir: str) -> None:
  """Exits with a clean message unless `workdir` is (or can be made) a writable directory."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    fail(program, f'--workdir={workdir} is a file, not a directory. Give a directory (it is '
         'created if missing), e.g. a new --workdir.')
  probe = os.path.join(workdir, f'.jssl_write_check.{os.getpid()}')
  try:
    os.makedirs(workdir, exist_ok=True)
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as error:
    fail(program, f'--workdir={workdir} cannot be written ({error.strerror or error}). Give a '
         'directory you can write to.')
