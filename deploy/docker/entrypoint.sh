#!/bin/sh
# The container's entry point. As in the INDI Server Guide, arguments are indiserver's:
#   docker run -p 7624:7624 indi-python -vv indi_simulator_ccd
# unless they name one of the package's programs (or a shell) to run instead:
#   docker run -p 8624:8624 -p 7624:7624 -e INDI_HEALTHCHECK=web indi-python indi-web
set -e
case "${1:-}" in
  indiserver|indi-web|indi_getprop|indi_setprop|indi_eval|python|python3|sh|bash) exec "$@" ;;
  *) exec indiserver "$@" ;;
esac
