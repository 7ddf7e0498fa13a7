# OpsGraph itself: the `opsgraph` (`opsgraph serve`) and `chat` services of docker-compose.yml.
FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY sample-app/pyproject.toml sample-app/pyproject.toml
COPY sample-app/shop sample-app/shop
COPY opsgraph opsgraph
COPY deploy deploy
# Bytecode is compiled here, as root, because the processes run as `opsgraph`, who cannot write
# into /app: without it every command in the container recompiles each module it imports
# (seconds per start). --compile-bytecode covers the dependencies in .venv; the project and the
# sample app are installed editable (their sources stay in /app), so compileall covers them.
RUN uv sync --frozen --no-dev --compile-bytecode \
    && .venv/bin/python -m compileall -q opsgraph sample-app/shop \
    && useradd --create-home opsgraph && mkdir /data && chown opsgraph /data
ENV PATH="/app/.venv/bin:$PATH"
USER opsgraph
EXPOSE 8080
# The watcher, the API, Alertmanager's webhook and /metrics on port 8080; the other settings come
# from the environment (OPSGRAPH_*, see .env.example). No HEALTHCHECK here: the chat runs from this
# image too, so the check (GET /healthz) lives on the `opsgraph` service of docker-compose.yml.
CMD ["opsgraph", "serve", "--host", "0.0.0.0", "--port", "8080", "--inventory", "/app/deploy/opsgraph.compose.yaml", "--state-dir", "/data"]
