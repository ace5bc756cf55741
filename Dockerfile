# The prediction API, no JVM: `taxi-duration serve`, the very command tests/test_serving.py starts.
#   docker build -t taxi-duration-api .
#   docker run -p 8000:8000 -e MLFLOW_TRACKING_URI=http://mlflow:5000 taxi-duration-api
# Without the `spark` extra: models trained on Spark are served from their numpy export.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# LightGBM's OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
RUN useradd --create-home --uid 10001 app
USER app
WORKDIR /home/app
ENV TAXI_DURATION_DATA_DIR=/home/app/data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status != 200)"]
CMD ["taxi-duration", "serve", "--host", "0.0.0.0", "--port", "8000"]
