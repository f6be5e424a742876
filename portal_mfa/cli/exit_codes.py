"""What the `portal-mfa` command's exit status means, for scripts that run it.

Each number keeps its meaning across releases: a script may retry on 3 and 4, fix its
input on 2, fix the environment on 5, and must not retry a 1.
"""

DONE = 0
# The service refused the command or read (unknown contact, wrong org, not allowed).
REJECTED = 1
# A flag or argument is missing or malformed (also what the argument parser exits with).
BAD_INPUT = 2
# Kafka or a service did not answer at the address the settings give.
UNREACHABLE = 3
# The command was sent but no answer came in time (or it applied, but logins did not
# reflect it in time): it may still apply; re-run it with the printed --idempotency-key
# and it applies at most once.
TIMED_OUT = 4
# A PORTAL_MFA_* setting is malformed or missing (nothing was sent).
BAD_SETTING = 5

EPILOG = (
    "Exit status: 0 done, 1 rejected by the service, 2 bad input, 3 cannot reach Kafka or"
    " a service, 4 no answer in time (the command may still apply: re-run it with the"
    " printed --idempotency-key), 5 bad or missing PORTAL_MFA_* setting."
)
