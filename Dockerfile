# Production images for Data Engine: API server, Celery workers (io / cpu / gpu), beat and Flower.
#
#   docker build --build-arg EXTRAS=flower -t dataengine-api:latest .   API, migrations, beat, Flower, io worker
#   docker build --build-arg EXTRAS=nlp -t dataengine-cpu:latest .      cpu worker (spaCy parse, no torch)
#   docker build -t dataengine:latest .                                 gpu worker: the model libraries
#   docker run --rm dataengine-api:latest --help
#
# EXTRAS picks the package's extras (pyproject.toml): the base package alone runs the server, the
# io/cpu workers' stages other than parse, exports, the Label Studio bridge and the report; `nlp`
# adds spaCy (the parse stage); `models` adds torch, torchvision, transformers, peft and spaCy. The
# entrypoint is the `dataengine` CLI: docker-compose.yml picks the role with the command (`serve`,
# `worker`, `beat`, `db upgrade`, ...) and the image with the role. torch/torchvision come from PyPI:
# their Linux wheels are CUDA builds that also run on CPU, so the models image works with or
# without a GPU. A command that needs an extra the image lacks fails with one line naming it.

FROM python:3.11-slim

# the package's extras installed in this image (comma-separated; empty: the base package alone)
ARG EXTRAS="models"

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

# Dependencies first, in their own layer, read from pyproject.toml (scripts/requirements.py: the base
# dependencies and those of EXTRAS): editing the code does not download torch and the CUDA libraries again.
COPY pyproject.toml README* ./
COPY scripts/requirements.py scripts/
RUN python scripts/requirements.py "$EXTRAS" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (a regular, non-editable install into site-packages).
COPY engine/ engine/
COPY annotators/ annotators/
COPY pipelines/ pipelines/
COPY web/ web/
COPY dataengine/ dataengine/
COPY migrations/ migrations/
# --no-deps: the image holds exactly the layer above; `pip check` proves nothing is missing.
RUN pip install --no-deps . \
    && pip check \
    && cd / && rm -rf /src \
    && dataengine --help > /dev/null \
    && python -c "import migrations, pipelines.celery_app, pipelines.tasks, web.app, dataengine.serve; print('schema head', migrations.head())"

USER dataengine
WORKDIR /data

EXPOSE 8000 5555

ENTRYPOINT ["dataengine"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
