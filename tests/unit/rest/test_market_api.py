"""Market API: every call's request and the parse of the daemon's replies."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import responses
from helpers import MARKET, TS, make_client, query, sent

from golemsync.errors import BadRequest, Gone, NotFound, ProtocolError
from golemsync.rest import ProposalEvent, ProposalRejectedEvent

OFFER = {"proposalId": "R-9e2f", "issuerId": "0xprov", "state": "Initial", "timestamp": TS,
         "properties": {"golem.node.id.name": "alice"}, "constraints": "()",
         "someFutureField": 1}


@responses.activate
def test_subscribe_sends_properties_and_constraints_and_reads_a_bare_id() -> None:
    responses.post(f"{MARKET}/demands", json="c3a9-5f0d", status=201)
    sub = make_client().market.subscribe_demand({"golem.node.debug.subnet": "public"}, "(a=b)")
    assert sub == "c3a9-5f0d"
    request = responses.calls[0].request
    assert request.headers["Authorization"] == "Bearer s3cret-app-key"
    assert request.headers["Content-Type"] == "application/json"
    assert sent() == {"properties": {"golem.node.debug.subnet": "public"}, "constraints": "(a=b)"}


@responses.activate
def test_subscribe_accepts_a_numeric_looking_id() -> None:
    responses.post(f"{MARKET}/demands", json=12345, status=201)
    assert make_client().market.subscribe_demand({}, "()") == "12345"


@responses.activate
def test_collect_offers_parses_events_and_passes_long_poll_parameters() -> None:
    events = [{"eventType": "ProposalEvent", "eventDate": TS, "proposal": OFFER},
              {"eventType": "ProposalRejectedEvent", "eventDate": TS, "proposalId": "R-1",
               "reason": {"message": "no"}},
              {"eventType": "PropertyQueryEvent", "eventDate": TS, "propertyQuery": {}}]
    responses.get(f"{MARKET}/demands/sub/events", json=events)
    got = make_client().market.collect_offers("sub", timeout=2.5, max_events=7)
    assert query() == {"timeout": "2.5", "maxEvents": "7"}
    assert isinstance(got[0], ProposalEvent) and got[0].proposal.issuer_id == "0xprov"
    assert got[0].proposal.timestamp == datetime(2025, 5, 1, 12, 0, 3, 123456, timezone.utc)
    assert isinstance(got[1], ProposalRejectedEvent) and got[1].reason == {"message": "no"}
    assert got[2].event_type == "PropertyQueryEvent"


@responses.activate
def test_collect_on_a_gone_subscription_is_not_found() -> None:
    responses.get(f"{MARKET}/demands/sub/events", status=404,
                  json={"message": "Subscription [sub] not found. Could be unsubscribed."})
    with pytest.raises(NotFound, match="Could be unsubscribed"):
        make_client().market.collect_offers("sub")


@responses.activate
def test_counter_proposal_reject_and_get() -> None:
    responses.post(f"{MARKET}/demands/sub/proposals/R-9e2f", json="R-mine", status=200)
    responses.post(f"{MARKET}/demands/sub/proposals/R-9e2f/reject", status=204)
    responses.get(f"{MARKET}/demands/sub/proposals/R-9e2f", json=OFFER)
    market = make_client().market
    assert market.counter_proposal("sub", "R-9e2f", {"k": 1}, "()") == "R-mine"
    assert sent(0) == {"properties": {"k": 1}, "constraints": "()"}
    market.reject_proposal("sub", "R-9e2f", "Score too low")
    assert sent(1) == {"message": "Score too low"}
    assert market.get_proposal("sub", "R-9e2f").state == "Initial"


@responses.activate
def test_reject_without_reason_sends_json_null() -> None:
    responses.post(f"{MARKET}/demands/sub/proposals/p/reject", status=204)
    make_client().market.reject_proposal("sub", "p")
    assert responses.calls[0].request.body == b"null"


@responses.activate
def test_agreement_lifecycle_requests() -> None:
    responses.post(f"{MARKET}/agreements", json="0ec929f5", status=200)
    responses.post(f"{MARKET}/agreements/0ec929f5/confirm", status=204)
    responses.post(f"{MARKET}/agreements/0ec929f5/wait", status=204)
    responses.post(f"{MARKET}/agreements/0ec929f5/terminate", body="", status=200)
    responses.post(f"{MARKET}/agreements/0ec929f5/cancel", status=200)
    market = make_client().market
    valid_to = datetime(2025, 5, 1, 13, 0, tzinfo=timezone.utc)
    assert market.create_agreement("R-77", valid_to) == "0ec929f5"
    assert sent(0) == {"proposalId": "R-77", "validTo": "2025-05-01T13:00:00.000000Z"}
    market.confirm_agreement("0ec929f5", app_session_id="s1")
    assert query(1) == {"appSessionId": "s1"}
    assert market.wait_for_approval("0ec929f5", timeout=15) is True
    assert query(2) == {"timeout": "15"}
    market.terminate_agreement("0ec929f5", {"message": "done", "golem.requestor.code": "Success"})
    assert sent(3) == {"message": "done", "golem.requestor.code": "Success"}
    market.cancel_agreement("0ec929f5")
    assert responses.calls[4].request.body == b"null"


@responses.activate
def test_wait_408_means_still_pending_and_410_is_gone() -> None:
    responses.post(f"{MARKET}/agreements/a/wait", status=408,
                   json={"message": "Timeout while waiting for Agreement [a] approval."})
    responses.post(f"{MARKET}/agreements/b/wait", status=410, json={"message": "Rejected"})
    market = make_client().market
    assert market.wait_for_approval("a", timeout=1) is False
    with pytest.raises(Gone, match="Rejected"):
        market.wait_for_approval("b", timeout=1)


@responses.activate
def test_create_from_an_initial_proposal_is_a_bad_request() -> None:
    responses.post(f"{MARKET}/agreements", status=400, json={
        "message": "No negotiation with Provider took place. (You should counter Proposal "
                   "at least one time)"})
    with pytest.raises(BadRequest, match="No negotiation") as caught:
        make_client().market.create_agreement("R-1", datetime.now(timezone.utc))
    assert caught.value.status == 400 and caught.value.method == "POST"


@responses.activate
def test_get_agreement_with_missing_optional_fields() -> None:
    responses.get(f"{MARKET}/agreements/a", json={
        "agreementId": "a", "state": "Approved",
        "demand": {"demandId": "d", "requestorId": "0xr", "properties": {}, "constraints": "()",
                   "timestamp": TS},
        "offer": {"offerId": "o", "providerId": "0xp", "properties": {"x": 1},
                  "constraints": "()", "timestamp": TS},
        "validTo": TS, "timestamp": TS})
    agreement = make_client().market.get_agreement("a")
    assert agreement.offer.provider_id == "0xp" and agreement.approved_date is None


@responses.activate
def test_agreement_events_and_termination_reason() -> None:
    responses.get(f"{MARKET}/agreementEvents", json=[
        {"eventType": "AgreementTerminatedEvent", "eventDate": TS, "agreementId": "a",
         "terminator": "Provider", "signature": "NotSigned", "reason": {"message": "bye"}}])
    responses.get(f"{MARKET}/agreements/a/terminate/reason", json={
        "eventDate": TS, "agreementId": "a", "terminator": "Requestor",
        "signature": "NotSigned", "reason": {"message": "done"}})
    market = make_client().market
    after = datetime(2025, 5, 1, 12, 0, tzinfo=timezone(__import__("datetime").timedelta(hours=2)))
    (event,) = market.agreement_events(after=after, timeout=1, max_events=5)
    assert query(0) == {"timeout": "1", "afterTimestamp": "2025-05-01T10:00:00.000000Z",
                        "maxEvents": "5"}
    assert event.terminator == "Provider" and event.reason == {"message": "bye"}
    assert market.termination_reason("a").terminator == "Requestor"


@responses.activate
def test_unsubscribe_and_malformed_replies() -> None:
    responses.delete(f"{MARKET}/demands/sub", status=204)
    responses.get(f"{MARKET}/demands/bad/events", body="{not json", status=200)
    responses.get(f"{MARKET}/demands/odd/events", json=[{"eventDate": TS}])
    market = make_client().market
    market.unsubscribe_demand("sub")
    with pytest.raises(ProtocolError, match="not JSON"):
        market.collect_offers("bad")
    with pytest.raises(ProtocolError, match="eventType"):
        market.collect_offers("odd")
