#!/usr/bin/env bash
# A Docker engine and the local test image for tests/test_docker.py, without any registry.
# Idempotent: installs only what is missing, starts dockerd only when no engine answers,
# rebuilds the image only when its recipe changed.
#
#   .ci/docker-setup.sh         prepare (engine up, image `wfe-test-busybox:latest` present)
#   .ci/docker-setup.sh stop    stop the dockerd this script started (by its pid file)
set -euo pipefail

STATE_DIR=${WFE_DOCKERD_DIR:-/tmp/wfe-dockerd}
PID_FILE=$STATE_DIR/dockerd.pid
LOG_FILE=$STATE_DIR/dockerd.log
SOCKET=${WFE_DOCKERD_SOCKET:-/var/run/docker.sock}
IMAGE=wfe-test-busybox:latest
# Bump when the rootfs below changes: an image with another recipe is rebuilt.
RECIPE=1

say() { echo "docker-setup: $*" >&2; }

install_missing_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    # A fresh machine may have no package lists yet.
    apt_install "${missing[@]}" || { apt-get update -q >/dev/null && apt_install "${missing[@]}"; }
  fi
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

engine_answers() {
  docker info >/dev/null 2>&1
}

start_dockerd() {
  mkdir -p "$STATE_DIR"
  say "starting dockerd (log: $LOG_FILE)"
  # setsid: the engine outlives this script and is not hit by a Ctrl-C meant for the tests.
  setsid dockerd --host "unix://$SOCKET" --pidfile "$STATE_DIR/dockerd.own.pid" \
    >"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
}

wait_for_engine() {
  local deadline=$((SECONDS + 60))
  until engine_answers; do
    if [ -f "$PID_FILE" ] && ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      say "dockerd exited; last lines of $LOG_FILE:"
      tail -n 20 "$LOG_FILE" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "no engine answered within 60s; see $LOG_FILE"
      return 1
    fi
    sleep 0.5
  done
}

image_is_current() {
  [ "$(docker image inspect --format '{{ index .Config.Labels "wfe.test-image" }}' "$IMAGE" \
    2>/dev/null)" = "$RECIPE" ]
}

build_image() {
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,etc,tmp,www,workspace}
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  echo ok >"$rootfs/www/index.html"
  say "building $IMAGE from the static busybox"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["sh"]' \
    --change "LABEL wfe.test-image=$RECIPE" \
    - "$IMAGE" >/dev/null
  rm -rf "$rootfs"
}

stop_own_dockerd() {
  if [ -f "$PID_FILE" ]; then
    local pid
    pid=$(cat "$PID_FILE")
    if kill "$pid" 2>/dev/null; then
      say "stopping dockerd (pid $pid)"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    rm -f "$PID_FILE"
  fi
}

main() {
  if [ "${1:-}" = stop ]; then
    stop_own_dockerd
    return
  fi
  install_missing_packages
  if ! engine_answers; then
    start_dockerd
    export DOCKER_HOST=unix://$SOCKET
    wait_for_engine
  fi
  image_is_current || build_image
  say "engine ready, image $IMAGE present"
}

main "$@"
