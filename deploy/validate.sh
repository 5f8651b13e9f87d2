#!/usr/bin/env bash
# Validates deploy/ (the checks themselves are in deploy/validate.cjs):
#   - deploy/kubernetes/*.yaml against the Kubernetes OpenAPI schemas (npm
#     package kubernetes-models), unknown fields included, and against each
#     other (ports, probes, mounts, drain timeout, security context);
#   - the server configs (the ConfigMap's, the Helm values', the image's) with
#     the real mia-server, and a start plus SIGTERM drain from the ConfigMap's;
#   - `kubectl kustomize` output of deploy/kubernetes and of the replicated
#     overlay deploy/kubernetes-replicated, where kubectl exists;
#   - the Helm chart rendered with its default values and ci/*-values.yaml:
#     by `helm lint --strict` + `helm template` where helm exists, else by the
#     stand-in deploy/tools/helm_render.go where Go and Debian's sprig exist.
#
#   deploy/validate.sh [--no-smoke]
#
# Needs Node.js >= 14 with npm (Debian 12: apt-get install -y nodejs npm).
# npm packages go to a cache folder outside the repository:
#   ${MIA_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mia-deploy-validate}
# The server binary: $MIA_SERVER_BIN, else build/server/mia-server, else the
# first build-*/server/mia-server. Exit code 0 only when every check passed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
smoke=()
for arg in "$@"; do
  case "$arg" in
    --no-smoke) smoke=(--no-smoke) ;;
    -h|--help)
      awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
      exit 0 ;;
    *) echo "validate.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# The npm packages, pinned. kubernetes-models 4.5.x still runs on Debian 12's
# Node.js 18 (5.x needs Node.js 22).
packages=(kubernetes-models@4.5.1 yaml@2.9.1)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "validate.sh: needs node and npm (Debian 12: apt-get install -y nodejs npm)" >&2
  exit 2
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 14)); then
  echo "validate.sh: needs Node.js >= 14, found $(node --version)" >&2
  exit 2
fi

cache=${MIA_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mia-deploy-validate}
mkdir -p "$cache"
if [ "$(cat "$cache/installed" 2>/dev/null || true)" != "${packages[*]}" ]; then
  echo "validate.sh: installing ${packages[*]} into $cache"
  [ -f "$cache/package.json" ] || echo '{"name":"mia-deploy-validate","private":true}' \
    >"$cache/package.json"
  (cd "$cache" && npm install --no-audit --no-fund --loglevel=error "${packages[@]}")
  echo "${packages[*]}" >"$cache/installed"
fi

server=${MIA_SERVER_BIN:-}
if [ -z "$server" ]; then
  for candidate in "$repo/build/server/mia-server" "$repo"/build-*/server/mia-server; do
    if [ -x "$candidate" ]; then server=$candidate; break; fi
  done
fi
server_args=()
if [ -n "$server" ]; then
  server_args=(--server "$server")
else
  echo "validate.sh: no mia-server binary (build it, or set MIA_SERVER_BIN)" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rendered=()

if command -v kubectl >/dev/null; then
  echo "== kubectl kustomize deploy/kubernetes"
  kubectl kustomize "$repo/deploy/kubernetes" >"$tmp/kustomize.yaml"
  rendered+=(--rendered "kustomize=$tmp/kustomize.yaml")
  echo "== kubectl kustomize deploy/kubernetes-replicated"
  kubectl kustomize "$repo/deploy/kubernetes-replicated" >"$tmp/kustomize-replicated.yaml"
  rendered+=(--rendered "kustomize-replicated=$tmp/kustomize-replicated.yaml")
else
  echo "== kubectl not found: the kustomization is checked, not rendered"
fi

# The chart, with its default values and each ci/*-values.yaml.
chart=$repo/deploy/helm/mia
value_sets=("")
for f in "$chart"/ci/*-values.yaml; do [ -e "$f" ] && value_sets+=("$f"); done
render=()
if command -v helm >/dev/null; then
  echo "== helm lint --strict deploy/helm/mia"
  helm lint --strict "$chart"
  render=(helm template mia "$chart")
elif command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/Masterminds/sprig ] &&
     [ -d /usr/share/gocode/src/github.com/ghodss/yaml ]; then
  # No helm: a stand-in renderer (Go text/template + sprig), built offline.
  echo "== helm not found: helm lint NOT run; rendering with deploy/tools/helm_render.go"
  (cd "$repo/deploy/tools" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS='' \
    GOCACHE="$cache/go-build" go build -o "$cache/helm_render" helm_render.go)
  render=("$cache/helm_render" "$chart")
else
  echo "== helm not found: helm lint and helm template NOT run; the chart's values are" \
       "checked, its templates are not rendered (for a stand-in renderer: apt-get install" \
       "golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev)"
fi
if ((${#render[@]})); then
  for values in "${value_sets[@]}"; do
    name=helm${values:+-$(basename "$values" -values.yaml)}
    if [ -n "$values" ]; then
      if [ "${render[0]}" = helm ]; then extra=(-f "$values"); else extra=("$values"); fi
    else
      extra=()
    fi
    "${render[@]}" ${extra[@]+"${extra[@]}"} >"$tmp/$name.yaml"
    rendered+=(--rendered "$name=$tmp/$name.yaml")
  done
fi

# Values the chart must refuse: each testdata/helm-values-invalid/*.yaml with a
# "# render-fails: MESSAGE" line fails to render, with MESSAGE (the template's
# own check; helm checks values.schema.json first, so with helm any refusal).
render_failures=0
if ((${#render[@]})); then
  echo "== deploy/helm/mia: values the templates refuse"
  for f in "$repo"/deploy/testdata/helm-values-invalid/*.yaml; do
    expect=$(sed -n 's/^# render-fails: //p' "$f")
    [ -n "$expect" ] || continue
    if [ "${render[0]}" = helm ]; then extra=(-f "$f"); else extra=("$f"); fi
    if out=$("${render[@]}" "${extra[@]}" 2>&1); then
      echo "FAIL $(basename "$f"): rendered, but the chart must refuse it ($expect)"
      render_failures=$((render_failures + 1))
    elif [ "${render[0]}" != helm ] && ! grep -qF -- "$expect" <<<"$out"; then
      echo "FAIL $(basename "$f"): refused, but not for \"$expect\": $out"
      render_failures=$((render_failures + 1))
    else
      echo "  $(basename "$f"): refused ($expect)"
    fi
  done
fi

# The Dockerfiles (no Docker here): the files they COPY from the context
# exist, every --from= names an earlier stage, every ${ARG} of a FROM line is
# declared before the first FROM, and the install-deps.sh flags they pass are
# accepted.
dockerfile_failures=0
for df in "$repo/Dockerfile" "$repo/deploy/docker/Dockerfile.cuda"; do
  name=${df#"$repo"/}
  echo "== $name"
  stages=() global_args=() seen_from=0
  while read -r word rest; do
    case "$word" in
      ARG) ((seen_from)) || global_args+=("${rest%%=*}") ;;
      FROM)
        for v in $(grep -o '\${[A-Za-z_]*}' <<<"$rest" | tr -d '${}'); do
          printf '%s\n' ${global_args[@]+"${global_args[@]}"} | grep -qx "$v" ||
            { echo "FAIL $name: FROM uses \${$v}, not declared before the first FROM"; dockerfile_failures=$((dockerfile_failures + 1)); }
        done
        seen_from=1
        [[ $rest =~ [[:space:]][Aa][Ss][[:space:]]+([A-Za-z0-9_-]+) ]] && stages+=("${BASH_REMATCH[1]}") ;;
      COPY)
        if [[ $rest =~ --from=([A-Za-z0-9_-]+) ]]; then
          printf '%s\n' ${stages[@]+"${stages[@]}"} | grep -qx "${BASH_REMATCH[1]}" ||
            { echo "FAIL $name: COPY --from=${BASH_REMATCH[1]}: no such earlier stage"; dockerfile_failures=$((dockerfile_failures + 1)); }
        else
          read -r -a parts <<<"$rest"
          for src in "${parts[@]:0:${#parts[@]}-1}"; do
            [ -e "$repo/$src" ] ||
              { echo "FAIL $name: COPY $src: not in the repository"; dockerfile_failures=$((dockerfile_failures + 1)); }
          done
        fi ;;
    esac
  done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$df" | grep -E '^(ARG|FROM|COPY) ')
  for flags in $(grep -E '^RUN' "$df" | grep -o 'install-deps.sh\( --[a-z-]*\)*' |
                 sed 's/install-deps.sh//; s/ /,/g'); do
    bash "$repo/scripts/install-deps.sh" ${flags//,/ } --list >/dev/null ||
      { echo "FAIL $name: scripts/install-deps.sh refuses${flags//,/ }"; dockerfile_failures=$((dockerfile_failures + 1)); }
  done
  echo "  ${#stages[@]} stages checked"
done

status=0
node "$repo/deploy/validate.cjs" --modules "$cache" --repo "$repo" \
  ${server_args[@]+"${server_args[@]}"} ${smoke[@]+"${smoke[@]}"} \
  ${rendered[@]+"${rendered[@]}"} || status=$?
if ((dockerfile_failures > 0)); then
  echo "deploy: $dockerfile_failures Dockerfile problems"
  ((status != 0)) || status=1
fi
if ((render_failures > 0)); then
  echo "deploy: $render_failures values files the chart should refuse were not refused"
  ((status != 0)) || status=1
fi
exit "$status"
