"""What turning the org's MFA policy on or off would mean, before it is done.

The product page's note: a contact who has configured MFA keeps needing a code after
MFA is disabled (only a reset frees them); once MFA is enabled, every contact with portal
access who has not configured it is asked to at their next sign-in. Counted from the
contacts service's list and auth's login requirement for each contact (the same rule
auth applies at login); a contact whose history auth cannot decide yet is counted apart.
Pure: the callers (the CLI's `--dry-run`, the web console) do the reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class MfaImpact:
    org_id: str
    mfa_enabled_now: bool
    would_be: bool
    contacts_with_portal_access: int
    enrolled_still_need_totp: int
    will_be_asked_to_configure: int
    undecided: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentences(self) -> list[str]:
        state = "enabled" if self.would_be else "disabled"
        lines = [
            f"MFA would be {state} for both the customer and the vendor portal of {self.org_id}"
            + (" (no change: it already is)." if self.would_be == self.mfa_enabled_now else ".")
        ]
        if self.would_be:
            lines.append(
                f"{self.will_be_asked_to_configure} of {self.contacts_with_portal_access}"
                " contacts with portal access will be asked to configure MFA at their next"
                " sign-in."
            )
            lines.append(f"{self.enrolled_still_need_totp} have configured it already.")
        else:
            lines.append(
                f"{self.enrolled_still_need_totp} of {self.contacts_with_portal_access}"
                " contacts with portal access have configured MFA: they will still need their"
                " code to sign in. Reset their MFA to free them."
            )
        if self.undecided:
            lines.append(
                f"{self.undecided} could not be counted yet (auth has not seen their whole"
                " history); ask again shortly."
            )
        return lines


def preview(
    org_id: str,
    *,
    mfa_enabled_now: bool,
    would_be: bool,
    contacts: Sequence[Mapping[str, Any]],
    requirements: Mapping[str, Mapping[str, Any] | None],
) -> MfaImpact:
    """`requirements`: auth's login requirement per contact id (None: not answered)."""
    with_access = [c for c in contacts if c.get("portal_access")]
    enrolled = asked = undecided = 0
    for contact in with_access:
        found = requirements.get(str(contact["contact_id"]))
        if found is None or not found.get("complete", True):
            undecided += 1
        elif found.get("enrolled"):
            enrolled += 1
        elif would_be:
            asked += 1
    return MfaImpact(
        org_id=org_id,
        mfa_enabled_now=mfa_enabled_now,
        would_be=would_be,
        contacts_with_portal_access=len(with_access),
        enrolled_still_need_totp=enrolled,
        will_be_asked_to_configure=asked,
        undecided=undecided,
    )
