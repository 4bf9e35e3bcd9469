"""SPEC §3.2 over HTTP: who may query a message's status. Credentials are optional unless
the message's owner account (or the global setting) makes them mandatory; when given,
they must be the owner's."""

import dataclasses

import aiohttp
from http_harness import PASSWORD, USER, api_fixture, ids_of  # noqa: F401

from smsgate.core.errors import Err

STATUS = "/websmpp/websmsstatus"
OTHER, OTHER_PASSWORD = "otherUser", "67890"


async def _message_of(api) -> int:
    [message_id] = ids_of(await api.submit())
    return message_id


async def test_owner_requiring_auth_refuses_a_query_without_credentials(api):
    await api.seed_account(status_auth=True)
    message_id = await _message_of(api)
    assert await api.get(STATUS, {"respId": message_id}) == Err.BAD_REQUEST_PARAMS.http_line
    # half the credentials are missing credentials too
    assert await api.get(STATUS, {"respId": message_id, "user": USER}) \
        == Err.BAD_REQUEST_PARAMS.http_line
    # the id is checked first: the owner is known only from the message
    assert await api.get(STATUS, {"respId": "12x"}) == Err.BAD_MESSAGE_ID.http_line
    assert await api.get(STATUS, {"respId": message_id + 1}) \
        == Err.UNKNOWN_MESSAGE_ID.http_line


async def test_owner_requiring_auth_answers_its_own_credentials(api):
    await api.seed_account(status_auth=True)
    message_id = await _message_of(api)
    for user, password in (("user", "pass"), ("userid", "password")):
        answer = await api.get(STATUS, {"respId": message_id, user: USER, password: PASSWORD})
        assert answer in ("Response: ATES", "Response: DELIVRD")


async def test_another_accounts_credentials_are_not_authorized(api):
    await api.seed_account(status_auth=True)
    await api.account(OTHER, password=OTHER_PASSWORD)
    message_id = await _message_of(api)
    assert await api.get(STATUS, {"respId": message_id, "user": OTHER,
                                  "pass": OTHER_PASSWORD}) == Err.NOT_AUTHORIZED.http_line
    # and wrong credentials are refused as such
    assert await api.get(STATUS, {"respId": message_id, "user": USER, "pass": "wrong"}) \
        == Err.BAD_PASSWORD.http_line


async def test_owner_not_requiring_auth_answers_without_credentials(api):
    await api.seed_account()  # status_auth off: the default
    await api.account(OTHER, password=OTHER_PASSWORD)
    message_id = await _message_of(api)
    answer = await api.get(STATUS, {"respId": message_id})
    assert answer in ("Response: ATES", "Response: DELIVRD")
    # credentials, when given, must still be the owner's
    assert await api.get(STATUS, {"respId": message_id, "user": OTHER,
                                  "pass": OTHER_PASSWORD}) == Err.NOT_AUTHORIZED.http_line


async def test_changing_the_setting_takes_effect(api):
    account = await api.seed_account()
    message_id = await _message_of(api)
    await api.app.accounts.reload()  # the account is in the directory's cache now
    assert (await api.get(STATUS, {"respId": message_id})).startswith("Response: ")
    await api.store.update_account(dataclasses.replace(account, status_auth=True))
    await api.app.accounts.reload()  # what the background refresh does every 2 s
    assert await api.get(STATUS, {"respId": message_id}) == Err.BAD_REQUEST_PARAMS.http_line
    await api.store.update_account(dataclasses.replace(account, status_auth=False))
    await api.app.accounts.reload()
    assert (await api.get(STATUS, {"respId": message_id})).startswith("Response: ")


async def test_ids_out_of_range_or_not_ascii_digits_are_malformed(api, caplog):
    """Issue 8, item 9: HTTP08, not HTTP13 with a traceback."""
    await api.seed_account()
    for bad in ("9999999999999999999", "9223372036854775808", "²", "1²", "١٢٣", "１２",
                "12x", "", "-5", "0x10", "12345678901234567890"):
        assert await api.get(STATUS, {"respId": bad}) == Err.BAD_MESSAGE_ID.http_line, bad
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


class CountingReads:
    """Counts the real store's get_message calls (the store still answers them)."""

    def __init__(self, store) -> None:
        self.calls = 0
        self._read = store.get_message
        store.get_message = self

    async def __call__(self, message_id: int):
        self.calls += 1
        return await self._read(message_id)


async def test_a_forged_id_is_unknown_without_a_store_read(api):
    """Issue 8, item 10: ids carry a keyed tag (core/ids.py); a guess is refused
    before the store."""
    await api.seed_account()
    message_id = await _message_of(api)
    reads = CountingReads(api.store)
    for guess in (message_id + 1, message_id - 1, message_id ^ (1 << 23), 12345,
                  9223372036854775807):
        assert await api.get(STATUS, {"respId": guess}) == Err.UNKNOWN_MESSAGE_ID.http_line
    assert reads.calls == 0
    answer = await api.get(STATUS, {"respId": message_id})
    assert answer in ("Response: ATES", "Response: DELIVRD")
    assert reads.calls == 1


async def test_status_queries_without_credentials_are_limited_per_source_ip(api):
    """Issue 8, item 10: a bucket of `anonymous_status_rate` per second per IP; past it
    HTTP11, for that IP only; queries with credentials are not counted."""
    await api.seed_account()
    message_id = await _message_of(api)
    api.app.settings.http.anonymous_status_rate = 5.0  # read at each query
    answers = [await api.get(STATUS, {"respId": message_id}) for _ in range(20)]
    assert answers.count(Err.THROTTLED.http_line) >= 10  # 5 in the bucket, +5/s at most
    assert answers[0].startswith("Response: ")
    owner = {"respId": message_id, "user": USER, "pass": PASSWORD}
    assert (await api.get(STATUS, owner)).startswith("Response: ")
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other, other.get(
            api.base + STATUS, params={"respId": message_id}) as response:
        assert (await response.text()).startswith("Response: ")
