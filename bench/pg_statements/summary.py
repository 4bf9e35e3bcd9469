"""Sum the statement times sitecustomize.py wrote, by group commit.

    .venv/bin/python bench/pg_statements/summary.py /tmp/pgst

For each process file: the commits (Transaction.commit calls), then each statement
called more than `--min-calls` times with its share of a commit (calls x mean / commits),
and their sum: the wall time a commit spends waiting for its statements' answers.
BEGIN and COMMIT show once, as Transaction.start and .commit. A batch whose commit is
split (Store.split_commits) is two transactions side by side: the figures are a
transaction's.
"""

import argparse
import re
from pathlib import Path

LINE = re.compile(r"\s*(\d+)\s+([\d.]+) ms  (.*)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--min-calls", type=int, default=100)
    args = parser.parse_args()
    for path in sorted(args.folder.glob("statements.*")):
        lines = [m for m in map(LINE.match, path.read_text().splitlines()) if m]
        totals = {m.group(3): int(m.group(1)) * float(m.group(2)) for m in lines
                  if int(m.group(1)) > args.min_calls}
        commits = next((int(m.group(1)) for m in lines if m.group(3) == "commit"), 0)
        if commits <= args.min_calls:
            continue
        shares = {key: total / commits for key, total in totals.items()
                  if not key.startswith(("execute: BEGIN", "execute: COMMIT"))}
        print(f"{path.name}: {commits} commits, {sum(shares.values()):.2f} ms a commit "
              "in statements")
        for key, share in sorted(shares.items(), key=lambda kv: -kv[1]):
            print(f"  {share:6.2f} ms  {key}")

if __name__ == "__main__":
    main()
