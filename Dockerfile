# OpsGraph itself (the `opsgraph` service of docker-compose.yml).
FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY sample-app/pyproject.toml sample-app/pyproject.toml
COPY sample-app/shop sample-app/shop
COPY opsgraph opsgraph
COPY deploy deploy
RUN uv sync --frozen --no-dev && useradd --create-home opsgraph && mkdir /data && chown opsgraph /data
ENV PATH="/app/.venv/bin:$PATH"
USER opsgraph
CMD ["opsgraph", "watch", "--inventory", "/app/deploy/opsgraph.compose.yaml", "--state-dir", "/data"]
