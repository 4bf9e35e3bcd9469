"""`smsgate` commands for the tests, each in a process of its own, without paying for
Python's start and smsgate's imports each time (about 1 s a command on the CI machine,
more than most commands take): one runner process imports `smsgate.cli` once and forks
a child per command. The child is the command's process, as `python -m smsgate.cli`
would be: its arguments, an empty stdin, its own stdout and stderr, its exit status;
nothing it does reaches the runner or the next command.

`test_cli.py` checks that a command run so answers as `python -m smsgate.cli` does.
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, NoReturn

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0  # seconds one command may take


class CliRunner:
    """The runner process (started on first use); `run` answers as `subprocess.run`
    with capture_output and text would."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one command at a time on the pipe (callers' threads)

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess:
        with self._lock:
            return self._run(args)

    def _run(self, args: Sequence[str]) -> subprocess.CompletedProcess:
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(list(args)) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise AssertionError(f"smsgate {' '.join(args)}: no answer in {TIMEOUT:.0f} s")
        code, out, err = json.loads(line)
        return subprocess.CompletedProcess(list(args), code, out, err)

    def _started(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            # -c: the working directory (ROOT) comes first on sys.path, as for `-m`
            self._proc = subprocess.Popen(
                [sys.executable, "-c", f"import sys; sys.path.insert(1, {str(ROOT / 'tests')!r})"
                 "; import cli_runner; cli_runner.serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        return self._proc

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


def serve() -> None:
    """The runner: one JSON list of arguments a line in, one [status, stdout, stderr]
    line out."""
    from smsgate.cli import main

    for line in sys.stdin:
        print(json.dumps(_forked(main, json.loads(line))), flush=True)


def _forked(main: Callable[[list[str]], int], argv: list[str]) -> list:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _command(main, argv, out, err)
        _, status = os.waitpid(pid, 0)
        return [os.waitstatus_to_exitcode(status), _text(out), _text(err)]


def _command(main: Callable[[list[str]], int], argv: list[str], out: IO,
             err: IO) -> NoReturn:
    """In the child: the command, on its own stdin, stdout and stderr, then exit as
    `sys.exit(main())` would."""
    code: object = 1
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - not the runner's buffered one
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        if code is not None and not isinstance(code, int):  # sys.exit("message")
            print(code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)  # type: ignore[arg-type]


def _text(file: IO) -> str:
    file.seek(0)
    return file.read().decode()
