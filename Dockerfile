# The slim image: the gateway, both bots, `detectbot migrate` and the CLI. No inference stack (onnx, onnxruntime,
# opencv, torch): the gateway and the bots never import the worker's detectors. Every dependency comes from
# requirements/gateway.txt, pinned and checked against its hash.
#   docker build -t detectbot:0.1.0 .
FROM python:3.11-slim AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/build.txt requirements/build.txt
RUN pip install --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md LICENSE ./
COPY db db
COPY queue_gateway queue_gateway
COPY worker worker
COPY bots bots
COPY detectbot detectbot
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/gateway.txt /tmp/requirements.txt
RUN pip install --require-hashes --no-deps -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && useradd --create-home --uid 10001 --user-group detectbot \
    && install -d -o detectbot -g detectbot -m 0700 /home/detectbot/data /home/detectbot/blobs
# (a named volume mounted on one of these directories starts out owned by detectbot, not root)
USER 10001
WORKDIR /home/detectbot
ENV DETECTBOT_DATA_DIR=/home/detectbot/data MPLCONFIGDIR=/tmp/matplotlib
CMD ["detectbot", "gateway", "--host", "0.0.0.0"]
