#!/bin/sh
# The image's ENTRYPOINT. One image runs every program of this distribution, so the command
# names the program: `engine-service ...` (the image's CMD), `vdsm-agent ...`, `enginectl ...`,
# `grpc-health-probe ...`, as docker-compose.yml's `command:` lists do. A command that starts
# with an option runs engine-service with it (`docker run IMAGE --listen 0.0.0.0:50051`).
# `exec` makes the program PID 1 itself: it gets SIGTERM from `docker stop` and drains (--grace).
set -e
case "${1:-}" in
  "" | -*) set -- engine-service "$@" ;;
esac
exec "$@"
