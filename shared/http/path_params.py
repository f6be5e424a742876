"""Path parameters shared by the routes: ids are short and of a safe alphabet."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

_ID = {"min_length": 1, "max_length": 100, "pattern": r"^[A-Za-z0-9._:@-]+$"}

OrgId = Annotated[str, Path(**_ID)]
ContactId = Annotated[str, Path(**_ID)]
