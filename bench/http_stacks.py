"""What the HTTP stack costs: do-nothing handlers on aiohttp's Application (routing and
the request machinery smsgate uses), on aiohttp's low-level server (`web.Server`: one
handler, no router, no middlewares), and smsgate's own unknown-path answer (its
`HTTP01` line: the baseline of bench/http_submit.py), under the same load.

    .venv/bin/python bench/http_stacks.py [--connections 64] [--seconds 5] [--runs 3]

Each server runs in a subprocess of its own on uvloop (one core; the load generator of
bench/http_submit.py in this process on the other), one after the other, `--runs`
rounds alternating; printed: requests/s and latency per run, and the medians. The
gap between smsgate's line and the Application's is smsgate's own per-request work on
the way to a handler (its connection guard); the gap between the Application and the
low-level server is what aiohttp's routing and request objects cost, i.e. the most a
leaner server for `/websmpp` could save per request on this stack.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile

import uvloop
from aiohttp import web
from http_submit import get_request, report, run_load
from serverproc import prepare, run, start_server, stop_server

BODY = b"ERROR - HTTP01"


def serve(stack: str) -> None:
    """The child: a do-nothing server on `stack`, printing its port."""

    async def nothing(request: web.BaseRequest) -> web.Response:
        return web.Response(body=BODY, content_type="text/plain")

    async def main() -> None:
        if stack == "application":
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", nothing)
            runner = web.AppRunner(app, access_log=None)
        else:
            runner = web.ServerRunner(web.Server(nothing, access_log=None))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"HTTP listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


async def start_stack(stack: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", stack, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    return proc, int(line.rsplit(":", 1)[1])


async def main_async(args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"smsgate": [], "application": [], "low-level": []}
    request = [get_request("/websmpp/nothing")]
    with tempfile.TemporaryDirectory(prefix="smsgate-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        await prepare(url)
        for n in range(args.runs):
            print(f"-- run {n + 1} of {args.runs}", flush=True)
            for name in rates:
                if name == "smsgate":
                    proc, port = await start_server(url, "HTTP")
                else:
                    proc, port = await start_stack(name)
                try:
                    await asyncio.sleep(0.5)
                    rate, latencies, unexpected = await run_load(
                        port, args.connections, request, BODY, args.seconds)
                    report(name, rate, latencies, unexpected)
                    rates[name].append(rate)
                finally:
                    if name == "smsgate":
                        await stop_server(proc)
                    else:
                        proc.kill()
                        await proc.wait()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print("medians: " + ", ".join(f"{name} {rate:,.0f} req/s ({1e6 / rate:.0f} µs each)"
                                  for name, rate in medians.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", choices=["application", "low-level"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        run(main_async(args))


if __name__ == "__main__":
    main()
