# One image for every program of this distribution (engine-service, vdsm-agent, enginectl,
# grpc-health-probe); docker-compose.yml picks the command. tests/integration/test_dockerfile.py
# reads this file (Docker cannot run where this is developed) and checks it against the code.

# The base, pinned by exact version and by the digest of its multi-architecture index (what
# Docker pulls; it ignores the tag when a digest is given, and refuses content that does not
# match it). The digest was not read off the registry here (no Docker registry is reachable
# where this is developed): it is the one several public projects pin for this tag. To move to
# a newer patch release: `docker buildx imagetools inspect python:3.11.N-slim-bookworm` prints
# the tag's current digest; change both here.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# -- builder: the dependencies from the hashed lock, then the project's own wheel ----------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
# requirements.lock: every runtime dependency pinned with its hashes (`make lock`, uv). pip
# refuses anything unpinned or whose hash differs, installs nothing the lock does not list
# (--no-deps), and takes only wheels (nothing is compiled, so no compiler in the image).
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY service_common service_common
COPY engine_service engine_service
COPY vdsm_agent vdsm_agent
COPY harness harness
# The Python client (the engine's stubs), which the server depends on: built from this
# repository too, not taken from an index.
COPY clients/python clients/python
# The project itself and its client, as wheels (what a release ships), without their
# dependencies: those came from the lock above.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels clients/python . \
 && /opt/venv/bin/pip install --no-deps /wheels/*.whl

# -- runtime: the base, a non-root user, and the virtual environment -------------------------------
FROM ${PYTHON_IMAGE}
# A fixed uid/gid, not a name: Kubernetes' runAsNonRoot can check a number, and every container
# of the compose stack (the pki service that writes the certificates, the services that read
# them, the two agents sharing one storage volume) is the same user. The directories that
# become volumes exist in the image, owned by that user, so that Docker gives a new named volume
# their owner (an empty volume mounted on an image directory copies its ownership): the
# engine's state dir, the agent's state dir, storage root and defaults, and /pki.
RUN groupadd --system --gid 10001 engine \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/engine --create-home \
      --shell /usr/sbin/nologin engine \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/engine-service /var/lib/vdsm-agent \
      /var/lib/vdsm-agent/state /var/lib/vdsm-agent/storage /srv/storage /pki
COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/engine
# The engine's API (50051) and the agent's (54321), their defaults; the metrics ports the compose
# file gives them (--metrics-listen, off by default): engine 9100, agent 9101.
EXPOSE 50051 54321 9100 9101
# The default command's health: engine-service on its default address, liveness (""), which a
# standby passes too, so that whatever restarts unhealthy containers (Swarm) does not restart a
# healthy standby. Compose replaces it per service (the engine's readiness, the agents' port,
# the TLS files).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["grpc-health-probe", "127.0.0.1:50051"]
# A five-line script that runs the program the command names (scripts/docker-entrypoint.sh);
# a command that starts with an option goes to engine-service.
ENTRYPOINT ["docker-entrypoint"]
CMD ["engine-service"]
