"""Receipt correlation against a real store (both backends): memory, store, the park."""

import asyncio
import time

from store_helpers import funded, message

from smsgate.core.correlation import LEARN_VOTES, RELEARN_VOTES, Match, ReceiptCorrelator
from smsgate.core.models import DELIVRD, WriteBatch
from smsgate.core.ports import StoreError
from smsgate.smpp.receipt import id_variants


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, Match]] = []
        self.unmatched: list[str] = []
        self.dropped: list[str] = []  # unmatched rows claimed later
        self.outcomes: list[bool] = []

    def deliver(self, report, match, done) -> None:
        self.delivered.append((report.upstream_ids[0], match))
        done(True)

    def keep(self, report, done) -> None:
        self.unmatched.append(report.upstream_ids[0])
        done(True)

    def drop(self, report) -> None:
        self.dropped.append(report.upstream_ids[0])

    def done(self, ok: bool) -> None:
        self.outcomes.append(ok)


def report(receipt_id: str, connector: str = "up"):
    from smsgate.core.models import UpstreamReport
    return UpstreamReport(connector, tuple(id_variants(receipt_id)), DELIVRD, time.time())


def correlator(store, recorder: Recorder, **options) -> ReceiptCorrelator:
    """One vote teaches a relation here unless a test says otherwise (the default,
    LEARN_VOTES, has tests of its own below)."""
    options.setdefault("learn_votes", 1)
    return ReceiptCorrelator(store, recorder.deliver, recorder.keep, recorder.drop, **options)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_a_remembered_id_matches_in_memory_in_another_spelling(store):
    recorder = Recorder()
    c = correlator(store, recorder)
    sent = message(1, connector="up", upstream_id="38601fa")
    c.remember(sent, "up", ["38601fa"])
    c.report(report("0059113978"), recorder.done)  # the same number, decimal, padded
    await settle()
    assert recorder.delivered == [("0059113978", Match(sent, 0))]
    assert recorder.outcomes == [True]
    c.report(report("0059113978"), recorder.done)  # learned: from memory at once
    assert recorder.delivered[-1] == ("0059113978", Match(sent, 0))
    assert c.matched_memory == 1


async def test_a_stored_id_matches_through_the_store(store):
    account = await funded(store)
    stored = message(account.id, connector="up", upstream_id="1d305b4c")
    await store.write(WriteBatch(new_messages=[stored]))
    recorder = Recorder()
    c = correlator(store, recorder)
    c.report(report("0489708364"), recorder.done)
    await settle()
    [(_, match)] = recorder.delivered
    assert match.message.id == stored.id and match.part == 0
    assert c.matched_store == 1
    # another connector's id never matches
    c.report(report("0489708364", connector="other"), recorder.done)
    await settle()
    assert c.parked == 1


async def test_a_report_before_its_submit_answer_is_parked_then_matched(store):
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0)
    c.report(report("777"), recorder.done)
    await settle()
    assert c.parked == 1 and not recorder.delivered
    # stored as unmatched and answered at once: the upstream never waits on the park
    assert recorder.unmatched == ["777"] and recorder.outcomes == [True]
    late = message(1, connector="up")
    c.remember(late, "up", ["777"])
    assert recorder.delivered == [("777", Match(late, 0))] and c.parked == 0
    assert recorder.dropped == ["777"]  # and its unmatched row goes


async def test_an_unknown_id_is_kept_as_unmatched_after_the_park(store):
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=0.2)
    c.report(report("424242"), recorder.done)
    await settle()
    assert recorder.unmatched == ["424242"] and recorder.outcomes == [True]
    await asyncio.sleep(0.6)
    assert c.parked == 0 and c.unmatched == 1 and not recorder.dropped
    c.stop()


async def test_a_full_park_sends_reports_straight_to_the_unmatched_table(store):
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=30.0, max_parked=2)
    for n in range(5):
        c.report(report(str(1000 + n)), recorder.done)
    await settle()
    assert c.parked == 2 and len(recorder.unmatched) == 5  # every one stored
    assert c.unmatched == 3  # and those the park had no room for given up at once
    c.stop()


async def test_memory_is_bounded_and_forgotten_ids_are_found_in_the_store(store):
    account = await funded(store)
    first = message(account.id, connector="up", upstream_id="1")
    await store.write(WriteBatch(new_messages=[first]))
    recorder = Recorder()
    c = correlator(store, recorder, memory_size=10)
    for n in range(1, 100):
        c.remember(message(account.id, connector="up"), "up", [str(n)])
    assert len(c._recent) == 10
    c.report(report("1"), recorder.done)
    await settle()
    assert recorder.delivered[0][1].message.id == first.id


async def test_a_store_failure_answers_false_so_the_upstream_retries(store):
    recorder = Recorder()
    c = correlator(store, recorder)

    async def broken(*args):
        raise StoreError("connection lost")

    store.messages_by_upstream_id = broken
    c.report(report("5"), recorder.done)
    await settle()
    assert recorder.outcomes == [False] and not recorder.unmatched


async def test_a_receipt_before_its_answer_is_not_taken_for_another_message(store):
    """Two sessions: the receipt for '16' comes before the answer that says '16' was
    the id, while '10' (0x16 is 22, '16' hex is 22, '10' hex is 16) and '22' are known:
    it waits for its own message instead of matching a spelling of another."""
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0)
    sent = {n: message(1, connector="up") for n in (10, 16, 22)}
    c.remember(sent[10], "up", ["10"])
    c.remember(sent[22], "up", ["22"])
    c.report(report("10"), recorder.done)  # every relation finding one finds "10"
    await settle()
    c.report(report("16"), recorder.done)
    await settle()
    assert [m.message for _, m in recorder.delivered] == [sent[10]]
    c.remember(sent[16], "up", ["16"])
    assert [m.message for _, m in recorder.delivered] == [sent[10], sent[16]]
    c.stop()


async def test_hex_answers_and_decimal_receipts_are_learned_then_followed(store):
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0)
    first, second, decoy = (message(1, connector="up") for _ in range(3))
    c.remember(first, "up", ["38601fa"])  # 59113978: unambiguous, only as decimal-for-hex
    c.report(report("0059113978"), recorder.done)
    await settle()
    assert recorder.delivered[-1][1].message is first
    c.remember(second, "up", ["16"])  # hex 0x16 = 22
    c.remember(decoy, "up", ["22"])  # the same string as the next receipt
    c.report(report("22"), recorder.done)  # decimal 22 = 0x16: the second, not the decoy
    await settle()
    assert recorder.delivered[-1][1].message is second
    c.stop()


async def test_ambiguous_first_reports_are_not_guessed_in_memory(store):
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0)
    a, b = message(1, connector="up"), message(1, connector="up")
    c.remember(a, "up", ["16"])
    c.remember(b, "up", ["22"])
    c.report(report("0016"), recorder.done)  # decimal 16 is a, hex 0x16 = 22 is b
    await settle()
    assert not recorder.delivered and c.parked == 1
    c.stop()


async def test_a_relation_is_not_learned_from_ids_every_relation_explains(store):
    """An SMSC numbering from 1, hex in its answers, decimal in its receipts: for 1-9
    every relation finds the same message, so nothing may be learned from them (the
    first learned, "number", then sent the receipt for 10 to the message "10", which is
    16; found by tests/e2e/test_independent_upstream.py: 37 of 151 never final)."""
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0)
    sent = {n: message(1, connector="up") for n in range(1, 17)}
    for n in range(1, 11):
        c.remember(sent[n], "up", [f"{n:x}"])
    c.report(report("0000000001"), recorder.done)  # hex 1 = decimal 1: no relation
    await settle()
    c.report(report("0000000010"), recorder.done)  # only decimal-for-hex finds "a"
    await settle()
    for n in range(11, 17):
        c.remember(sent[n], "up", [f"{n:x}"])
    c.report(report("0000000016"), recorder.done)  # "10" by the relation learned
    await settle()
    assert [m.message for _, m in recorder.delivered] == [sent[1], sent[10], sent[16]]
    c.stop()


async def test_receipt_ids_from_the_tlv_and_from_the_text_are_learned_apart(store):
    """An SMSC that puts its hex id in receipted_message_id on some receipts and only the
    decimal id in the text on others: each source keeps its own relation."""
    from smsgate.core.models import UpstreamReport

    def tagged(receipt_id: str, source: str) -> UpstreamReport:
        return UpstreamReport("up", tuple(id_variants(receipt_id)), DELIVRD, time.time(),
                              id_source=source)

    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0)
    m1a, m1b, m10 = (message(1, connector="up") for _ in range(3))
    for sent, upstream_id in ((m1a, "1a"), (m1b, "1b"), (m10, "10")):
        c.remember(sent, "up", [upstream_id])
    c.report(tagged("1a", "tlv"), recorder.done)  # learns "same" for the TLV
    await settle()
    c.report(tagged("0000000027", "text"), recorder.done)  # 27 = 0x1b: decimal for hex
    await settle()
    c.report(tagged("10", "tlv"), recorder.done)  # the TLV's relation still: "10"
    await settle()
    c.report(tagged("0000000016", "text"), recorder.done)  # 16 = 0x10: the text's
    await settle()
    assert [m.message for _, m in recorder.delivered] == [m1a, m1b, m10, m10]
    c.stop()


async def test_a_learned_relation_survives_a_restart(store):
    """After a crash an SMSC redelivers the receipts it had not seen answered, for
    messages sent before it, while memory holds only those sent since: "2260", the
    decimal receipt of the old hex "8d4", must not be taken for the new hex "2260"."""
    account = await funded(store)
    old = message(account.id, connector="up", upstream_id="8d4")  # 2260, sent before
    await store.write(WriteBatch(new_messages=[old]))
    recorder = Recorder()
    before = correlator(store, recorder)
    learned_from = message(1, connector="up")
    before.remember(learned_from, "up", ["38601fa"])
    before.report(report("0059113978"), recorder.done)  # teaches "decimal for hex"
    await settle()
    assert recorder.delivered[-1][1].message is learned_from

    after = correlator(store, recorder)  # a new run: empty memory
    new = message(account.id, connector="up")
    after.remember(new, "up", ["2260"])  # 0x2260, sent since the restart
    after.report(report("2260"), recorder.done)
    await settle()
    assert recorder.delivered[-1][1].message.id == old.id
    after.report(report("8800"), recorder.done)  # 0x2260: the new one's own receipt
    await settle()
    assert recorder.delivered[-1][1].message is new


async def test_a_first_run_does_not_guess_between_two_stored_candidates(store):
    """Nothing learned yet and two stored messages fit different relations: the report
    stays unmatched after the park instead of going to the likelier spelling's."""
    account = await funded(store)
    hex_one = message(account.id, connector="up", upstream_id="8d4")
    same_one = message(account.id, connector="up", upstream_id="2260")
    await store.write(WriteBatch(new_messages=[hex_one, same_one]))
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=0.2)
    c.report(report("2260"), recorder.done)
    await asyncio.sleep(0.6)
    await settle()
    assert not recorder.delivered and c.unmatched == 1 and recorder.unmatched == ["2260"]
    c.stop()


async def test_a_parked_report_is_not_claimed_by_another_spelling_of_its_id(store):
    """Receipt "a" (hex answers, hex receipts), ambiguous while "10" (its decimal 10
    read as hex) is also out: remembering "10" must not hand it the receipt of "a"."""
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0)
    a, ten = message(1, connector="up"), message(1, connector="up")
    c.remember(a, "up", ["a"])
    c.remember(ten, "up", ["10"])
    c.report(report("a"), recorder.done)  # "same" finds a, "hex for decimal" finds "10"
    await settle()
    assert not recorder.delivered and c.parked == 1
    c.remember(message(1, connector="up"), "up", ["0a"])  # another spelling: still unsure
    c.remember(ten, "up", ["10"])
    assert not recorder.delivered and c.parked == 1
    c.stop()


async def test_one_report_does_not_teach_a_relation_five_do(store):
    """By default a relation is learned from LEARN_VOTES reports that only it explains:
    a receipt that overtook its own answer may be explained by another id alone. Until
    then such reports wait in the park, and go when the relation is learned."""
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=5.0, learn_votes=LEARN_VOTES)
    sent = [message(1, connector="up") for _ in range(LEARN_VOTES)]
    for n, m in enumerate(sent):
        c.remember(m, "up", [f"{0x1a0 + n:x}"])  # "1a0".. : only "decimal for hex" reads
    for n in range(LEARN_VOTES - 1):
        c.report(report(str(0x1a0 + n)), recorder.done)
        await settle()
    assert not recorder.delivered and c.parked == LEARN_VOTES - 1
    c.report(report(str(0x1a0 + LEARN_VOTES - 1)), recorder.done)
    await settle()
    assert sorted(id(m.message) for _, m in recorder.delivered) == sorted(map(id, sent))
    assert c.parked == 0
    assert await store.get_setting("receipt-ids/up/given") == "decimal for hex"
    c.stop()


async def test_a_parked_report_is_matched_at_the_last_look_when_nothing_is_learned(store):
    """A quiet connector: one receipt, nothing learned, one message any relation finds."""
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=1.0, learn_votes=LEARN_VOTES)
    only = message(1, connector="up")
    c.remember(only, "up", ["1d305b4c"])
    c.report(report("0489708364"), recorder.done)
    await settle()
    assert not recorder.delivered and c.parked == 1
    await asyncio.sleep(1.5)
    assert [m.message for _, m in recorder.delivered] == [only]
    assert recorder.dropped == ["0489708364"] and c.unmatched == 0
    c.stop()


async def test_an_smsc_that_changes_its_spelling_is_followed_after_enough_reports(store):
    """Learned "same"; then the SMSC writes decimal receipts for its hex answers: after
    RELEARN_VOTES reports in a row that only "decimal for hex" explains, that is followed
    (those reports themselves stay unmatched: none is guessed)."""
    account = await funded(store, credits=100)
    await store.set_setting("receipt-ids/up/given", "same")
    stored = [message(account.id, price=0, connector="up", upstream_id=f"{0x1a0 + n:x}")
              for n in range(RELEARN_VOTES + 1)]
    await store.write(WriteBatch(new_messages=stored))
    recorder = Recorder()
    c = correlator(store, recorder, park_seconds=0.2)
    for n in range(RELEARN_VOTES):
        c.report(report(str(0x1a0 + n)), recorder.done)
    await asyncio.sleep(1.0)
    assert not recorder.delivered and c.unmatched == RELEARN_VOTES
    assert await store.get_setting("receipt-ids/up/given") == "decimal for hex"
    c.report(report(str(0x1a0 + RELEARN_VOTES)), recorder.done)
    await settle()
    assert recorder.delivered[-1][1].message.id == stored[-1].id
    c.stop()
