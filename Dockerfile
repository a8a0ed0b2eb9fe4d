# The slim image: gateway, bots, migrations and the CLI (no torch, no model).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY db db
COPY queue_gateway queue_gateway
COPY worker worker
COPY bots bots
COPY detectbot detectbot
RUN pip install . && useradd --create-home detectbot
USER detectbot
ENV DETECTBOT_DATA_DIR=/home/detectbot/data
CMD ["detectbot", "gateway", "--host", "0.0.0.0"]
