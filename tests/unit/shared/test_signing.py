"""Signed records: what a signature covers, who may sign what, rotation, and key settings."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    EventEnvelope,
    EventRejected,
    MfaPolicyDisabled,
    parse_event,
)
from shared.settings import Settings, SettingsError, load_settings
from shared.signing import (
    KID_HEADER,
    SIGNATURE_HEADER,
    RecordRefused,
    RecordSigner,
    SignedRecord,
    TrustMap,
    signed_message,
    verified_event,
)
from shared.signing_settings import (
    format_signing_key,
    format_trust_map,
    parse_signing_key,
    parse_trust_map,
    signer_from,
    trust_from,
)

CAUSE = Cause(actor="admin-1", at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
PREFERENCES = RecordSigner.from_seed("prefs-1", bytes(range(32)))
CONTACTS = RecordSigner.from_seed("contacts-1", bytes(range(1, 33)))
TRUST = TrustMap.of({"preferences": PREFERENCES, "contacts": CONTACTS})


def policy_disabled(version: int = 1) -> MfaPolicyDisabled:
    return MfaPolicyDisabled.new(
        org_id="acme", aggregate_id="acme", aggregate_version=version, payload=Empty(), cause=CAUSE
    )


def contact_created() -> ContactCreated:
    payload = ContactCreatedPayload(kind="vendor", display_name="V", email="v@example.com")
    return ContactCreated.new(
        org_id="acme", aggregate_id="c-1", aggregate_version=1, payload=payload, cause=CAUSE
    )


def wire(
    event: EventEnvelope, signer: RecordSigner | None
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key, value = event.kafka_key(), event.to_json()
    headers = event.kafka_headers() + (signer.headers(key, value) if signer else [])
    return key, value, headers


def refusal(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> str:
    with pytest.raises(RecordRefused) as refused:
        verified_event(TRUST, key, value, headers)
    return refused.value.reason


# --- what a signature covers ------------------------------------------------------------


def test_a_record_signed_by_its_owner_verifies_and_keeps_its_evidence() -> None:
    event = policy_disabled()
    key, value, headers = wire(event, PREFERENCES)
    verified = verified_event(TRUST, key, value, headers)
    assert verified == event
    assert verified.signed_record is not None
    assert verified.signed_record.value == value
    assert verified.signed_record.kid == "prefs-1"
    assert TRUST.signer_of(verified.signed_record).service == "preferences"


def test_the_evidence_is_not_part_of_the_event() -> None:
    # Kept beside the fields, in pydantic's private slot: never in the JSON, the equality
    # or another event, and a copy keeps it.
    event = policy_disabled()
    assert event.signed_record is None
    key, value, headers = wire(event, PREFERENCES)
    verified = verified_event(TRUST, key, value, headers)
    assert verified.to_json() == value
    assert verified == event and event.signed_record is None
    assert verified.model_copy().signed_record is verified.signed_record
    assert parse_event(value).signed_record is None


def test_the_signed_bytes_are_the_documented_ones() -> None:
    assert signed_message(b"k1", b"{}") == (
        b"portal-mfa/signed-record/v1" + b"\x00\x00\x00\x02k1" + b"\x00\x00\x00\x02{}"
    )
    assert (
        signed_message(None, b"") == b"portal-mfa/signed-record/v1\xff\xff\xff\xff\x00\x00\x00\x00"
    )


def test_an_unsigned_record_is_refused() -> None:
    assert refusal(*wire(policy_disabled(), None)) == "unsigned"


def test_a_key_nobody_trusts_is_an_unknown_signer() -> None:
    stranger = RecordSigner.generate("prefs-1-but-not-really")
    assert refusal(*wire(policy_disabled(), stranger)) == "unknown signer"


def test_a_stranger_using_a_trusted_kid_is_a_bad_signature() -> None:
    impostor = RecordSigner.generate("prefs-1")
    assert refusal(*wire(policy_disabled(), impostor)) == "bad signature"


def test_an_altered_value_or_key_is_a_bad_signature() -> None:
    key, value, headers = wire(policy_disabled(), PREFERENCES)
    altered = value.replace(b'"aggregate_version":1', b'"aggregate_version":9')
    assert altered != value
    assert refusal(key, altered, headers) == "bad signature"
    assert refusal(b"other-org", value, headers) == "bad signature"
    assert refusal(None, value, headers) == "bad signature"


def test_key_and_value_bytes_cannot_be_shifted_between_each_other() -> None:
    key, value = b"acme", b'{"x":1}'
    headers = PREFERENCES.headers(key, value)
    record = SignedRecord.from_headers(key[:-1], key[-1:] + value, headers)
    with pytest.raises(RecordRefused, match="bad signature"):
        TRUST.signer_of(record)
    empty_key = PREFERENCES.headers(b"", value)
    with pytest.raises(RecordRefused, match="bad signature"):
        TRUST.signer_of(SignedRecord.from_headers(None, value, empty_key))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: [x for x in h if x[0] != KID_HEADER],
        lambda h: [x for x in h if x[0] != SIGNATURE_HEADER],
        lambda h: [*h, (SIGNATURE_HEADER, h[-1][1])],
        lambda h: [(KID_HEADER, h[-2][1]), *h],
        lambda h: [(n, b"not*base64!" if n == SIGNATURE_HEADER else v) for n, v in h],
        lambda h: [(n, v[:40] if n == SIGNATURE_HEADER else v) for n, v in h],
        lambda h: [(n, v + b"===" if n == SIGNATURE_HEADER else v) for n, v in h],
        lambda h: [(n, v + b"A" if n == SIGNATURE_HEADER else v) for n, v in h],
        lambda h: [(n, v[:20] + b"=" + v[20:] if n == SIGNATURE_HEADER else v) for n, v in h],
        lambda h: [(n, v[:20] + b" " + v[20:] if n == SIGNATURE_HEADER else v) for n, v in h],
    ],
    ids=[
        "no kid",
        "no signature",
        "two signatures",
        "two key ids",
        "not base64",
        "short signature",
        "padded past its length",
        "one character too many",
        "padding inside",
        "whitespace inside",
    ],
)
def test_malformed_signature_headers_are_a_bad_signature(tamper: object) -> None:
    key, value, headers = wire(policy_disabled(), PREFERENCES)
    assert callable(tamper)
    assert refusal(key, value, tamper(headers)) == "bad signature"


# --- who may sign what ------------------------------------------------------------------


def test_a_trusted_key_of_another_service_is_the_wrong_signer() -> None:
    assert refusal(*wire(policy_disabled(), CONTACTS)) == (
        "wrong signer for aggregate type org_preferences"
    )
    assert refusal(*wire(contact_created(), PREFERENCES)) == (
        "wrong signer for aggregate type contact"
    )


def test_an_envelope_claiming_another_aggregate_type_than_its_event_is_refused() -> None:
    # contacts may sign "contact" events, but this is a policy event dressed up as one.
    raw = json.loads(policy_disabled().to_json()) | {"aggregate_type": "contact"}
    value = json.dumps(raw).encode()
    headers = CONTACTS.headers(b"acme", value)
    assert refusal(b"acme", value, headers) == "wrong signer for aggregate type contact"


def test_the_signature_is_checked_before_the_content_is_read() -> None:
    value = b"not json at all"
    assert refusal(b"k", value, []) == "unsigned"
    with pytest.raises(EventRejected):
        verified_event(TRUST, b"k", value, PREFERENCES.headers(b"k", value))


# --- rotation ---------------------------------------------------------------------------


def test_during_rotation_old_and_new_keys_both_verify_then_the_old_one_is_retired() -> None:
    old, new = RecordSigner.generate("prefs-2025"), RecordSigner.generate("prefs-2026")
    both = parse_trust_map(
        format_trust_map({"preferences": old}) + "," + format_trust_map({"preferences": new})
    )
    assert len(both) == 2
    for signer in (old, new):
        key, value, headers = wire(policy_disabled(), signer)
        assert verified_event(both, key, value, headers).aggregate_id == "acme"
    retired = parse_trust_map(format_trust_map({"preferences": new}))
    key, value, headers = wire(policy_disabled(), old)
    with pytest.raises(RecordRefused, match="unknown signer"):
        verified_event(retired, key, value, headers)


def test_a_kid_listed_twice_is_refused() -> None:
    text = format_trust_map({"preferences": PREFERENCES})
    with pytest.raises(ValueError, match="twice"):
        parse_trust_map(f"{text},{text}")


# --- the settings' text -----------------------------------------------------------------


def test_a_signing_key_round_trips_through_its_setting_text() -> None:
    text = format_signing_key(PREFERENCES)
    signer = parse_signing_key(text)
    assert signer.kid == "prefs-1"
    assert signer.public_key() == PREFERENCES.public_key()
    assert base64.b64encode(PREFERENCES.private_seed()).decode() not in repr(signer)


SEED = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORTAL_MFA_SIGNING_KEY", SEED),  # no kid
        ("PORTAL_MFA_SIGNING_KEY", f"k1:{SEED[:-4]}"),  # not 32 bytes
        ("PORTAL_MFA_SIGNING_KEY", f"k 1:{SEED}"),  # kid with a space
        ("PORTAL_MFA_SIGNING_KEY", f"k1:{SEED}!"),  # not base64
        ("PORTAL_MFA_TRUSTED_SIGNERS", f"k1:{SEED}"),  # no service
        ("PORTAL_MFA_TRUSTED_SIGNERS", f"k1=billing:{SEED}"),  # no such service
        ("PORTAL_MFA_TRUSTED_SIGNERS", f"k1=auth:{SEED[:-8]}"),  # not 32 bytes
    ],
)
def test_a_malformed_key_setting_names_the_variable_never_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert variable in message
    assert SEED[:16] not in message
    assert "\n" not in message


def test_a_publisher_refuses_to_start_without_its_key() -> None:
    with pytest.raises(SettingsError, match="PORTAL_MFA_SIGNING_KEY"):
        signer_from(Settings(signing_key=""), "preferences")
    signer = signer_from(Settings(signing_key=format_signing_key(CONTACTS)), "contacts")
    assert signer.kid == "contacts-1"


def test_a_consumer_refuses_to_start_trusting_nobody() -> None:
    with pytest.raises(SettingsError, match="PORTAL_MFA_TRUSTED_SIGNERS"):
        trust_from(Settings(trusted_signers=" , "))
    trust = trust_from(Settings(trusted_signers=format_trust_map({"contacts": CONTACTS})))
    assert "contacts-1" in trust


def test_parsed_events_are_equal_whether_or_not_they_carry_evidence() -> None:
    key, value, headers = wire(contact_created(), CONTACTS)
    assert verified_event(TRUST, key, value, headers) == parse_event(value)


@pytest.mark.parametrize(
    "encoded",
    [
        b"",
        b"A",
        b"AA",
        b"AA=",
        b"AA==",
        b"AA===",
        b"AAA",
        b"AAAA",
        b"-_-_",
        b"+/+/",
        b"ab\ncd",
        b"ab cd",
        b"ab=cd",
        b"\xff\xfe",
        base64.urlsafe_b64encode(bytes(range(64))).rstrip(b"="),
        base64.urlsafe_b64encode(bytes(range(64))),
        base64.standard_b64encode(bytes(range(255, 191, -1))).rstrip(b"="),
        base64.urlsafe_b64encode(bytes(range(64))).rstrip(b"=") + b"A",
    ],
)
def test_a_signature_header_decodes_exactly_as_strict_urlsafe_base64(encoded: bytes) -> None:
    """The decoder is hand-rolled for speed; it must accept and refuse what
    `base64.b64decode(..., b"-_", validate=True)` does, and only 64-byte signatures."""
    from shared.signing import _decoded_signature

    try:
        expected: bytes | None = base64.b64decode(
            encoded + b"=" * (-len(encoded) % 4), b"-_", validate=True
        )
    except ValueError:
        expected = None
    if expected is not None and len(expected) != 64:
        expected = None
    if expected is None:
        with pytest.raises(RecordRefused):
            _decoded_signature(encoded)
    else:
        assert _decoded_signature(encoded) == expected
