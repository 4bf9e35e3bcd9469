"""The submit pipeline's checks alone: µs a message of `SubmitPipeline.prepare` for a
submit_sm's request (one destination), and for a 100-number HTTP request, without I/O.

    .venv/bin/python bench/prepare.py [--runs 7] [--against OLD_SUBMIT_PY]

`--against` times another version of core/submit.py (for example
`git show <rev>:smsgate/core/submit.py > /tmp/submit_old.py`) beside this tree's, their
runs interleaved so that a busy moment of the machine hits both alike; medians printed.
"""

import argparse
import importlib.util
import itertools
import statistics
import sys
import time
from collections.abc import Callable

from smsgate.core.models import RUNNING, Account, Route
from smsgate.core.routing import RoutingTable
from smsgate.core.submit import SubmitPipeline, SubmitRequest

CALLS = 20_000  # a timed run


def pipeline(cls: type) -> SubmitPipeline:
    table = RoutingTable([Route("", "simulator", price=1), Route("44", "uk", price=3)])
    return cls(routing=lambda: table, connector_status=lambda name: RUNNING,
               next_id=itertools.count(1).__next__, writer=None, dispatch=None)


def requests() -> dict[str, tuple[SubmitRequest, int]]:
    """Each case's request, and how many messages it makes."""
    account = Account("bench", "x", id=1)  # tps 0: unlimited, never refused
    one = SubmitRequest(account=account, source_addr="Bench", destinations=["447700900001"],
                        payload=b"Your code is 123456.", max_destinations=254)
    many = SubmitRequest(account=account, source_addr="Bench",
                         destinations=[f"4477009{n:05d}" for n in range(100)],
                         payload=b"Your code is 123456.", channel="http", paced=True,
                         max_destinations=100)
    return {"submit_sm (1 destination)": (one, 1), "HTTP, 100 numbers": (many, 100)}


def per_message(prepare: Callable, request: SubmitRequest, count: int) -> float:
    now = time.time()
    calls = max(1, CALLS // count)
    started = time.perf_counter()
    for _ in range(calls):
        prepare(request, now)
    return (time.perf_counter() - started) / (calls * count)


def load(path: str) -> type:
    spec = importlib.util.spec_from_file_location("submit_other", path,
                                                  submodule_search_locations=None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "smsgate.core"  # its relative imports: this tree's modules
    sys.modules["submit_other"] = module
    spec.loader.exec_module(module)
    return module.SubmitPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--against", metavar="OLD_SUBMIT_PY",
                        help="another core/submit.py, timed beside this tree's")
    args = parser.parse_args()
    builds = {"this tree": pipeline(SubmitPipeline)}
    if args.against:
        builds = {"other": pipeline(load(args.against)), **builds}
    for case, (request, count) in requests().items():
        times: dict[str, list[float]] = {name: [] for name in builds}
        for _ in range(args.runs):
            for name, built in builds.items():
                times[name].append(per_message(built.prepare, request, count))
        line = ", ".join(f"{name} {statistics.median(t) * 1e6:5.2f} µs"
                         for name, t in times.items())
        print(f"{case:28s} prepare a message: {line} (medians of {args.runs})")


if __name__ == "__main__":
    main()
