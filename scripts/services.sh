#!/usr/bin/env bash
# Start the message servers the source tests use, each only when its loopback port does not
# answer: Redis (6379), RabbitMQ (5672), NATS with JetStream (4222). Exits non-zero when one
# cannot be started.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {  # port, name, seconds
    for _ in $(seq 1 "$3"); do
        answers "$1" && return 0
        sleep 1
    done
    echo "$2 did not start on 127.0.0.1:$1" >&2
    return 1
}

if ! answers 6379; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for_port 6379 Redis 30
fi

if ! answers 5672; then
    echo "starting RabbitMQ"
    rabbitmq-server -detached
    timeout 120 bash -c 'until rabbitmq-diagnostics -q ping >/dev/null 2>&1; do sleep 2; done' \
        || { echo "RabbitMQ did not answer rabbitmq-diagnostics ping" >&2; exit 1; }
    wait_for_port 5672 RabbitMQ 60
fi

if ! answers 4222; then
    echo "starting NATS"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for_port 4222 NATS 30
fi
