"""Small helpers to drive the running portal as its users do: the admin CLI, the portal's
HTTP API, and an authenticator app that knows each TOTP time step is accepted only once.

Each portal login test (test_login_decision_table.py and its neighbours, one file per
section of the product page) is one user journey through the running `portal-mfa dev`
stack, in an org of its own: the admin acts through the CLI, the contact through HTTP
with an authenticator app (pyotp). An admin change returns once auth's login decision
reflects it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pyotp

from tests.dev_stack import RunningStack

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://portal-mfa.dev/problems/"
STEP_S = 30
PASSWORD = "correct-horse-battery"
START = "/v1/mfa/enrollment/start"
VERIFY = "/v1/mfa/enrollment/verify"
ENABLE = "/v1/mfa/enrollment/enable"
CHALLENGE = "/v1/mfa/challenge"
# A 1 MB body is refused as too large, or (under a larger limit) as an invalid field.
TOO_BIG = {413, 422}

T = TypeVar("T")


def new_org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def new_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def assert_problem(
    response: httpx.Response, status: int, kind: str | None = None
) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with this status (and this `type`, if given)."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_BASE)
    assert body["title"]
    if kind is not None:
        assert body["type"] == PROBLEM_BASE + kind, body
    return body


class Authenticator:
    """An authenticator app for one secret, remembering which time steps it has used.

    The server accepts the current step +-1, and only a step later than the last one it
    accepted for the enrollment. A code is taken from the current or next step (both stay
    valid if a step boundary passes while the request travels), or from the previous one
    while the boundary is far away, always later than every step used so far.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.totp = pyotp.TOTP(secret)
        self.used: set[int] = set()

    def code(self, *, spend: bool = True) -> str:
        """A right code from a step not used yet; `spend=False` leaves the step unused
        (for attempts that are refused before the code is checked)."""
        while True:
            now = time.time()
            step = int(now // STEP_S)
            candidates = [step, step + 1]
            if now % STEP_S < STEP_S - 5:
                candidates.append(step - 1)
            last = max(self.used, default=-1)
            for candidate in candidates:
                if candidate > last:
                    if spend:
                        self.used.add(candidate)
                    return self.totp.generate_otp(candidate)
            time.sleep(STEP_S - now % STEP_S + 0.05)

    def wrong_code(self) -> str:
        """A well-formed code that matches no step the server could accept now."""
        step = int(time.time() // STEP_S)
        near = {self.totp.generate_otp(s) for s in range(step - 3, step + 4)}
        candidate = int(self.totp.generate_otp(step))
        while f"{candidate:06d}" in near:
            candidate = (candidate + 1) % 1_000_000
        return f"{candidate:06d}"


@dataclass
class Enrollment:
    token: str
    app: Authenticator
    backup_codes: list[str]
    session: dict[str, Any]


@dataclass
class User:
    contact_id: str
    kind: str
    email: str
    password: str
    invitation_token: str


class Portal:
    """One org: its admin (through the CLI) and its portal (through the auth HTTP API)."""

    def __init__(self, stack: RunningStack, org: str | None = None) -> None:
        self.stack = stack
        self.org = org or new_org()
        self.http = httpx.Client(base_url=stack.url("auth"), timeout=30)

    # --- admin console ----------------------------------------------------------------------

    def admin(self, *args: str) -> Any:
        return self.stack.cli_json("admin", "--org", self.org, *args)

    def admin_rejected(self, *args: str) -> str:
        """Run a command that must be refused; its one-line reason on stderr."""
        done = self.stack.cli("admin", "--org", self.org, *args, "--json", check=False)
        assert done.returncode != 0, (args, done.stdout)
        assert done.stdout.strip() == "", done.stdout
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        return lines[0]

    def set_policy(self, enabled: bool) -> None:
        answer = self.admin("mfa", "enable" if enabled else "disable")
        assert answer["org_id"] == self.org
        assert answer["mfa_enabled"] is enabled
        # The CLI returned once auth reflected the change: a contact auth has never seen is
        # answered from the org policy alone, the new one.
        self.requirement_now("no-such-contact", policy_enabled=enabled)

    def add_user(self, kind: str = "customer", email: str | None = None) -> User:
        """A contact with portal access who has accepted the invitation and set a password."""
        email = email or new_email(kind)
        added = self.admin(
            "contacts", "add", "--kind", kind, "--name", f"A {kind}", "--email", email
        )
        assert added["kind"] == kind
        assert added["email"] == email
        contact_id = added["contact_id"]
        invited = self.admin("contacts", "grant-portal-access", contact_id)
        assert invited["contact_id"] == contact_id
        token = invited["invitation_token"]
        # The CLI returned once auth had applied the grant: the invitation is known there.
        accepted = self.accept_invitation(token, PASSWORD)
        assert accepted.status_code == 204, accepted.text
        return User(contact_id, kind, email, PASSWORD, token)

    def prepare(
        self, *kinds: str, policy: bool | None = None, portal_name: str | None = None
    ) -> list[User]:
        """Set the org up (name, then policy) while its users are added, all at once."""

        def configure() -> None:
            if portal_name is not None:
                assert self.admin("portal", "name", portal_name)["portal_name"] == portal_name
            if policy is not None:
                # Same topic and key as the name: once auth sees the policy, it has the name.
                self.set_policy(policy)

        with ThreadPoolExecutor(max_workers=len(kinds) + 1) as pool:
            org = pool.submit(configure)
            users = [pool.submit(self.add_user, kind) for kind in kinds]
            org.result()
            return [user.result() for user in users]

    def close(self) -> None:
        self.http.close()

    # --- portal HTTP API --------------------------------------------------------------------

    def requirement(self, contact_id: str) -> dict[str, Any]:
        answer = self.http.get(
            f"/v1/orgs/{self.org}/contacts/{contact_id}/login-requirement",
            headers=self.stack.bearer(self.org, "audit"),
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def requirement_now(self, contact_id: str, **expected: Any) -> dict[str, Any]:
        """The login requirement, which must already have every given value: an admin
        change returns only once auth's decision reflects it (read-your-writes)."""
        answer = self.requirement(contact_id)
        assert all(answer[k] == v for k, v in expected.items()), (expected, answer)
        return answer

    def wait_requirement(self, contact_id: str, **expected: Any) -> dict[str, Any]:
        """Poll the login requirement until every given field has the expected value."""

        def matches() -> dict[str, Any] | None:
            answer = self.requirement(contact_id)
            return answer if all(answer[k] == v for k, v in expected.items()) else None

        return wait_until(matches, what=f"login requirement {expected} for {contact_id}")

    def accept_invitation(self, token: str, password: str) -> httpx.Response:
        return self.http.post(
            f"/v1/portals/{self.org}/invitations/accept",
            json={"token": token, "password": password},
        )

    def login(self, user: User, password: str | None = None) -> httpx.Response:
        return self.http.post(
            f"/v1/portals/{self.org}/login",
            json={"email": user.email, "password": password or user.password},
        )

    def login_as(self, user: User, status: str) -> dict[str, Any]:
        """Log in with the right password; the answer must have this `status`."""
        answer = self.login(user)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["status"] == status, body
        return body

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body)

    def session(self, session_token: str) -> httpx.Response:
        return self.http.get("/v1/session", headers={"Authorization": f"Bearer {session_token}"})

    def logout(self, session_token: str) -> httpx.Response:
        return self.http.post("/v1/logout", headers={"Authorization": f"Bearer {session_token}"})

    def challenge(self, challenge_token: str, **factor: str) -> httpx.Response:
        return self.post("/v1/mfa/challenge", {"challenge_token": challenge_token, **factor})

    def enroll(self, user: User) -> Enrollment:
        """Log in and configure MFA (Configure, Next, Verify, Enable MFA) in one go."""
        token = self.login_as(user, "mfa_enrollment_required")["enrollment_token"]
        started = self.post("/v1/mfa/enrollment/start", {"enrollment_token": token})
        assert started.status_code == 200, started.text
        app = Authenticator(started.json()["secret"])
        verified = self.post(
            "/v1/mfa/enrollment/verify", {"enrollment_token": token, "otp": app.code()}
        )
        assert verified.status_code == 200, verified.text
        enabled = self.post("/v1/mfa/enrollment/enable", {"enrollment_token": token})
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["status"] == "authenticated"
        return Enrollment(token, app, verified.json()["backup_codes"], enabled.json())


def whoami(portal: Portal, session_token: str) -> dict[str, Any]:
    answer = portal.session(session_token)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def authenticated(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["status"] == "authenticated", body
    assert body["session_token"]
    assert body["expires_at"]
    return body


def assert_no_store(answer: httpx.Response) -> None:
    assert "no-store" in answer.headers.get("cache-control", ""), answer.headers
