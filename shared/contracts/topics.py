"""The topics: three event topics (one per owning service), two command topics, the admin
replies and the dead letters."""

from __future__ import annotations

PREFERENCES_EVENTS = "portal.preferences.events"
CONTACTS_EVENTS = "portal.contacts.events"
AUTH_EVENTS = "portal.auth.events"
PREFERENCES_COMMANDS = "portal.preferences.commands"
CONTACTS_COMMANDS = "portal.contacts.commands"
ADMIN_REPLIES = "portal.admin.replies"
DEADLETTER = "portal.deadletter"

EVENT_TOPICS = (PREFERENCES_EVENTS, CONTACTS_EVENTS, AUTH_EVENTS)
ALL_TOPICS = (*EVENT_TOPICS, PREFERENCES_COMMANDS, CONTACTS_COMMANDS, ADMIN_REPLIES, DEADLETTER)
