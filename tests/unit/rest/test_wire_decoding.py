"""The hand decoders of the hot payment and market documents give what dataclasses-json gives.

Every model with its own ``_decode`` is checked against the generic ``from_dict`` on generated
documents: optional fields present, absent or null, unknown fields beside them, timestamps with
and without fractions, money as strings. Documents that do not fit raise ProtocolError.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golemsync.errors import ProtocolError
from golemsync.rest.wire import (
    DebitNote,
    DebitNoteEvent,
    Invoice,
    InvoiceEvent,
    ProposalEvent,
    Wire,
)

ids = st.text("0123456789abcdef-", min_size=1, max_size=12)
stamps = st.sampled_from(["2026-12-02T12:00:00Z", "2026-12-02T12:00:00.123456789Z",
                          "2026-12-02T14:00:00.5+02:00"])
amounts = st.decimals(min_value=0, max_value=10 ** 6, places=18).map(str)
json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)


def document(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Required fields always; each optional one present or absent, and null too where the
    model's default is None (dataclasses-json keeps a null where the model has another
    default; the hand decoders give that default); maybe a stranger."""
    def build(draw: Any) -> dict[str, Any]:
        doc = {key: draw(value) for key, value in required.items()}
        for key, value in optional.items():
            kinds = ["value", "null", "absent"] if key in NULLABLE else ["value", "absent"]
            choice = draw(st.sampled_from(kinds))
            if choice == "value":
                doc[key] = draw(value)
            elif choice == "null":
                doc[key] = None
        if draw(st.booleans()):
            doc["someFutureField"] = draw(json_values)
        return doc
    return st.composite(lambda draw: build(draw))()


NULLABLE = {"timestamp", "paymentDueDate", "previousDebitNoteId", "usageCounterVector",
            "rejection", "property", "prevProposalId"}
PARTIES = {"issuerId": ids, "recipientId": ids, "payeeAddr": ids, "payerAddr": ids,
           "paymentPlatform": ids, "timestamp": stamps, "paymentDueDate": stamps,
           "status": st.sampled_from(["RECEIVED", "ACCEPTED"])}
DOCUMENTS: dict[type[Wire], st.SearchStrategy[Any]] = {
    DebitNote: document(
        {"debitNoteId": ids, "agreementId": ids, "activityId": ids, "totalAmountDue": amounts},
        {**PARTIES, "previousDebitNoteId": ids,
         "usageCounterVector": st.lists(st.floats(0, 1e6) | st.integers(0, 10 ** 6),
                                        max_size=3)}),
    Invoice: document(
        {"invoiceId": ids, "agreementId": ids, "amount": amounts},
        {**PARTIES, "activityIds": st.lists(ids, max_size=3)}),
    InvoiceEvent: document(
        {"eventType": st.sampled_from(["InvoiceReceivedEvent", "InvoiceRejectedEvent"]),
         "invoiceId": ids, "eventDate": stamps},
        {"rejection": objects, "property": objects}),
    DebitNoteEvent: document(
        {"eventType": st.just("DebitNoteReceivedEvent"), "debitNoteId": ids,
         "eventDate": stamps},
        {"rejection": objects, "property": objects}),
    ProposalEvent: document(
        {"eventDate": stamps, "eventType": st.just("ProposalEvent"),
         "proposal": document({"proposalId": ids, "issuerId": ids, "timestamp": stamps,
                               "state": st.sampled_from(["Initial", "Draft"])},
                              {"properties": objects, "constraints": st.text(max_size=10),
                               "prevProposalId": ids})},
        {}),
}


@pytest.mark.parametrize("model", list(DOCUMENTS), ids=lambda m: m.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hand_decoding_equals_dataclasses_json(model: type[Wire], data: st.DataObject) -> None:
    doc = data.draw(DOCUMENTS[model])
    assert model.parse(doc) == model.from_dict(doc)


@pytest.mark.parametrize("model, doc, needle", [
    (DebitNote, {"debitNoteId": "d", "agreementId": "a", "activityId": "x"}, "totalAmountDue"),
    (DebitNote, {"debitNoteId": "d", "agreementId": "a", "activityId": "x",
                 "totalAmountDue": "1", "usageCounterVector": ["1"]}, "usageCounterVector"),
    (Invoice, {"invoiceId": 7, "agreementId": "a", "amount": "1"}, "invoiceId"),
    (Invoice, {"invoiceId": "i", "agreementId": "a", "amount": "lots"}, "Invoice"),
    (InvoiceEvent, {"eventType": "InvoiceReceivedEvent", "invoiceId": "i"}, "eventDate"),
    (ProposalEvent, {"eventDate": "2026-12-02T12:00:00Z", "eventType": "ProposalEvent"},
     "proposal"),
])
def test_documents_that_do_not_fit_raise_protocol_error(model: type[Wire], doc: dict[str, Any],
                                                        needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle):
        model.parse(doc)
