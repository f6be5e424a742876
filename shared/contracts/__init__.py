"""The contracts between services: topics, the event envelope and every event, the admin
commands and their replies. Each class is written once, in the module of its domain:

    topics                  the Kafka topics
    envelope                the envelope every event shares, `Cause`, `Empty`
    preferences_events      portal.preferences.events
    contacts_events         portal.contacts.events
    auth_events             portal.auth.events
    events                  the `Event` union, `parse_event`, upcasting
    commands                what every command carries (`Command`)
    preferences_commands    portal.preferences.commands
    contacts_commands       portal.contacts.commands
    replies                 `CommandReply` on portal.admin.replies
    schemas                 the JSON Schema documents (`python -m shared.contracts`)
"""

from __future__ import annotations

from shared.contracts.auth_events import (
    BackupCodesIssued,
    BackupCodesIssuedPayload,
    BackupCodeUsed,
    BackupCodeUsedPayload,
    ContactLockedOut,
    ContactLockedOutPayload,
    EnrollmentRef,
    LoginFailed,
    LoginFailedPayload,
    LoginSucceeded,
    LoginSucceededPayload,
    MfaAuthenticatorDisabled,
    MfaAuthenticatorDisabledPayload,
    MfaEnrolled,
    MfaEnrolledPayload,
    MfaEnrollmentInvalidated,
    MfaEnrollmentInvalidatedPayload,
    MfaEnrollmentStarted,
    OtpReplayRejected,
    PortalPasswordSet,
)
from shared.contracts.commands import (
    ASSERTION_FIELD,
    Command,
    command_topic,
    wire_digest,
)
from shared.contracts.contacts_commands import (
    CONTACTS_COMMAND_ADAPTER,
    ContactCommand,
    ContactsCommand,
    CreateContact,
    DeleteContact,
    GrantPortalAccess,
    ResetPortalMfa,
    RevokePortalAccess,
    UnlockContact,
)
from shared.contracts.contacts_events import (
    ContactCreated,
    ContactCreatedPayload,
    ContactDeleted,
    ContactKind,
    ContactUnlocked,
    ContactUnlockedPayload,
    MfaReset,
    MfaResetPayload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
)
from shared.contracts.envelope import (
    Cause,
    Empty,
    EventEnvelope,
    Payload,
    now_utc,
)
from shared.contracts.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    UPCASTERS,
    Event,
    EventRejected,
    Upcaster,
    parse_event,
    upcast,
)
from shared.contracts.preferences_commands import (
    PREFERENCES_COMMAND_ADAPTER,
    DisableMfaPolicy,
    EnableMfaPolicy,
    OrgPreferencesCommand,
    PreferencesCommand,
    SetPortalName,
)
from shared.contracts.preferences_events import (
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    PortalNameSet,
    PortalNameSetPayload,
)
from shared.contracts.replies import (
    CommandReply,
    Rejection,
    RejectionCode,
)
from shared.contracts.schemas import (
    command_json_schema,
    event_json_schema,
    reply_json_schema,
)
from shared.contracts.topics import (
    ADMIN_REPLIES,
    ALL_TOPICS,
    AUTH_EVENTS,
    CONTACTS_COMMANDS,
    CONTACTS_EVENTS,
    DEADLETTER,
    EVENT_TOPICS,
    PREFERENCES_COMMANDS,
    PREFERENCES_EVENTS,
)

__all__ = [
    "ADMIN_REPLIES",
    "ALL_TOPICS",
    "ASSERTION_FIELD",
    "AUTH_EVENTS",
    "CONTACTS_COMMANDS",
    "CONTACTS_COMMAND_ADAPTER",
    "CONTACTS_EVENTS",
    "DEADLETTER",
    "EVENT_ADAPTER",
    "EVENT_TOPICS",
    "EVENT_TYPES",
    "PREFERENCES_COMMANDS",
    "PREFERENCES_COMMAND_ADAPTER",
    "PREFERENCES_EVENTS",
    "UPCASTERS",
    "BackupCodeUsed",
    "BackupCodeUsedPayload",
    "BackupCodesIssued",
    "BackupCodesIssuedPayload",
    "Cause",
    "Command",
    "CommandReply",
    "ContactCommand",
    "ContactCreated",
    "ContactCreatedPayload",
    "ContactDeleted",
    "ContactKind",
    "ContactLockedOut",
    "ContactLockedOutPayload",
    "ContactUnlocked",
    "ContactUnlockedPayload",
    "ContactsCommand",
    "CreateContact",
    "DeleteContact",
    "DisableMfaPolicy",
    "Empty",
    "EnableMfaPolicy",
    "EnrollmentRef",
    "Event",
    "EventEnvelope",
    "EventRejected",
    "GrantPortalAccess",
    "LoginFailed",
    "LoginFailedPayload",
    "LoginSucceeded",
    "LoginSucceededPayload",
    "MfaAuthenticatorDisabled",
    "MfaAuthenticatorDisabledPayload",
    "MfaEnrolled",
    "MfaEnrolledPayload",
    "MfaEnrollmentInvalidated",
    "MfaEnrollmentInvalidatedPayload",
    "MfaEnrollmentStarted",
    "MfaPolicyDisabled",
    "MfaPolicyEnabled",
    "MfaReset",
    "MfaResetPayload",
    "OrgPreferencesCommand",
    "OtpReplayRejected",
    "Payload",
    "PortalAccessGranted",
    "PortalAccessGrantedPayload",
    "PortalAccessRevoked",
    "PortalNameSet",
    "PortalNameSetPayload",
    "PortalPasswordSet",
    "PreferencesCommand",
    "Rejection",
    "RejectionCode",
    "ResetPortalMfa",
    "RevokePortalAccess",
    "SetPortalName",
    "UnlockContact",
    "Upcaster",
    "command_json_schema",
    "command_topic",
    "event_json_schema",
    "now_utc",
    "parse_event",
    "reply_json_schema",
    "upcast",
    "wire_digest",
]
