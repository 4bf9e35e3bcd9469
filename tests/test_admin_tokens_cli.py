"""`smsgate admin token add|list|revoke` (SPEC §10): a token is printed once and stored
only as its hash; list shows names and times, never a token; a revoked token is
refused with "revoked" (the API's 403), an unknown one as unknown (401)."""

import asyncio
import hashlib

from test_cli import fails, ok

from smsgate.core.admin_tokens import AdminTokens, TokenRefused
from smsgate.store import open_store


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


async def test_token_add_list_revoke(store_url, tmp_path):
    db = store_url
    out = ok("admin", "token", "add", "ops", database=db)
    token = out.split()[2]
    assert len(token) >= 40 and "only once" in out
    fails("admin", "token", "add", "ops", database=db, match="exists already")
    fails("admin", "token", "add", "bad name", database=db, match="token name")
    listed = ok("admin", "token", "list", database=db)
    assert "ops" in listed and token not in listed
    assert listed.splitlines()[1].split()[-1] == "no"  # not revoked

    store = open_store(db)
    await store.open()
    try:  # only the hash is stored
        [row] = await store.admin_tokens()
        found = await store.admin_token(hashlib.sha256(token.encode()).hexdigest())
        assert found is not None and found[0].name == "ops" == row.name
    finally:
        await store.close()

    assert await check(db, token) == "ops"
    assert await check(db, token + "x") == "refused revoked=False"
    assert ok("admin", "token", "list", database=db).splitlines()[1].split()[3] != "-"
    ok("admin", "token", "revoke", "ops", database=db)
    fails("admin", "token", "revoke", "nobody", database=db, match="no token")
    assert await check(db, token) == "refused revoked=True"
    assert ok("admin", "token", "list", database=db).splitlines()[1].split()[-1] != "no"
    await asyncio.sleep(0)
