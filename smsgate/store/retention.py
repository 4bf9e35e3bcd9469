"""What retention purges, and how one step of it reads and deletes (both backends).

History goes in steps of a few hundred rows in primary-key order, each its own short
transaction, so that a purge never holds the database for long: on SQLite the group
commits of live traffic take their turn between two steps. Ids grow with time (message
ids are counter-based, the rest are serials), so a step that finds only rows newer than
the cut-off ends the table's pass: no index on the time columns is needed, and none is
added to the insert path.
"""

from dataclasses import dataclass

from ..core.models import PurgeStep


@dataclass(frozen=True, slots=True)
class History:
    """A table that retention purges: rows older than the cut-off by `time_column`, and
    only those `purgeable` allows (a message still waiting to be sent is kept)."""

    table: str
    time_column: str
    purgeable: str = "TRUE"
    dependents: tuple[str, ...] = ()  # tables with rows keyed by this table's message_id


HISTORY = (
    History("messages", "created_at", "status NOT IN ('ATES', 'ACCEPTD')",
            dependents=("message_parts", "deliveries")),
    History("ledger", "created_at"),
    History("dlr_callbacks", "created_at"),
    History("inbound_messages", "received_at", dependents=("deliveries",)),
    History("unmatched_reports", "received_at"),
    History("status_counts", "bucket"),
)
BY_NAME = {history.table: history for history in HISTORY}  # core/retention.py: TABLES


def select_step(history: History) -> str:
    """Rows after an id ($1), oldest first, at most $2: id, time, whether retention may
    delete it. (Spelled as in store/dialect.py, as delete_step.)"""
    return (f"SELECT id, {history.time_column}, ({history.purgeable}) FROM {history.table} "
            "WHERE id > $1 ORDER BY id LIMIT $2")


def delete_step(history: History) -> list[str]:
    """The deletes of a step's chosen ids ($1, a list): its dependents' rows, then its
    own (the last), which checks `purgeable` again."""
    return [*(f"DELETE FROM {dependent} WHERE message_id = ANY($1)"
              for dependent in history.dependents),
            f"DELETE FROM {history.table} WHERE id = ANY($1) AND ({history.purgeable})"]


def chosen(rows: list[tuple], before: float, limit: int) -> tuple[list[int], PurgeStep]:
    """The ids of a step's rows to delete, and what the step did."""
    ids = [row[0] for row in rows if row[1] < before and row[2]]
    last_id = rows[-1][0] if rows else 0
    done = len(rows) < limit or min(row[1] for row in rows) >= before
    return ids, PurgeStep(len(ids), last_id, done)
