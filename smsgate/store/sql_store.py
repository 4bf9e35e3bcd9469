"""The Store methods both backends run alike: one shared statement (store/statements.py),
its arguments and its rows mapped once (store/rows.py).

A backend supplies the statements in its spelling (`sql`, from `dialect.spelled`), how a
list parameter is bound (`list_arg`) and five ways to run one statement:
- `_rows`, `_row`, `_value`: a read, its rows / first row / first value;
- `_change`: a write on its own (committed), the number of rows it changed;
- `_returning`: a write on its own (committed), the rows its RETURNING gave;
- `_change_many`: one statement for each of many argument tuples, committed together.
What takes several statements in one transaction, or a lock, stays in the backend.
"""

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from ..core.models import (
    Account,
    AdminToken,
    Connector,
    ConnectorState,
    CoverageEntry,
    InboundMessage,
    InboundNumber,
    LedgerEntry,
    Message,
    MessagePart,
    MessageQuery,
    NodeStatus,
    PendingCallback,
    PendingReceipt,
    Route,
    SessionLease,
)
from ..core.ports import StoreError
from . import admin, nodes, rows
from .statements import FIND_PENDING


class SqlStore:
    sql: SimpleNamespace  # the shared statements, converted for this backend
    convert: Callable[[str], str]  # the conversion, for statements built at run time
    list_arg: Callable[[Iterable], Any]  # a list bound as one parameter (`= ANY($n)`)

    async def _rows(self, sql: str, *args: Any) -> list:
        raise NotImplementedError

    async def _row(self, sql: str, *args: Any) -> Any:
        raise NotImplementedError

    async def _value(self, sql: str, *args: Any) -> Any:
        raise NotImplementedError

    async def _change(self, sql: str, *args: Any) -> int:
        raise NotImplementedError

    async def _returning(self, sql: str, *args: Any) -> list:
        raise NotImplementedError

    async def _change_many(self, sql: str, args: list[tuple]) -> None:
        raise NotImplementedError

    async def _cancel(self, account_id: int, ids: Any, at: float) -> list[Message]:
        """CANCEL and its refunds in one transaction (`ids` a list_arg)."""
        raise NotImplementedError

    async def _take_over(self, node: str, limit: int) -> list:
        """RELEASE_DEAD_CALLBACKS and TAKE_OVER in one transaction: the rows taken."""
        raise NotImplementedError

    # -- settings, ids -----------------------------------------------------------------

    async def get_setting(self, key: str) -> str | None:
        return await self._value(self.sql.GET_SETTING, key)

    async def set_setting(self, key: str, value: str) -> None:
        await self._change(self.sql.SET_SETTING, key, value)

    async def allocate_ids(self, count: int) -> int:
        if count < 1:
            raise ValueError("count must be at least 1")
        last = (await self._returning(self.sql.ALLOCATE_IDS, count))[0][0]
        return last - count + 1

    # -- accounts ----------------------------------------------------------------------

    async def get_account(self, system_id: str) -> Account | None:
        row = await self._row(self.sql.ACCOUNT_BY_SYSTEM_ID, system_id)
        return rows.account_from_row(row) if row else None

    async def get_account_by_id(self, account_id: int) -> Account | None:
        row = await self._row(self.sql.ACCOUNT_BY_ID, account_id)
        return rows.account_from_row(row) if row else None

    async def list_accounts(self) -> list[Account]:
        return [rows.account_from_row(r) for r in await self._rows(self.sql.ACCOUNTS)]

    async def update_account(self, account: Account) -> None:
        if not await self._change(self.sql.UPDATE_ACCOUNT, *rows.account_values(account),
                                  account.id):
            raise StoreError(f"no account with id {account.id}")

    async def ledger(self, account_id: int, limit: int = 100) -> list[LedgerEntry]:
        """Newest first."""
        found = await self._rows(self.sql.LEDGER, account_id, limit)
        return [rows.ledger_from_row(r) for r in found]

    # -- connectors, routes, numbers, coverage -----------------------------------------

    async def list_connectors(self) -> list[Connector]:
        return [rows.connector_from_row(r) for r in await self._rows(self.sql.CONNECTORS)]

    async def get_connector(self, name: str) -> Connector | None:
        row = await self._row(self.sql.CONNECTOR, name)
        return rows.connector_from_row(row) if row else None

    async def add_connector(self, connector: Connector) -> None:
        await self._change(self.sql.INSERT_CONNECTOR, *rows.connector_values(connector))

    async def set_connector_enabled(self, name: str, enabled: bool) -> bool:
        return bool(await self._change(self.sql.SET_CONNECTOR_ENABLED, name, enabled))

    async def list_routes(self) -> list[Route]:
        return [rows.route_from_row(r) for r in await self._rows(self.sql.ROUTES)]

    async def add_route(self, route: Route) -> Route:
        found = await self._returning(self.sql.INSERT_ROUTE, *rows.route_values(route))
        return dataclasses.replace(route, id=found[0][0])

    async def remove_route(self, route_id: int) -> bool:
        return bool(await self._change(self.sql.DELETE_ROUTE, route_id))

    async def add_number(self, number: InboundNumber) -> None:
        await self._change(self.sql.INSERT_NUMBER, *rows.number_row(number))

    async def list_numbers(self) -> list[InboundNumber]:
        return [InboundNumber(*r) for r in await self._rows(self.sql.NUMBERS)]

    async def remove_number(self, number: str) -> bool:
        return bool(await self._change(self.sql.DELETE_NUMBER, number))

    async def report_connector_state(self, state: ConnectorState) -> None:
        await self._change(self.sql.UPSERT_CONNECTOR_STATE, *rows.connector_state_values(state))

    async def connector_states(self) -> list[ConnectorState]:
        found = await self._rows(self.sql.CONNECTOR_STATES)
        return [rows.connector_state_from_row(r) for r in found]

    async def list_coverage(self) -> list[CoverageEntry]:
        return [CoverageEntry(*r) for r in await self._rows(self.sql.COVERAGE)]

    # -- messages ----------------------------------------------------------------------

    async def get_message(self, message_id: int) -> Message | None:
        row = await self._row(self.sql.MESSAGE, message_id)
        return Message(*row) if row else None

    async def undispatched(self, now: float, limit: int, after_id: int = 0,
                           node: str | None = None) -> list[Message]:
        # Two index range scans (immediate ones by id; due scheduled ones by time), merged:
        # a big scheduled campaign is then never scanned before it is due.
        sql = self.sql
        if node is None:
            found = (await self._rows(sql.UNSENT_NOW, after_id, limit)
                     + await self._rows(sql.UNSENT_DUE, now, after_id, limit))
        else:
            found = (await self._rows(sql.UNSENT_NOW_OF, after_id, limit, node)
                     + await self._rows(sql.UNSENT_DUE_OF, now, after_id, limit, node))
        found.sort(key=lambda r: r[0])
        return [Message(*r) for r in found[:limit]]

    async def scheduled_until(self, until: float, limit: int,
                              node: str | None = None) -> list[Message]:
        """Unsent, not final, schedule_at <= until, by schedule_at (those already due
        included: there is no `now` here, and the caller sends them at once)."""
        if node is None:
            found = await self._rows(self.sql.SCHEDULED, until, limit)
        else:
            found = await self._rows(self.sql.SCHEDULED_OF, until, limit, node)
        return [Message(*r) for r in found]

    async def expire_due(self, now: float, limit: int) -> list[Message]:
        return [Message(*r) for r in await self._rows(self.sql.EXPIRING, now, limit)]

    async def take_over(self, node: str, limit: int) -> list[Message]:
        found = await self._take_over(node, limit)
        return sorted((Message(*r) for r in found), key=lambda m: m.id)  # RETURNING: any order

    async def cancel_messages(self, account_id: int, message_ids: Sequence[int],
                              at: float) -> list[Message]:
        """The cancelled ones, in the order asked for."""
        if not message_ids:
            return []
        cancelled = await self._cancel(account_id, self.list_arg(message_ids), at)
        order = {mid: n for n, mid in enumerate(message_ids)}
        cancelled.sort(key=lambda m: order[m.id])
        return cancelled

    async def replace_message(self, account_id: int, message_id: int, payload: bytes,
                              schedule_at: float | None, expires_at: float | None,
                              registered_delivery: int | None) -> bool:
        return bool(await self._change(self.sql.REPLACE, payload, schedule_at, expires_at,
                                       registered_delivery, message_id, account_id))

    async def find_pending(self, account_id: int, source_addr: str, dest_addr: str,
                           service_type: str) -> list[int]:
        """Empty dest_addr or service_type match any (SMPP cancel_sm without them)."""
        sql, args = _find_pending(dest_addr, service_type)
        found = await self._rows(self.convert(sql), account_id, source_addr, *args)
        return [r[0] for r in found]

    async def messages_by_upstream_id(self, connector: str,
                                      upstream_ids: Sequence[str]) -> list[Message]:
        if not upstream_ids:
            return []
        found = await self._rows(self.sql.BY_UPSTREAM_ID, connector,
                                 self.list_arg(upstream_ids))
        return [Message(*r) for r in found]

    async def part_by_upstream_id(self, connector: str,
                                  upstream_ids: Sequence[str]) -> tuple[int, int] | None:
        if not upstream_ids:
            return None
        row = await self._row(self.sql.PART_BY_UPSTREAM_ID, connector,
                              self.list_arg(upstream_ids))
        return (row[0], row[1]) if row else None

    async def part_statuses(self, message_id: int) -> dict[int, str]:
        return {r[0]: r[1] for r in await self._rows(self.sql.PART_STATUSES, message_id)}

    async def unmatched_reports(self, limit: int = 100) -> list[tuple]:
        return [tuple(r) for r in await self._rows(self.sql.UNMATCHED, limit)]

    # -- receipts, callbacks, MO ---------------------------------------------------------

    async def pending_receipts(self, account_id: int, now: float,
                               limit: int) -> list[PendingReceipt]:
        found = await self._rows(self.sql.DUE_RECEIPTS, account_id, now, limit)
        return [PendingReceipt(*r) for r in found]

    async def purge_expired_receipts(self, now: float) -> int:
        return await self._change(self.sql.PURGE_EXPIRED_RECEIPTS, now)

    async def claim_callbacks(self, node: str, now: float, limit: int) -> list[PendingCallback]:
        found = await self._returning(self.sql.CLAIM_CALLBACKS, node, now, limit)
        claimed = [PendingCallback(*r) for r in found]
        claimed.sort(key=lambda c: (c.next_attempt_at, c.id))  # RETURNING has no order
        return claimed

    async def release_callbacks(self, node: str) -> int:
        return await self._change(self.sql.RELEASE_CALLBACKS, node)

    async def count_callbacks(self) -> int:
        return await self._value(self.sql.COUNT_CALLBACKS)

    async def joining_inbound(self) -> list[InboundMessage]:
        return [rows.inbound_from_row(r) for r in await self._rows(self.sql.JOINING_INBOUND)]

    async def recent_inbound(self, limit: int = 100) -> list[InboundMessage]:
        found = await self._rows(self.sql.RECENT_INBOUND, limit)
        return [rows.inbound_from_row(r) for r in found]

    # -- nodes -------------------------------------------------------------------------

    async def stop_node(self, node_id: str, run_id: str) -> None:
        await self._change(self.sql.STOP_NODE, node_id, run_id)

    async def list_nodes(self) -> list[NodeStatus]:
        return [nodes.node_from_row(r) for r in await self._rows(self.sql.LIST_NODES)]

    async def give_back_bind(self, node_id: str, session: str) -> None:
        await self._change(self.sql.GIVE_BACK_BIND, node_id, session)

    # -- the admin API (store/admin.py) ------------------------------------------------

    async def add_admin_token(self, name: str, token_hash: str, at: float) -> None:
        await self._change(self.sql.ADD_TOKEN, name, token_hash, at)

    async def admin_tokens(self) -> list[AdminToken]:
        return [admin.token_from_row(r) for r in await self._rows(self.sql.TOKENS)]

    async def admin_token(self, token_hash: str) -> tuple[AdminToken, str] | None:
        row = await self._row(self.sql.TOKEN_BY_HASH, token_hash)
        return (admin.token_from_row(row), row[4]) if row else None

    async def revoke_admin_token(self, name: str, at: float) -> bool:
        return bool(await self._change(self.sql.REVOKE_TOKEN, name, at))

    async def touch_admin_token(self, name: str, at: float) -> None:
        await self._change(self.sql.TOUCH_TOKEN, name, at)

    async def list_sessions(self) -> list[SessionLease]:
        return [admin.session_from_row(r) for r in await self._rows(self.sql.SESSIONS)]

    async def kick_session(self, node_id: str, session: str) -> bool:
        return bool(await self._change(self.sql.KICK, node_id, session))

    async def kicked_sessions(self, node_id: str, run_id: str) -> list[str]:
        return [r[0] for r in await self._rows(self.sql.KICKED, node_id, run_id)]

    async def search_messages(self, query: MessageQuery) -> list[Message]:
        sql, args = admin.search(query)
        return [Message(*r) for r in await self._rows(self.convert(sql), *args)]

    async def message_parts(self, message_id: int) -> list[MessagePart]:
        return [admin.part_from_row(r) for r in await self._rows(self.sql.PARTS, message_id)]

    async def message_outbox(self, message_id: int) -> tuple[list[tuple], list[tuple]]:
        receipts = await self._rows(self.sql.RECEIPTS_OF, message_id)
        callbacks = await self._rows(self.sql.CALLBACKS_OF, message_id)
        return [tuple(r) for r in receipts], [tuple(r) for r in callbacks]

    async def status_series(self, since: int, until: int,
                            step: int) -> list[tuple[int, str, int]]:
        found = await self._rows(self.sql.STATUS_SERIES, since, until, step)
        return [tuple(r) for r in found]

    async def add_status_counts(self, node: str, counts: list[tuple[int, str, int]]) -> None:
        await self._change_many(self.sql.ADD_STATUS_COUNT, [(node, *c) for c in counts])

    async def message_deliveries(self, message_id: int) -> list[tuple]:
        return [tuple(r) for r in await self._rows(self.sql.DELIVERIES_OF, message_id)]


def _find_pending(dest_addr: str, service_type: str) -> tuple[str, tuple]:
    """FIND_PENDING with the matches given ($1, $2 are the account and source)."""
    sql, args = FIND_PENDING, ()
    if dest_addr:
        sql, args = sql + f" AND dest_addr = ${len(args) + 3}", (*args, dest_addr)
    if service_type:
        sql, args = sql + f" AND service_type = ${len(args) + 3}", (*args, service_type)
    return sql + " ORDER BY id", args

