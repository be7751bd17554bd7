"""Activity, payment and identity APIs: requests sent and replies parsed, daemon quirks included."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
import responses
from helpers import ACTIVITY, BASE, PAYMENT, TS, make_client, query, sent

from golemsync.errors import (
    AuthenticationError,
    BadRequest,
    Gone,
    NotImplementedByDaemon,
    PollTimeout,
    ProtocolError,
    ServerError,
)


# -- identity -----------------------------------------------------------------------------------
@responses.activate
def test_me_and_version() -> None:
    responses.get(f"{BASE}/me", json={"identity": "0x2e1c", "name": "requestor",
                                      "role": "manager"})
    responses.get(f"{BASE}/version/get", json={"current": {
        "version": "0.17.6", "name": "(49e8b486 2026-03-28 build #123)", "seen": True,
        "releaseTs": "2015-10-13T15:43:00", "insertionTs": None, "updateTs": None},
        "pending": None})
    client = make_client()
    assert client.identity.me().identity == "0x2e1c"
    version = client.identity.version()
    assert version.current is not None and version.current.version == "0.17.6"
    assert version.pending is None


@responses.activate
def test_plain_text_401_names_the_setting_not_the_key() -> None:
    responses.get(f"{BASE}/me", body="Invalid application key", status=401,
                  content_type="text/plain")
    with pytest.raises(AuthenticationError) as caught:
        make_client().identity.me()
    message = str(caught.value)
    assert "YAGNA_APPKEY" in message and "Invalid application key" in message
    assert "s3cret-app-key" not in message and "s3cret-app-key" not in repr(caught.value.body)


# -- activity ------------------------------------------------------------------------------------
@responses.activate
def test_create_activity_object_and_legacy_forms() -> None:
    responses.post(f"{ACTIVITY}/activity", json={"activityId": "88c6"}, status=200)
    responses.post(f"{ACTIVITY}/activity", json="99d7", status=200)
    activity = make_client().activity
    assert activity.create_activity("ag", timeout=7) == "88c6"
    assert sent(0) == {"agreementId": "ag"} and query(0) == {"timeout": "7"}
    assert activity.create_activity("ag", legacy_body=True) == "99d7"
    assert sent(1) == "ag"


@responses.activate
def test_exec_double_encodes_the_script() -> None:
    responses.post(f"{ACTIVITY}/activity/a1/exec", json="b1f0", status=200)
    commands = [{"deploy": {}}, {"run": {"entry_point": "/bin/sh", "args": ["-c", "echo hi"]}}]
    assert make_client().activity.exec("a1", commands) == "b1f0"
    body = sent()
    assert set(body) == {"text"} and __import__("json").loads(body["text"]) == commands


@responses.activate
def test_exec_results_parse_strings_bytes_and_nine_digit_dates() -> None:
    responses.get(f"{ACTIVITY}/activity/a1/exec/b1", json=[
        {"index": 0, "eventDate": TS, "result": "Ok", "stdout": "hi\n", "stderr": None,
         "message": None, "isBatchFinished": False},
        {"index": 1, "eventDate": TS, "result": "Error", "stdout": [104, 105, 10],
         "message": "ExeScript command exited with code 1", "isBatchFinished": True}])
    first, second = make_client().activity.get_exec_results("a1", "b1", timeout=3)
    assert query() == {"timeout": "3"}
    assert first.stdout == "hi\n" and first.event_date.tzinfo is not None
    assert second.stdout == b"hi\n" and second.stderr is None and second.is_batch_finished


@responses.activate
def test_results_with_command_index_408_is_a_poll_timeout() -> None:
    responses.get(f"{ACTIVITY}/activity/a1/exec/b1", status=408, json={"message": "Timeout"})
    with pytest.raises(PollTimeout):
        make_client().activity.get_exec_results("a1", "b1", timeout=1, command_index=2)
    assert query() == {"timeout": "1", "commandIndex": "2"}


@responses.activate
def test_state_usage_commands_destroy() -> None:
    responses.get(f"{ACTIVITY}/activity/a1/state", json={"state": ["Ready", None]})
    responses.get(f"{ACTIVITY}/activity/a2/state", json={
        "state": ["Terminated", None], "reason": "crash", "errorMessage": "boom"})
    responses.get(f"{ACTIVITY}/activity/a1/usage", json={"currentUsage": [12.0, 3.41],
                                                         "timestamp": 1746101107})
    responses.get(f"{ACTIVITY}/activity/a1/command", json=[
        {"command": "Run", "params": ["/bin/sh", "-c", "sleep 10"]}])
    responses.get(f"{ACTIVITY}/activity/a1/agreement", json="ag")
    responses.get(f"{ACTIVITY}/activity", json=["a1", "a2"])
    responses.delete(f"{ACTIVITY}/activity/a1", json=None, status=200)
    api = make_client().activity
    assert api.get_state("a1").alive and api.get_state("a1").current == "Ready"
    dead = api.get_state("a2")
    assert not dead.alive and dead.reason == "crash" and dead.error_message == "boom"
    assert api.get_usage("a1").current_usage == [12.0, 3.41]
    assert api.get_running_commands("a1")[0]["command"] == "Run"
    assert api.get_agreement_id("a1") == "ag"
    assert api.list_activities("ag") == ["a1", "a2"] and query() == {"agreementId": "ag"}
    api.destroy_activity("a1", timeout=4)
    assert query() == {"timeout": "4"}


@responses.activate
def test_unknown_activity_is_a_500_with_the_daemons_message() -> None:
    responses.post(f"{ACTIVITY}/activity/zz/exec", status=500, json={
        "message": "DAO error: Not found: agreement id for activity: zz"})
    with pytest.raises(ServerError, match="DAO error"):
        make_client().activity.exec("zz", [])


@responses.activate
def test_sse_stream_parses_runtime_events_and_skips_pings() -> None:
    body = ("event: runtime\n"
            'data: {"batch_id":"b1","index":0,"timestamp":"2025-05-01T12:05:07.001234567",'
            '"kind":{"started":{"command":{"run":{}}}}}\nid: 0\n\n'
            ":ping\n\n"
            "event: runtime\n"
            'data: {"batch_id":"b1","index":0,"timestamp":"2025-05-01T12:05:07.5",'
            '"kind":{"finished":{"return_code":0,"message":null}}}\nid: 1\n\n')
    responses.get(f"{ACTIVITY}/activity/a1/exec/b1", body=body,
                  content_type="text/event-stream")
    with make_client().activity.stream_exec_results("a1", "b1") as stream:
        events = list(stream)
    assert responses.calls[0].request.headers["Accept"] == "text/event-stream"
    assert [(e.kind, e.index) for e in events] == [("started", 0), ("finished", 0)]
    assert events[1].payload == {"return_code": 0, "message": None}
    assert events[0].timestamp == datetime(2025, 5, 1, 12, 5, 7, 1234, timezone.utc)


# -- payment ---------------------------------------------------------------------------
ALLOCATION = {"allocationId": "3f1d", "address": "0x2e1c",
              "paymentPlatform": "erc20-holesky-tglm",
              "totalAmount": "10", "spentAmount": "0", "remainingAmount": "10",
              "timestamp": TS, "timeout": TS, "makeDeposit": False}


@responses.activate
def test_allocation_create_get_release() -> None:
    responses.post(f"{PAYMENT}/allocations", json=ALLOCATION, status=201)
    responses.get(f"{PAYMENT}/allocations/3f1d", json=ALLOCATION)
    responses.delete(f"{PAYMENT}/allocations/3f1d", json=None)
    responses.get(f"{PAYMENT}/allocations", json=[ALLOCATION])
    payment = make_client().payment
    timeout = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    created = payment.create_allocation(Decimal("10.50"), payment_platform="erc20-holesky-tglm",
                                        address="0x2e1c", timeout=timeout)
    assert sent(0) == {"totalAmount": "10.5", "makeDeposit": False,
                       "paymentPlatform": "erc20-holesky-tglm", "address": "0x2e1c",
                       "timeout": "2025-06-01T12:00:00.000000Z"}
    assert created.remaining_amount == Decimal("10") and created.allocation_id == "3f1d"
    assert payment.get_allocation("3f1d").total_amount == Decimal(10)
    payment.release_allocation("3f1d")
    assert len(payment.list_allocations()) == 1


@responses.activate
def test_allocation_problem_details_are_kept() -> None:
    problem = {"type": "/payment-api/v1/allocations/validation-error",
               "instance": "/payment-api/v1/allocations/validation-error/"
                           "insufficient-account-funds",
               "detail": "Insufficient funds to create the allocation.",
               "requestedFunds": "10", "availableFunds": "2", "reservedFunds": "0"}
    responses.post(f"{PAYMENT}/allocations", json=problem, status=400,
                   content_type="application/problem+json")
    with pytest.raises(BadRequest, match="Insufficient funds") as caught:
        make_client().payment.create_allocation(Decimal(10))
    assert caught.value.body["requestedFunds"] == "10"


@responses.activate
def test_released_allocation_is_gone() -> None:
    responses.delete(f"{PAYMENT}/allocations/x", status=410,
                     json={"message": "Allocation x has been already released"})
    with pytest.raises(Gone, match="already released"):
        make_client().payment.release_allocation("x")


@responses.activate
def test_demand_decorations_join_ids_and_keep_string_values() -> None:
    responses.get(f"{PAYMENT}/demandDecorations", json={
        "properties": [{"key": "golem.com.payment.platform.erc20-holesky-tglm.address",
                        "value": "0x2e1c"},
                       {"key": "golem.com.payment.protocol.version", "value": "3"}],
        "constraints": ["(golem.com.payment.platform.erc20-holesky-tglm.address=*)",
                        "(golem.com.payment.protocol.version>1)"]})
    decoration = make_client().payment.demand_decorations(["a", "b"])
    assert query() == {"allocationIds": "a,b"}
    # literally: the daemon answers 400 to a%2Cb
    assert responses.calls[0].request.url == f"{PAYMENT}/demandDecorations?allocationIds=a,b"
    assert decoration.properties["golem.com.payment.protocol.version"] == "3"
    assert len(decoration.constraints) == 2


@responses.activate
def test_invoice_events_filters_and_header() -> None:
    responses.get(f"{PAYMENT}/invoiceEvents", json=[
        {"invoiceId": "b2e7", "eventDate": TS, "eventType": "InvoiceReceivedEvent"}])
    after = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
    (event,) = make_client().payment.invoice_events(after=after, timeout=2,
                                                    event_types=["RECEIVED", "ACCEPTED"])
    request = responses.calls[0].request
    assert "afterTimestamp=2025-05-01T12%3A00%3A00.000000Z" in request.url
    assert request.headers["X-Requestor-Events"] == "RECEIVED,ACCEPTED"
    assert event.invoice_id == "b2e7" and event.event_type == "InvoiceReceivedEvent"


@responses.activate
def test_documents_accept_and_reject() -> None:
    responses.get(f"{PAYMENT}/debitNotes/d1", json={
        "debitNoteId": "d1", "issuerId": "0xp", "recipientId": "0xr", "payeeAddr": "0xp",
        "payerAddr": "0xr", "paymentPlatform": "erc20-holesky-tglm", "timestamp": TS,
        "agreementId": "ag", "activityId": "ac", "totalAmountDue": "0.0042",
        "usageCounterVector": [120.0, 35.2], "paymentDueDate": TS, "status": "RECEIVED"})
    responses.get(f"{PAYMENT}/invoices/i1", json={
        "invoiceId": "i1", "issuerId": "0xp", "recipientId": "0xr", "payeeAddr": "0xp",
        "payerAddr": "0xr", "paymentPlatform": "erc20-holesky-tglm", "timestamp": TS,
        "agreementId": "ag", "activityIds": ["ac"], "amount": "0.0051",
        "paymentDueDate": TS, "status": "RECEIVED"})
    responses.post(f"{PAYMENT}/debitNotes/d1/accept", json=None)
    responses.post(f"{PAYMENT}/invoices/i1/accept", json=None)
    responses.post(f"{PAYMENT}/invoices/i1/reject", json=None)
    responses.post(f"{PAYMENT}/debitNotes/d1/reject", status=501, json={"message": None})
    payment = make_client().payment
    note = payment.get_debit_note("d1")
    assert note.total_amount_due == Decimal("0.0042") and note.usage_counter_vector == [120.0, 35.2]
    invoice = payment.get_invoice("i1")
    assert invoice.amount == Decimal("0.0051") and invoice.activity_ids == ["ac"]
    payment.accept_debit_note("d1", note.total_amount_due, "alloc", timeout=9)
    assert sent(2) == {"totalAmountAccepted": "0.0042", "allocationId": "alloc"}
    assert query(2) == {"timeout": "9"}
    payment.accept_invoice("i1", invoice.amount, "alloc")
    payment.reject_invoice("i1", reason="BAD_SERVICE", message="broken")
    assert sent(4) == {"rejectionReason": "BAD_SERVICE", "totalAmountAccepted": "0",
                       "message": "broken"}
    with pytest.raises(NotImplementedByDaemon):
        payment.reject_debit_note("d1", reason="BAD_SERVICE")


@responses.activate
def test_a_document_missing_its_amount_is_a_protocol_error() -> None:
    responses.get(f"{PAYMENT}/invoices/i2", json={"invoiceId": "i2", "agreementId": "ag"})
    with pytest.raises(ProtocolError, match="Invoice"):
        make_client().payment.get_invoice("i2")


@responses.activate
def test_requestor_accounts() -> None:
    responses.get(f"{PAYMENT}/requestorAccounts", json=[{
        "platform": "erc20-holesky-tglm", "address": "0x2e1c", "driver": "erc20",
        "network": "holesky", "token": "tGLM", "send": True, "receive": False}])
    (account,) = make_client().payment.requestor_accounts()
    assert account.platform == "erc20-holesky-tglm" and account.send
