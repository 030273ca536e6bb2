#!/bin/sh
# deps.sh - the Debian packages `make bench` needs beyond `make deps`:
# wrk, nginx with Debian's ngx_lua module and lua-resty-websocket,
# Node.js with ws (the WebSocket scenarios), valgrind (bench-instr), procps
# (pgrep), and the database scenarios' servers and peers.  Installs only what is missing; apt-get needs root.  nginx's own
# service is kept from starting while it installs (policy-rc.d).
set -u
PKGS="wrk nginx libnginx-mod-http-lua lua-nginx-websocket node-ws valgrind
      procps"
# The database scenarios (stores.sh): the servers, and the peers'
# clients (lua-resty-redis, aiohttp + asyncpg, Node for node-postgres).
PKGS="$PKGS redis-server postgresql lua-nginx-redis lua-socket python3-aiohttp
      python3-asyncpg nodejs"
command -v npm > /dev/null || PKGS="$PKGS npm"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' ||
    missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "installing:$missing"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\n# from moonlet spec/bench/deps.sh\nexit 101\n' |
    $SUDO tee $policy > /dev/null && $SUDO chmod 755 $policy
fi
$SUDO apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing \
    > /dev/null
rc=$?
[ -n "$policy" ] && $SUDO rm -f "$policy"
exit $rc
