"""`python -m frontends.admin_web`: the console on PORTAL_MFA_CONSOLE_WEB_PORT (8081)."""

from frontends.admin_web.app import create_app
from shared.http.serving import configure, run
from shared.settings import load_settings

settings = load_settings()
configure(settings, "console-web")
run(create_app(settings), settings, settings.console_web_port)
