# syntax=docker/dockerfile:1
#
# One image for every pwbi-gateway process; the command chooses the role:
#   docker run IMAGE                 -> `pwbi-gateway serve`   (HTTP API on 8080)
#   docker run IMAGE worker          -> `pwbi-gateway worker`  (metrics on 9108)
#   docker run IMAGE migrate         -> `pwbi-gateway migrate` (one-shot, exits 0 when done)
# Configuration is the GATEWAY_* environment (README.md, "Settings").
#
# Build arguments (all optional):
#   PYTHON_VERSION  Python of both stages (default 3.11, the version the project targets)
#   DEBIAN_RELEASE  Debian release of the python:*-slim base image (default bookworm)
#   APP_UID/APP_GID numeric user and group the processes run as (default 10001; never 0)
#   VERSION         image version label, e.g. the git tag (default 0.0.0-dev)
#   REVISION        VCS revision label, e.g. `git rev-parse HEAD` (default unknown)
# For reproducible production builds pin the base image by digest, e.g.
#   --build-arg PYTHON_VERSION=3.11.14 plus a digest in the FROM lines via your registry mirror.
ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# --- build: install the project and its dependencies into a self-contained venv ----------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Every runtime dependency ships manylinux wheels (asyncpg, uvloop, cryptography, msgspec,
# aiohttp), so this stage needs no compiler. Only what the package needs is in the context
# (see .dockerignore).
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY app ./app
COPY workers ./workers
# pip byte-compiles what it installs: the runtime (read-only root filesystem on Kubernetes,
# PYTHONDONTWRITEBYTECODE) never needs to write .pyc files.
RUN pip install --no-cache-dir .

# --- runtime: the venv, a non-root user, nothing else ---------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001
ARG VERSION=0.0.0-dev
ARG REVISION=unknown

LABEL org.opencontainers.image.title="pwbi-gateway" \
      org.opencontainers.image.description="Canonical F&B events in, signed webhooks out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

RUN groupadd --system --gid "${APP_GID}" gateway \
    && useradd --system --uid "${APP_UID}" --gid gateway --home-dir /app \
       --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/var \
    && chown -R "${APP_UID}:${APP_GID}" /app

COPY --from=build /opt/venv /opt/venv
COPY ops/docker/healthcheck.py /usr/local/bin/pwbi-healthcheck

# GATEWAY_HOST=0.0.0.0: inside a container the API and the worker metrics must listen on
# the container's interface, not loopback. Production sets GATEWAY_DATABASE_URL (PostgreSQL)
# and GATEWAY_REDIS_URL; the SQLite default writes to /app/var (fine for a quick look only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_WORKER_METRICS_PORT=9108 \
    GATEWAY_LOG_FORMAT=json

WORKDIR /app
USER ${APP_UID}:${APP_GID}
EXPOSE 8080 9108

# Liveness for both roles: `serve` answers GET /healthz, a worker its metrics port
# (pwbi-healthcheck reads the role from PID 1's command line). Readiness (/readyz: SQL and
# Redis reachable) is for load balancers and Prometheus, not for restarting containers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/pwbi-healthcheck"]

# Exec form: the Python process is PID 1 and gets SIGTERM directly (uvicorn drains for up
# to 20 s; a worker stops taking jobs). Give containers a stop grace period above 60 s.
ENTRYPOINT ["pwbi-gateway"]
CMD ["serve"]
