# One image for every service of this distribution; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY vdsm_agent vdsm_agent
COPY engine_service engine_service
COPY service_common service_common
COPY harness harness
RUN pip install --no-cache-dir .
