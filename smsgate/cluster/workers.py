"""`serve --workers N`: N worker processes on one machine, sharing its ports.

One Python process runs on one core (the GIL). On PostgreSQL several nodes already
share the work (SPEC §9), so a machine's other cores are used by running several
nodes on it; this module makes that one command. The supervisor (this process) binds
the listening sockets, forks N workers that inherit them (each worker is the cluster
node `NODE-1` .. `NODE-N`: its own heartbeat, dispatcher and upstream binds, with the
bind policy, receipts and take-over of the cluster), prints the `… listening on …`
lines once every worker is up, and then only watches: SIGTERM or SIGINT is passed on
to the workers, and a worker that dies is started again (its messages meanwhile are
taken over by the others, as for any dead node).

Every worker accepts on the same sockets, so the kernel hands each new connection to
one of them. Per-process state stays per worker: the per-IP connection caps and the
failed-login back-off count per worker, and a /metrics scrape reads the worker that
takes it (docs/operations.md).
"""

import asyncio
import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from ..config import Settings
from ..core.models import NODE_DEAD_AFTER

START_TIMEOUT = 60.0  # seconds for every worker to listen
# Seconds before a dead worker is started again: its node id is free once the node is
# dead for the cluster (a claim before that is refused).
RESTART_DELAY = NODE_DEAD_AFTER + 1.0

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
Serve = Callable[..., Coroutine[Any, Any, None]]  # app.serve


class WorkerError(RuntimeError):
    """The workers could not be started (one line for the CLI)."""


def listening_sockets(settings: Settings) -> dict[str, socket.socket]:
    """The sockets `serve` listens on, bound here so that every worker shares them (a
    port 0 is picked once, for all)."""
    ports = {"smpp": settings.smpp_port, "http": settings.http_port,
             "admin": settings.admin_port}
    if settings.smpp_tls_port is not None:
        ports["smpp_tls"] = settings.smpp_tls_port
    sockets = {}
    try:
        for name, port in ports.items():
            sockets[name] = socket.create_server((settings.host, port), backlog=1024,
                                                 reuse_port=False)
            sockets[name].setblocking(False)
    except OSError as exc:
        for sock in sockets.values():
            sock.close()
        raise WorkerError(f"cannot listen on {settings.host}:{ports[name]}: "
                          f"{exc.strerror}") from None
    return sockets


def run(settings: Settings, serve: Serve, runner: Callable[[Coroutine], object]) -> int:
    """Start `settings.workers` workers and watch them until SIGTERM/SIGINT; the exit
    status for the CLI."""
    if not settings.database_url.startswith("postgres"):
        raise WorkerError("--workers needs PostgreSQL: SQLite is one node only (SPEC §9)")
    sockets = listening_sockets(settings)
    supervisor = Supervisor(settings, sockets, serve, runner)
    try:
        return supervisor.run()
    finally:
        for sock in sockets.values():
            sock.close()


class Supervisor:
    def __init__(self, settings: Settings, sockets: dict[str, socket.socket],
                 serve: Serve, runner: Callable[[Coroutine], object]) -> None:
        self.settings = settings
        self.sockets = sockets
        self.serve = serve
        self.runner = runner
        self.workers: dict[int, int] = {}  # pid -> worker number
        self.stopping = False

    def node_id(self, number: int) -> str:
        return f"{self.settings.node_id}-{number}"

    def run(self) -> int:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._stop)
        ready_r, ready_w = os.pipe()
        for number in range(1, self.settings.workers + 1):
            self._start(number, ready_w)
        os.close(ready_w)
        try:
            self._wait_ready(ready_r)
        except WorkerError:
            self._stop()
            self._reap()
            raise
        finally:
            os.close(ready_r)
        self._announce()
        return self._watch()

    def _start(self, number: int, ready_w: int | None) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Stop signals wait across the fork: the worker must never run the supervisor's
        # handler, and the supervisor forwards a stop only once it knows the new pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid:
            self.workers[pid] = number
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            return
        code = 0
        try:  # the worker: never returns into the supervisor's code
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)  # serve installs its own handlers;
            # until it has, a stop stays blocked (the default action would end the
            # worker without its clean stop: unbinds, flush, its node marked stopped).
            settings = replace(self.settings, node_id=self.node_id(number), workers=1)
            from ..servers import log_format
            log_format.configure(settings.log_level, settings.log_format, settings.node_id,
                                 text_names_node=True)
            self.runner(self._worker(settings, ready_w))
        except BaseException as exc:  # reported; then this process ends
            if not isinstance(exc, KeyboardInterrupt | SystemExit):
                print(f"smsgate: worker {self.node_id(number)}: {exc}", file=sys.stderr)
            code = getattr(exc, "code", 1) if isinstance(exc, SystemExit) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)

    async def _worker(self, settings: Settings, ready_w: int | None) -> None:
        ready = asyncio.Event()
        serving = asyncio.ensure_future(
            self.serve(settings, ready, sockets=self.sockets, announce=False))
        waiting = asyncio.ensure_future(ready.wait())
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # serve handles them now
        if ready.is_set() and ready_w is not None:
            os.write(ready_w, b"+")
            os.close(ready_w)
        await serving

    def _wait_ready(self, ready_r: int) -> None:
        """One byte per worker once it listens; a worker that exits first, or a slow
        start, is an error (its own message is on stderr)."""
        deadline = time.monotonic() + START_TIMEOUT
        count = 0
        while count < self.settings.workers:
            if self.stopping:
                raise WorkerError("stopped while the workers were starting")
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
            if pid:
                number = self.workers.pop(pid, 0)
                raise WorkerError(f"worker {self.node_id(number)} exited while starting "
                                  f"({os.waitstatus_to_exitcode(wait_status)})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError(f"the workers did not start within {START_TIMEOUT:.0f} s")
            readable, _, _ = select.select([ready_r], [], [], min(remaining, 1.0))
            if not readable:
                continue
            count += len(os.read(ready_r, 64))

    def _announce(self) -> None:
        names = {"smpp": "SMPP", "http": "HTTP", "smpp_tls": "SMPP TLS", "admin": "Admin"}
        for key in ("smpp", "http", "smpp_tls", "admin"):
            if key in self.sockets:
                host, port = self.sockets[key].getsockname()[:2]
                print(f"{names[key]} listening on {host}:{port}", flush=True)
        ids = ", ".join(self.node_id(n) for n in sorted(self.workers.values()))
        print(f"{len(self.workers)} workers running: {ids}", flush=True)

    def _watch(self) -> int:
        """Until every worker has ended after a stop; a worker that dies otherwise is
        started again after RESTART_DELAY."""
        status = 0
        while self.workers:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            number = self.workers.pop(pid, None)
            if number is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if self.stopping:
                if code:
                    print(f"smsgate: worker {self.node_id(number)} (pid {pid}) ended with "
                          f"{code}", file=sys.stderr, flush=True)
                    status = status or 1
                continue
            print(f"smsgate: worker {self.node_id(number)} (pid {pid}) ended with "
                  f"{code}; starting it again in {RESTART_DELAY:g} s", file=sys.stderr,
                  flush=True)
            time.sleep(RESTART_DELAY)
            if not self.stopping:
                self._start(number, None)
        return status

    def _stop(self, *_signal: object) -> None:
        self.stopping = True
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, _ = os.wait()
            except ChildProcessError:
                return
            self.workers.pop(pid, None)
