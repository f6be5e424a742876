from portal_mfa.cli.main import app

app(prog_name="portal-mfa")
