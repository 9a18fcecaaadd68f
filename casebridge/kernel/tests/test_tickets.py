"""Tickets can be read and used only by the servers that share the key, only once, only in time."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from casebridge.kernel.tickets import DownloadTicket, SpentTickets, TicketRefused, seal, ticket_key, unseal

KEY = ticket_key("a secret key of the installation")


def _ticket(**overrides: object) -> DownloadTicket:
    fields: dict[str, Any] = {
        "blob": "objects/x/v1-abc",
        "ciphertext_size": 1000,
        "dek": bytes(range(32)),
        "associated": b"object:version",
        "start": 0,
        "end": 900,
        "size": 900,
        "partial": False,
        "content_type": "model/stl",
        "filename": "file_1.stl",
        "etag": '"sha256-00"',
        **overrides,
    }
    return DownloadTicket(**fields)


def test_a_sealed_ticket_opens_to_exactly_what_was_sealed() -> None:
    ticket = _ticket(start=10, end=20, partial=True)
    assert unseal(KEY, seal(KEY, ticket)) == ticket


def test_the_data_key_and_blob_name_cannot_be_read_from_the_token() -> None:
    ticket = _ticket()
    raw = base64.urlsafe_b64decode(seal(KEY, ticket) + "==")
    assert ticket.dek not in raw and ticket.blob.encode() not in raw and b"stl" not in raw


def test_two_tickets_for_the_same_range_differ() -> None:
    assert seal(KEY, _ticket()) != seal(KEY, _ticket())
    assert _ticket().id != _ticket().id


@pytest.mark.parametrize("position", [0, 5, 40, -2])  # -1 may hold only padding bits
def test_a_changed_character_anywhere_is_refused_as_forged(position: int) -> None:
    token = list(seal(KEY, _ticket()))
    token[position] = "A" if token[position] != "A" else "B"
    with pytest.raises(TicketRefused) as refused:
        unseal(KEY, "".join(token))
    assert not refused.value.expired


def test_a_ticket_from_another_installation_is_refused() -> None:
    with pytest.raises(TicketRefused):
        unseal(ticket_key("another installation"), seal(KEY, _ticket()))


@pytest.mark.parametrize("token", ["", "x", "not base64 at all!", "A" * 300])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(TicketRefused):
        unseal(KEY, token)


def test_an_expired_ticket_is_refused_and_says_so() -> None:
    token = seal(KEY, _ticket())
    with pytest.raises(TicketRefused) as refused:
        unseal(KEY, token, now=time.time() + 61)
    assert refused.value.expired


def test_a_ticket_is_spent_by_its_first_use() -> None:
    spent = SpentTickets()
    ticket = _ticket()
    assert spent.spend(ticket)
    assert not spent.spend(ticket)
    assert not spent.spend(unseal(KEY, seal(KEY, ticket)))  # a copy of the same ticket
    assert spent.spend(_ticket())


def test_spent_ids_are_forgotten_only_after_they_expired() -> None:
    spent = SpentTickets()
    live = _ticket()
    assert spent.spend(live)
    for _ in range(1100):  # enough to trigger pruning
        spent.spend(_ticket(expires=time.time() - 1))
    assert not spent.spend(live)
