"""SMPP codec throughput: decode and encode rates in PDUs/s.

    .venv/bin/python bench/codec.py [--seconds 1.0] [--runs 5] [--against OLD_CODEC_PY]

Each figure is the median of `--runs` timed runs of `--seconds` each. The baseline is a
loop calling a do-nothing function on the same bytes: compare the other figures with it
to judge how fast (and how noisy) this machine is right now.

`--against` times another version of codec.py (for example
`git show main:smsgate/smpp/codec.py > /tmp/codec_main.py`) against this tree's,
their runs interleaved so that a busy moment of the machine hits both alike, and prints
the median of the pairs' ratios. The other codec.py is loaded beside this tree's and
uses its layouts, constants and Pdu.
"""

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import CommandId, Tag
from smsgate.smpp.pdu import Pdu

BATCH = 256  # calls between clock reads


def submit_sms(codec: Codec) -> list[bytes]:
    """V7-like submit_sm PDUs with 20-160 character messages."""
    text = b"The quick brown fox jumps over the lazy dog, 0123456789. " * 3
    return [
        codec.encode(Pdu(CommandId.submit_sm, 0x4FE8 + n, 0, {
            "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "40404",
            "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "44951361920",
            "registered_delivery": 1, "short_message": text[:n],
        }))
        for n in range(20, 161, 10)
    ]


def receipts(codec: Codec) -> list[bytes]:
    """The V10 delivery receipt: deliver_sm with four TLVs."""
    return [codec.encode(Pdu(CommandId.deliver_sm, 2, 0, {
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "44951361920",
        "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "40404", "esm_class": 4,
        "short_message": b"id:0059113978 sub:001 dlvrd:001 submit date:1002101730 done "
                         b"date:1002101731 stat:DELIVRD err:000 text:@$#!%&/:",
    }, [(Tag.source_network_type, 1), (Tag.dest_network_type, 1),
        (Tag.receipted_message_id, "38601fa"), (Tag.message_state, 2)]))]


def submit_sm_resps() -> list[Pdu]:
    """The answer to every accepted submit_sm: a message_id (smsgate's are decimal row
    ids) and nothing else."""
    return [Pdu(CommandId.submit_sm_resp, 0x4FE8 + n, 0, {"message_id": str(4_200_000 + n)})
            for n in range(16)]


def rate(func: Callable[[Any], Any], items: Sequence[Any], seconds: float) -> float:
    """Calls of `func` per second, cycling through `items`, for about `seconds`."""
    batch = (list(items) * (BATCH // len(items) + 1))[:BATCH]
    calls = 0
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    while True:
        for item in batch:
            func(item)
        calls += BATCH
        now = clock()
        if now >= deadline:
            return calls / (now - start)


def nothing(data: bytes) -> bytes:
    return data


def load_codec(path: str) -> Codec:
    spec = importlib.util.spec_from_file_location("smsgate.smpp.codec_against", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Codec()


def compare(cases: list[tuple[str, str, list[Any]]], codec: Codec, other: Codec,
            runs: int, seconds: float) -> None:
    print(f"python {sys.version.split()[0]}, other -> this tree, median of {runs} "
          f"interleaved pairs x {seconds:g} s")
    for label, method, items in cases:
        mine, theirs = getattr(codec, method), getattr(other, method)
        assert [mine(i) for i in items] == [theirs(i) for i in items], label
        pairs = [(rate(theirs, items, seconds), rate(mine, items, seconds))
                 for _ in range(runs)]
        before = statistics.median(t for t, _ in pairs)
        after = statistics.median(m for _, m in pairs)
        ratio = statistics.median(m / t for t, m in pairs)
        print(f"{label:<28} {before:>12,.0f} -> {after:>12,.0f} PDUs/s  x{ratio:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median shown)")
    parser.add_argument("--against", metavar="CODEC_PY", help="another codec.py to compare")
    args = parser.parse_args(argv)

    codec = Codec()
    cases: list[tuple[str, str, list[Any]]] = []  # (label, Codec method, its arguments)
    for name, wire in (("submit_sm", submit_sms(codec)), ("deliver_sm receipt", receipts(codec))):
        pdus = [codec.decode(w) for w in wire]
        assert [codec.encode(p) for p in pdus] == wire
        cases += [(f"decode {name}", "decode", wire), (f"encode {name}", "encode", pdus)]
    cases.append(("encode submit_sm_resp", "encode", submit_sm_resps()))
    if args.against:
        compare(cases, codec, load_codec(args.against), args.runs, args.seconds)
        return

    print(f"python {sys.version.split()[0]}, median of {args.runs} runs x {args.seconds:g} s")
    timed: list[tuple[str, Callable[[Any], Any], list[Any]]] = [
        ("baseline (no-op call)", nothing, submit_sms(codec)),
        *((label, getattr(codec, method), items) for label, method, items in cases),
    ]
    for label, func, items in timed:
        runs = [rate(func, items, args.seconds) for _ in range(args.runs)]
        spread = (max(runs) - min(runs)) / statistics.median(runs) * 100
        print(f"{label:<28} {statistics.median(runs):>12,.0f} PDUs/s  (spread {spread:.0f}%)")


if __name__ == "__main__":
    main()
