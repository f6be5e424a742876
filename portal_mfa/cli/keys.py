"""`portal-mfa keys rotate`: every TOTP secret in auth's database re-sealed under the current key.

The keyring comes from `PORTAL_MFA_SECRET_KEYS` and `PORTAL_MFA_SECRET_KEY_ID`, as the auth
service reads them: put the new key in the keyring and make it current (services first),
run this, and once it reports nothing left under an older key, that key may go.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from portal_mfa.cli.console import JsonFlag, err, shown
from portal_mfa.cli.exit_codes import BAD_SETTING, REJECTED
from portal_mfa.cli.projection import auth_settings

keys = typer.Typer(help="The keys that seal TOTP secrets at rest.")


@keys.command(
    "rotate", help="Re-seal every TOTP secret under the current key; safe to interrupt and rerun."
)
def rotate(
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Secrets per transaction (rows locked at once).")
    ] = 500,
    as_json: JsonFlag = False,
) -> None:
    # Imported here: the rest of the CLI should not pay for the service stack's imports.
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from portal_mfa.infra.postgres import ensure_database
    from portal_mfa.serve import database_name
    from services.auth.flows.key_rotation import Rotation, count_sealed, reseal_all
    from services.auth.main import secret_box_from
    from shared.db import open_pool
    from shared.settings import SettingsError

    settings = auth_settings()
    try:
        box = secret_box_from(settings)
    except SettingsError as exc:
        err.print(f"error: {shown(exc)}")
        raise typer.Exit(BAD_SETTING) from None

    async def run() -> Rotation:
        url = await ensure_database(settings.database_url, database_name("auth"))
        pool = await open_pool(url)
        try:
            total = await count_sealed(pool)
            # Progress on stderr, so `--json` leaves stdout to the summary alone.
            with Progress(
                TextColumn(f"re-sealing TOTP secrets under key {box.current_key_id}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                console=err.console,
            ) as bar:
                task = bar.add_task("rotate", total=total, failed=0)

                def show(so_far: Rotation) -> None:
                    bar.update(task, completed=so_far.seen, failed=len(so_far.failed))

                return await reseal_all(pool, box, batch_size=batch_size, on_batch=show)
        finally:
            await pool.close()

    rotation = asyncio.run(run())
    if as_json:
        print(json.dumps(rotation.summary()))
    else:
        summary = rotation.summary()
        print(", ".join(f"{n:,} {what.replace('_', ' ')}" for what, n in summary.items()))
    for enrollment_id in rotation.failed:
        err.print(f"cannot open the secret of enrollment {shown(enrollment_id)}: unknown key?")
    if rotation.failed:
        # Refused: a secret under a key missing from the keyring means that key cannot go yet.
        raise typer.Exit(REJECTED)
