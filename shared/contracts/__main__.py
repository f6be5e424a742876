"""`python -m shared.contracts [DIRECTORY]`: write the JSON Schema documents (default
docs/schemas)."""

from __future__ import annotations

import sys
from pathlib import Path

from shared.contracts.schemas import write_schemas


def main(argv: list[str]) -> None:
    directory = Path(argv[0]) if argv else Path("docs/schemas")
    for path in write_schemas(directory):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
