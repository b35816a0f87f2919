#!/usr/bin/env bash
# Install (Debian packages) and start the message servers the source tests use, each only when
# its loopback port does not answer: Redis (6379), RabbitMQ (5672), NATS with JetStream (4222).
# Idempotent and quiet when all three answer; exits non-zero, saying which, when one cannot be
# installed or started. Needs root (or sudo) only when a package is missing.
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

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install the Debian packages whose programs are missing, in one apt-get run.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)"
    # Packages must not start their own copies (with system-wide settings) on install: this
    # script starts each one, bound to loopback, below.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created_policy=1
    fi
    status=0
    as_root apt-get update -qq >/dev/null || status=$?
    if [ "$status" = 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null || status=$?
    fi
    [ "$created_policy" = 1 ] && as_root rm -f "$policy"
    if [ "$status" != 0 ]; then
        echo "could not install ${missing[*]} with apt-get (exit $status)" >&2
        exit 1
    fi
fi

if ! answers 6379; then
    echo "starting Redis on 127.0.0.1:6379"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/knray-tests.log
    wait_for_port 6379 Redis 30
fi

if ! answers 5672; then
    echo "starting RabbitMQ on 127.0.0.1:5672"
    # Loopback only (the AMQP listener; the Erlang distribution port stays on its default).
    as_root env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached
    timeout 120 bash -c 'until rabbitmq-diagnostics -q ping >/dev/null 2>&1; do sleep 2; done' \
        || { echo "RabbitMQ did not answer rabbitmq-diagnostics ping" >&2; exit 1; }
    wait_for_port 5672 RabbitMQ 60
fi

if ! answers 4222; then
    echo "starting NATS (JetStream) on 127.0.0.1:4222"
    nats=$(command -v nats-server || echo /usr/sbin/nats-server)
    as_root mkdir -p /var/lib/nats-server
    as_root start-stop-daemon --start --oknodo --background --exec "$nats" -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for_port 4222 NATS 30
fi
