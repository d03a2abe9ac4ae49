#!/usr/bin/env bash
# Debian packages the tests use: a real browser (the WebVTT <track> test) and a real media server
# (nginx with the RTMP module, for the streaming tests). Installed only when missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
ls /usr/lib/nginx/modules/ngx_rtmp_module.so >/dev/null 2>&1 || need+=(libnginx-mod-rtmp)
if ((${#need[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "system-deps: missing ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
