"""`python -m frontends.portal_web`: the portal on PORTAL_MFA_PORTAL_WEB_PORT (8080)."""

from frontends.portal_web.app import create_app
from shared.http.serving import configure, run
from shared.settings import load_settings

settings = load_settings()
configure(settings, "portal-web")
run(create_app(settings), settings, settings.portal_web_port)
