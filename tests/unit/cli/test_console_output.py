"""What the CLI prints of outside values: as they are, never as markup or terminal control."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from portal_mfa.cli import console
from portal_mfa.cli.console import shown


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ("[/]", "[/]"),
        ("[bold]x", "[bold]x"),
        ("\x1b[31mred", "\\x1b[31mred"),  # would recolour the admin's terminal
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # would retitle it
        ("line\nbreak", "line\\nbreak"),  # would fake a second output line
        ("abc\u202edcba", "abc\\u202edcba"),  # would display reversed text
        ("Zoë Ünal", "Zoë Ünal"),
    ],
)
def test_outside_values_print_as_they_are(value: str, printed: str) -> None:
    buffer = io.StringIO()
    # The CLI's own console settings, writing to a buffer that claims to be a terminal.
    terminal = Console(file=buffer, force_terminal=True, markup=False, highlight=False)
    terminal.print(shown(value))
    assert buffer.getvalue() == printed + "\n"


def test_the_consoles_read_no_markup() -> None:
    for each in (console.out, console.err):
        buffer = io.StringIO()
        each.file = buffer
        try:
            each.print("[/] [bold]x")
        finally:
            each.file = None  # back to its default stream
        assert buffer.getvalue() == "[/] [bold]x\n"
