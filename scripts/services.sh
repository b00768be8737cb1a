#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and (where installed) RabbitMQ answer on 127.0.0.1; start the local ones
# if they are down. Where they cannot be started here, say how to get them (docker compose up -d ...).
set -uo pipefail
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
rabbitmq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! pg_up && command -v pg_ctlcluster >/dev/null; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  echo "starting PostgreSQL ${version}"
  pg_ctlcluster --skip-systemctl-redirect "${version:-15}" main start || true
  for _ in $(seq 30); do pg_up && break; sleep 1; done
fi
if ! redis_up && command -v redis-server >/dev/null; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  for _ in $(seq 30); do redis_up && break; sleep 1; done
fi
if ! rabbitmq_up && command -v rabbitmq-server >/dev/null; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true  # as root the packaged wrapper runs it as the rabbitmq user
  for _ in $(seq 60); do rabbitmq_up && break; sleep 1; done
fi
status=0
pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; status=1; }
redis_up || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; status=1; }
if command -v rabbitmq-server >/dev/null; then
  rabbitmq_up || { echo "RabbitMQ is not reachable on 127.0.0.1:5672" >&2; status=1; }
else
  echo "RabbitMQ is not installed: tests on the RabbitMQ broker are skipped (apt-get install rabbitmq-server)" >&2
fi
if [ $status -ne 0 ]; then
  echo "Start them (e.g. 'docker compose up -d postgres redis' with ports published) and try again." >&2
fi
exit $status
