# Sourced by .ci/run: a container engine for the Testcontainers, image and compose tests, and the images
# they use, built from Debian's packages (no registry needed; an engine that has them builds nothing).
# Where no engine answers, Debian's docker.io: dockerd with no bridge and no iptables rules, so every
# container is on the host network and its servers listen on 127.0.0.1 only; stopped (by PID) at the end.

CI_DOCKERD_PID=""
CI_ENGINE_DIR="/run/pixyproxy-ci-engine"

engine_answers() {
  timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

apt_install() {
  [ "$(id -u)" = 0 ] || return 1
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null 2>&1
}

start_container_engine() {
  local started
  started=$(date +%s)
  if ! engine_answers; then
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io || { echo "docker.io could not be installed"; return 0; }
    mkdir -p "$CI_ENGINE_DIR"
    export DOCKER_HOST="unix://$CI_ENGINE_DIR/docker.sock"
    dockerd --bridge=none --iptables=false --ip6tables=false -H "$DOCKER_HOST" \
      --pidfile "$CI_ENGINE_DIR/dockerd.pid" >"$CI_ENGINE_DIR/dockerd.log" 2>&1 &
    CI_DOCKERD_PID=$!
    for _ in $(seq 120); do engine_answers && break; sleep 0.5; done
    if ! engine_answers; then
      echo "dockerd did not answer; the container tests will fail. Its log:"; tail -20 "$CI_ENGINE_DIR/dockerd.log"
      stop_container_engine
      return 0
    fi
  fi
  { docker compose version || command -v docker-compose; } >/dev/null 2>&1 || apt_install docker-compose \
    || echo "docker-compose could not be installed; the compose test will fail"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap || echo "debootstrap could not be installed"
  local images
  if images=$(deploy/images/build.sh mariadb s3 redis nginx python); then
    # The tests' images, unless the environment names others (mysql:8.4, minio/minio where a registry answers).
    tag() { sed -n "s/^$1=//p" <<<"$images"; }
    export PIXYPROXY_TEST_MYSQL_IMAGE="${PIXYPROXY_TEST_MYSQL_IMAGE:-$(tag mariadb)}"
    export PIXYPROXY_TEST_S3_IMAGE="${PIXYPROXY_TEST_S3_IMAGE:-$(tag s3)}"
    export PIXYPROXY_TEST_REDIS_IMAGE="${PIXYPROXY_TEST_REDIS_IMAGE:-$(tag redis)}"
    export PIXYPROXY_TEST_NGINX_IMAGE="${PIXYPROXY_TEST_NGINX_IMAGE:-$(tag nginx)}"
    export PIXYPROXY_TEST_PYTHON_IMAGE="${PIXYPROXY_TEST_PYTHON_IMAGE:-$(tag python)}"
  else
    echo "deploy/images/build.sh failed; the container tests will fail"
  fi
  echo "container engine and images ready in $(($(date +%s) - started)) s"
}

stop_container_engine() {
  [ -n "$CI_DOCKERD_PID" ] || return 0
  kill "$CI_DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$CI_DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  CI_DOCKERD_PID=""
}
