# Shared by the CLI's black-box tests (cli_test.sh, startup_test.sh): check
# counters and the `expect` helper. Source it after cd-ing into the work dir.

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# expect NAME WANT_EXIT WANT_STDERR_SUBSTRING -- command...
# Runs the command with stdout in out.txt and stderr in err.txt (read them
# after for further checks) and checks its exit code and a part of stderr.
expect() {
  local name=$1 want=$2 msg=$3
  shift 4
  "$@" >out.txt 2>err.txt
  local got=$?
  if [ "$got" -ne "$want" ]; then
    bad "$name: exit $got, wanted $want"; sed 's/^/     /' err.txt | tail -5; return
  fi
  if [ -n "$msg" ] && ! grep -qF -- "$msg" err.txt; then
    bad "$name: stderr lacks '$msg'"; sed 's/^/     /' err.txt | tail -5; return
  fi
  ok "$name"
}

# The closing line ctest and CI read, and the script's exit status.
finish_checks() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
