"""`python -m jssl.main` processes for the tests, forked from one that has imported jax and jssl.

Importing jax, flax, optax, orbax, matplotlib and jssl costs ~2.5 s of CPU per process: most
of what a bad command line costs (it fails while its flags, config, workdir or data are
checked) and a third of a tiny CLI training run. A server process (`serve`) imports them once
(not jssl.main, and it creates no JAX backend) and forks one child per command line. Each
child is a fresh process: it takes the environment it is given (its own `XLA_FLAGS` device
count), initialises its own JAX backend, and runs `jssl.main` as `__main__` on its own argv,
exactly as `python -m jssl.main` would: an exception that escapes is printed as Python prints
it (a traceback, exit status 1), `sys.exit` codes are kept, stdout and stderr are its own
(files), and it can be killed with SIGKILL like any process.

Environment variables that JAX reads when it is imported (`JAX_*`) must be the server's; a
request with other values is run as an ordinary subprocess instead (`Launcher.popen`).

Client side: `launcher().popen(args, env=..., cwd=..., capture=True)` returns a `Forked`
with the `subprocess.Popen` methods the tests use (pid, poll, wait, send_signal,
communicate, returncode); `launcher().run(...)` is `subprocess.run`.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import tempfile
import threading
import traceback

_SERVER_ENV_PREFIX = 'JAX_'


# ------------------------------------------------------------------------------ the server


def _preimport() -> None:
  """What jssl.main needs, except jssl.main itself: run as `__main__` in each child, it
  defines its absl flags there, once."""
  import jax  # pylint: disable=g-import-not-at-top,unused-import
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot  # pylint: disable=g-import-not-at-top,unused-import
  import orbax.checkpoint  # pylint: disable=g-import-not-at-top,unused-import
  import grain  # pylint: disable=g-import-not-at-top,unused-import
  import tensorboardX.event_file_writer  # pylint: disable=g-import-not-at-top,unused-import
  import tensorboardX.proto.event_pb2  # pylint: disable=g-import-not-at-top,unused-import
  import jssl.data  # pylint: disable=g-import-not-at-top,unused-import
  import jssl.methods  # pylint: disable=g-import-not-at-top,unused-import
  import jssl.train.loop  # pylint: disable=g-import-not-at-top,unused-import
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  assert not xla_bridge._backends, 'a JAX backend exists before fork'  # pylint: disable=protected-access
  assert 'jssl.main' not in sys.modules


def _child(request: dict) -> None:
  """In the forked child: becomes `python -m jssl.main ARGS`; never returns.

  It ends as such a process ends: `SystemExit` (jssl.main's own, or 0 / 1 after an escaped
  exception, printed as Python prints it) goes up through `serve` and the interpreter shuts
  down normally, joining threads and running the atexit handlers (jax.distributed's shutdown
  barrier among them).
  """
  null = os.open(os.devnull, os.O_RDONLY)
  os.dup2(null, 0)  # not the server's request pipe
  os.close(null)
  os.chdir(request['cwd'])
  os.environ.clear()
  os.environ.update(request['env'])
  sys.path[0] = os.getcwd()  # as `python -m` has it
  for fd, path in ((1, request['out']), (2, request['err'])):
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(handle, fd)
    os.close(handle)
  sys.stdout, sys.stderr = (os.fdopen(os.dup(fd), 'w', buffering=1) for fd in (1, 2))
  module = request.get('module', 'jssl.main')
  sys.argv = [os.path.join(os.getcwd(), *module.split('.')) + '.py', *request['args']]
  try:
    runpy.run_module(module, run_name='__main__', alter_sys=True)
  except SystemExit:
    raise
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    raise SystemExit(1) from None
  raise SystemExit(0)


def serve() -> None:
  """Reads JSON requests, one per line, on stdin; answers one JSON line each on stdout.

  {"op": "spawn", "args", "env", "cwd", "out", "err"[, "module"]} -> {"pid"} ("module":
  'jssl.main' by default, or another entry point such as 'jssl.sweep' or 'jssl.bench');
  {"op": "poll", "pid"} -> {"returncode": int or null}; {"op": "wait", "pid"} -> {"returncode"}.
  """
  _preimport()
  replies = os.fdopen(os.dup(1), 'w')
  os.dup2(2, 1)  # a stray print of an import never corrupts the replies
  sys.stdout = sys.stderr
  finished: dict[int, int] = {}
  for line in sys.stdin:
    request = json.loads(line)
    op = request['op']
    if op == 'spawn':
      sys.stdout.flush()
      sys.stderr.flush()
      pid = os.fork()
      if pid == 0:
        _child(request)
      reply = {'pid': pid}
    else:
      pid = request['pid']
      if pid not in finished:
        done, status = os.waitpid(pid, os.WNOHANG if op == 'poll' else 0)
        if done:
          finished[pid] = os.waitstatus_to_exitcode(status)
      reply = {'returncode': finished.get(pid)}
    replies.write(json.dumps(reply) + '\n')
    replies.flush()


# ------------------------------------------------------------------------------ the client


class Forked:
  """A child of the server, seen through the part of `subprocess.Popen` the tests use."""

  def __init__(self, launcher: 'Launcher', pid: int, out: str, err: str, capture: bool):
    self._launcher, self.pid, self._out, self._err = launcher, pid, out, err
    self._capture = capture
    self.returncode: int | None = None

  def poll(self) -> int | None:
    if self.returncode is None:
      self.returncode = self._launcher.request({'op': 'poll', 'pid': self.pid})['returncode']
    return self.returncode

  def wait(self, timeout: float | None = None) -> int:
    if self.returncode is None:
      timer = threading.Timer(timeout, self.kill) if timeout else None
      if timer:
        timer.start()
      try:
        self.returncode = self._launcher.request({'op': 'wait', 'pid': self.pid})['returncode']
      finally:
        if timer:
          timer.cancel()
    return self.returncode

  def send_signal(self, signal_number: int) -> None:
    if self.returncode is None:
      try:
        os.kill(self.pid, signal_number)
      except ProcessLookupError:
        pass

  def kill(self) -> None:
    self.send_signal(9)

  def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
    self.wait(timeout)
    if not self._capture:
      return None, None
    outputs = []
    for path in (self._out, self._err):
      with open(path) as f:
        outputs.append(f.read())
    return outputs[0], outputs[1]


class Launcher:
  """Starts the server on first use (with this process's environment) and talks to it."""

  def __init__(self):
    self._server: subprocess.Popen | None = None
    self._lock = threading.Lock()
    self._scratch = tempfile.mkdtemp(prefix='jssl-cli-fork-')
    self._count = 0

  def _start(self, env: dict) -> None:
    self._server_env = dict(env)
    self._server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__)], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, bufsize=1,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

  def request(self, message: dict) -> dict:
    with self._lock:
      self._server.stdin.write(json.dumps(message) + '\n')
      self._server.stdin.flush()
      line = self._server.stdout.readline()
    if not line:
      raise RuntimeError('the tests/cli_fork.py server died; its stderr is in the test log')
    return json.loads(line)

  def popen(self, args: list[str], *, env: dict, cwd: str, capture: bool = True,
            module: str = 'jssl.main'):
    """`python -m MODULE ARGS` as a forked child (or a subprocess, see the module doc)."""
    if self._server is None:
      self._start(env)
    jax_env = lambda e: {k: v for k, v in e.items() if k.startswith(_SERVER_ENV_PREFIX)}
    if jax_env(env) != jax_env(self._server_env):
      pipe = subprocess.PIPE if capture else subprocess.DEVNULL
      return subprocess.Popen([sys.executable, '-m', module, *args], env=env, cwd=cwd,
                              stdout=pipe, stderr=pipe, text=True)
    self._count += 1
    out, err = (os.path.join(self._scratch, f'{self._count}.{name}') for name in ('out', 'err'))
    pid = self.request({'op': 'spawn', 'args': list(args), 'env': dict(env), 'cwd': cwd,
                        'out': out, 'err': err, 'module': module})['pid']
    return Forked(self, pid, out, err, capture)

  def run(self, args: list[str], *, env: dict, cwd: str, timeout: float = 600,
          module: str = 'jssl.main'):
    """`subprocess.run([python, -m, MODULE, *args], capture_output=True, text=True)`."""
    process = self.popen(args, env=env, cwd=cwd, module=module)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


_LAUNCHER: Launcher | None = None


def launcher() -> Launcher:
  """This process's launcher (one server per pytest worker)."""
  global _LAUNCHER  # pylint: disable=global-statement
  if _LAUNCHER is None:
    _LAUNCHER = Launcher()
  return _LAUNCHER


if __name__ == '__main__':
  serve()
