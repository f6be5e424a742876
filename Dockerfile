# One image for every service; a build target per service sets its command:
#   docker build -t portal-mfa:0.1.0 .                    (default target: auth)
#   docker build --target contacts -t portal-mfa-contacts:0.1.0 .
#   docker build --target portal-web -t portal-mfa-portal-web:0.1.0 .   (console-web too)
# or run any service from the default one: `portal-mfa serve preferences`,
# `python -m frontends.portal_web`.
# It holds the services only: the `dev` extra (embedded broker and PostgreSQL binaries)
# and the test tools are not installed.

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/portal-mfa
COPY pyproject.toml README.md ./
COPY shared shared
COPY services services
COPY portal_mfa portal_mfa
COPY frontends frontends
RUN /opt/portal-mfa/bin/pip install --no-cache-dir .

FROM python:3.11.11-slim-bookworm AS runtime
# A fixed numeric user, so Kubernetes' runAsNonRoot can check it without a name lookup.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin portal-mfa
COPY --from=build /opt/portal-mfa /opt/portal-mfa
# Bytecode was compiled at install: a read-only root file system needs no writes.
ENV PATH=/opt/portal-mfa/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTAL_MFA_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
# auth (portal API), preferences, contacts, audit, and the two web frontends (portal,
# admin console): PORTAL_MFA_<SERVICE>_PORT moves them (PORTAL_MFA_PORTAL_WEB_PORT, ...).
EXPOSE 8000 8001 8002 8003 8080 8081
# Liveness of whichever service runs here; route traffic by /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "portal_mfa.probe", "/healthz"]

FROM runtime AS preferences
CMD ["portal-mfa", "serve", "preferences"]

FROM runtime AS contacts
CMD ["portal-mfa", "serve", "contacts"]

FROM runtime AS audit
CMD ["portal-mfa", "serve", "audit"]

# The web frontends: pages only, each a client of the services over HTTP (the console also
# sends commands over Kafka as portal-mfa-console).
FROM runtime AS portal-web
CMD ["python", "-m", "frontends.portal_web"]

FROM runtime AS console-web
CMD ["python", "-m", "frontends.admin_web"]

FROM runtime AS auth
CMD ["portal-mfa", "serve", "auth"]
