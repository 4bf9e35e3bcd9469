"""SPEC §3.2 over HTTP: who may query a message's status. Credentials are optional unless
the message's owner account (or the global setting) makes them mandatory; when given,
they must be the owner's."""

import dataclasses

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
