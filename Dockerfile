# Production image for Data Engine: API server, Celery workers (io / cpu / gpu), beat and Flower.
#
#   docker build -t dataengine:latest .
#   docker run --rm dataengine:latest --help
#
# One image serves every role; docker-compose.yml picks the role with the command
# (`serve`, `worker`, `beat`, `db upgrade`, ...) since the entrypoint is the `dataengine` CLI.
# torch/torchvision come from PyPI as dependencies: their Linux wheels are CUDA builds
# that also run on CPU, so the same image works with or without a GPU.

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATAENGINE_DATA_DIR=/data \
    HF_HOME=/data/huggingface

# Unprivileged runtime user. /data is the state directory (SQLite file and media in embedded
# mode, the Hugging Face cache, celerybeat-schedule); its subfolders exist in the image, owned by
# that user, so named volumes mounted on them start out writable by it.
RUN groupadd --system --gid 10001 dataengine \
    && useradd --system --uid 10001 --gid dataengine --create-home --home-dir /home/dataengine \
        --shell /usr/sbin/nologin dataengine \
    && mkdir -p /data/media /data/huggingface \
    && chown -R dataengine:dataengine /data

WORKDIR /src

# Dependencies first, in their own layer, read from pyproject.toml: editing the code does not
# download torch and the CUDA libraries again.
COPY pyproject.toml README* ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; x = p['optional-dependencies']; print('\n'.join(p['dependencies'] + x['flower']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (a regular, non-editable install into site-packages).
COPY engine/ engine/
COPY annotators/ annotators/
COPY pipelines/ pipelines/
COPY web/ web/
COPY dataengine/ dataengine/
COPY migrations/ migrations/
RUN pip install ".[flower]" \
    && cd / && rm -rf /src \
    && dataengine --help > /dev/null \
    && python -c "import migrations, pipelines.celery_app, pipelines.tasks, web.app, dataengine.serve; print('schema head', migrations.head())"

USER dataengine
WORKDIR /data

EXPOSE 8000 5555

ENTRYPOINT ["dataengine"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
