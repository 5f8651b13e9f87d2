# Shared by the bench scripts that start a mia-server (service.sh,
# startup.sh): a temporary folder `tmp` and the server's pid `server_pid`,
# both cleaned up at exit (the server stopped with SIGTERM, as in
# production). Source it once; set server_pid when the server starts.

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
