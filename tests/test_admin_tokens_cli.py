"""`smsgate admin token add|list|revoke` (SPEC §10): a token is printed once and stored
only as its hash; list shows names and times, never a token; a revoked token is
refused with "revoked" (the API's 403), an unknown one as unknown (401). The CLI runs
in this process (`main`), in a thread: the commands open their own event loop."""

import asyncio
import hashlib

from smsgate.cli import main
from smsgate.core.admin_tokens import AdminTokens, TokenRefused
from smsgate.store import open_store


async def run(capsys, db: str, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, [*argv, "--database", db])
    out, err = capsys.readouterr()
    return code, out, err


async def ok(capsys, db: str, *argv: str) -> str:
    code, out, err = await run(capsys, db, *argv)
    assert code == 0, err
    return out


async def fails(capsys, db: str, *argv: str, match: str) -> None:
    code, _out, err = await run(capsys, db, *argv)
    assert code != 0 and len(err.splitlines()) == 1 and match in err, err


async def check(url: str, token: str) -> str:
    store = open_store(url)
    await store.open()
    try:
        try:
            return (await AdminTokens(store).check(token)).name
        except TokenRefused as exc:
            return f"refused revoked={exc.revoked}"
    finally:
        await store.close()


async def test_token_add_list_revoke(store_url, capsys):
    db = store_url
    out = await ok(capsys, db, "admin", "token", "add", "ops")
    token = out.split()[2]
    assert len(token) >= 40 and "only once" in out
    await fails(capsys, db, "admin", "token", "add", "ops", match="exists already")
    await fails(capsys, db, "admin", "token", "add", "bad name", match="token name")
    listed = await ok(capsys, db, "admin", "token", "list")
    assert "ops" in listed and token not in listed
    assert listed.splitlines()[1].split()[-1] == "no"  # not revoked

    store = open_store(db)
    await store.open()
    try:  # only the hash is stored
        [row] = await store.admin_tokens()
        found = await store.admin_token(hashlib.sha256(token.encode()).hexdigest())
        assert found is not None and found[0].name == "ops" == row.name
        assert token not in repr(found)
    finally:
        await store.close()

    assert await check(db, token) == "ops"
    assert await check(db, token + "x") == "refused revoked=False"
    used = (await ok(capsys, db, "admin", "token", "list")).splitlines()[1].split()
    assert used[3] != "-"  # last used: stamped by the check
    await ok(capsys, db, "admin", "token", "revoke", "ops")
    await fails(capsys, db, "admin", "token", "revoke", "nobody", match="no token")
    assert await check(db, token) == "refused revoked=True"
    revoked = (await ok(capsys, db, "admin", "token", "list")).splitlines()[1].split()
    assert revoked[-1] != "no"
