"""Path and query parameters shared by the routes: ids are short and of a safe alphabet."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from shared.read_your_writes import POSITION_PATTERN, READ_WAIT_S

_ID = {"min_length": 1, "max_length": 100, "pattern": r"^[A-Za-z0-9._:@-]+$"}

OrgId = Annotated[str, Path(**_ID)]
ContactId = Annotated[str, Path(**_ID)]

# A read's `?min_position=` (shared.read_your_writes).
MinPosition = Annotated[
    str | None,
    Query(
        pattern=POSITION_PATTERN,
        description="A write position from a command's reply (`position`):"
        " answer only once this read reflects it; 503 `not-caught-up` if it does not"
        f" within {READ_WAIT_S:g} s.",
    ),
]
