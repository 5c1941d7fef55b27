"""The one place that runs a subprocess: argv lists only, a scrubbed environment, clear errors.

run() and stream() wait for the command; spawn() starts a child that runs beside kiln (qemu)
and is always killed and reaped; detach() starts a service meant to outlive kiln (the embedded
registry); interactive() hands the terminal over; query() asks a credential helper.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kiln.errors import CommandError

# What a child process inherits from us; everything else is dropped so that builds do not
# depend on whoever happens to run them.
PASSED = ("PATH", "HOME", "TMPDIR", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
          "DOCKER_TLS_VERIFY", "http_proxy", "https_proxy", "no_proxy")
TAIL = 30
PR_SET_PDEATHSIG = 1  # prctl(2): the signal the kernel sends us when our parent dies


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update({"LC_ALL": "C.UTF-8", "TZ": "UTC"})
    env.update(extra or {})
    return env


def _start(argv: Sequence[str | Path], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start `argv` with the scrubbed environment; a missing program is a clear error."""
    args = [str(a) for a in argv]
    try:
        return subprocess.Popen(args, **kwargs)
    except FileNotFoundError:
        raise CommandError(f"{args[0]}: command not found (install it; see README.md)") from None


def _piped(argv: Sequence[str | Path], env: Mapping[str, str] | None,
           cwd: Path | None) -> subprocess.Popen[str]:
    proc: subprocess.Popen[str] = _start(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=clean_env(env), cwd=cwd, text=True, errors="replace")
    return proc


def _failed(argv: Sequence[str | Path], code: int, lines: Iterable[str]) -> CommandError:
    tail = "".join(deque(lines, maxlen=TAIL)).rstrip()
    return CommandError(f"`{' '.join(str(a) for a in argv)}` exited with {code}:\n{tail}")


def run(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, timeout: float | None = None) -> str:
    """Run `argv`, return its stdout+stderr; raise CommandError with the tail on failure."""
    proc = _piped(argv, env, cwd)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
        code = proc.wait(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise _failed(argv, code, lines)
    return "".join(lines)


def detach(argv: Sequence[str | Path], *, log: Path, env: Mapping[str, str] | None = None,
           cwd: Path | None = None) -> int:
    """Start a service that outlives us (the embedded registry) in its own session, output
    appended to `log`; its pid. Whoever stops it later reaps it (or init does)."""
    with log.open("ab") as out:
        proc: subprocess.Popen[bytes] = _start(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=clean_env(env), cwd=cwd, start_new_session=True)
    return proc.pid


class Child:
    """A process spawn() started, alive until stop() or the end of its `with` block: leaving
    the block in any way (an exception, Ctrl-C, SIGTERM, which the commands turn into an
    exception) kills and reaps it. If kiln is killed outright, the kernel kills it
    (PR_SET_PDEATHSIG), so it never outlives us."""

    def __init__(self, argv: list[str], proc: subprocess.Popen[bytes], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.pid = proc.pid
        self._proc = proc

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def returncode(self) -> int | None:
        """Its exit code once it has exited (reaped then), None while it runs."""
        return self._proc.poll()

    def wait(self, timeout: float) -> int:
        """Its exit code; CommandError (with its output's tail) if it still runs after
        `timeout` seconds."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise CommandError(f"`{' '.join(self.argv)}` still running after {timeout:.0f}s:\n"
                               f"{self.tail()}") from None

    def stop(self) -> int:
        """Kill it if it still runs, and reap it; its exit code. Idempotent. A second Ctrl-C
        or a SIGTERM meanwhile lands once it is reaped, so no zombie is left."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if self._proc.poll() is None:
                self._proc.kill()
            return self._proc.wait()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def tail(self, lines: int = TAIL) -> str:
        """The last lines of its output (stdout and stderr, as written to its log)."""
        try:
            with self.log.open(errors="replace") as f:
                return "".join(deque(f, maxlen=lines)).rstrip()
        except FileNotFoundError:
            return ""

    def failure(self) -> CommandError:
        """What run() would raise for it: the command, its exit code, its output's tail."""
        code = self._proc.poll()
        if code is None:
            return CommandError(f"`{' '.join(self.argv)}` is still running:\n{self.tail()}")
        return _failed(self.argv, code, [self.tail()])


def spawn(argv: Sequence[str | Path], *, log: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> Child:
    """Start `argv` (a machine, a server a test talks to) as a child that never outlives us:
    use the result in a `with` block (Child). stdout and stderr go to `log` (truncated), stdin
    is /dev/null. It runs in its own session, so a Ctrl-C in the terminal reaches kiln only,
    which then stops it: in order, after what it was doing."""
    args = [str(a) for a in argv]
    parent = os.getpid()

    def die_with_parent() -> None:  # in the child, between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # we died before prctl: nobody would kill it
            os.kill(os.getpid(), signal.SIGKILL)

    with log.open("wb") as out:
        proc: subprocess.Popen[bytes] = _start(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=clean_env(env), cwd=cwd, start_new_session=True, preexec_fn=die_with_parent)
    return Child(args, proc, log)


def free_port() -> int:
    """A loopback TCP port free right now, for a child to listen on (the embedded registry,
    qemu's forwarded SSH port). Another process may take it before the child binds it: callers
    that keep a port across runs check it again (kiln.embedded)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def interactive(argv: Sequence[str | Path]) -> int:
    """Run `argv` on this terminal (stdin, stdout and stderr inherited); return its exit code."""
    proc = _start(argv, env=clean_env({"TERM": os.environ.get("TERM", "xterm")}))
    return int(proc.wait())


def stream(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None,
           cwd: Path | None = None) -> Iterator[str]:
    """Run `argv`, yielding its output line by line as it comes; raise like run() on failure."""
    proc = _piped(argv, env, cwd)
    tail: deque[str] = deque(maxlen=TAIL)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            yield line.rstrip("\n")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        raise _failed(argv, code, tail)


def query(argv: Sequence[str | Path], *, data: str, timeout: float,
          env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run a helper that answers on stdout what it is asked on stdin (Docker's credential
    helpers): (exit code, stdout, stderr), never raising on a non-zero exit, because what the
    output holds may be a secret that must not reach an error message. `env` is the whole
    environment when given (a helper needs its cloud's variables), else the scrubbed one."""
    proc: subprocess.Popen[str] = _start(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(env) if env is not None else clean_env(), text=True, errors="replace")
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise CommandError(f"`{' '.join(str(a) for a in argv)}` did not answer within "
                           f"{timeout:.0f}s") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, out, err
