// Checks of deploy/: run by deploy/validate.sh, which installs the npm
// packages this needs into a cache folder and passes it as --modules.
//
//   node deploy/validate.cjs --modules DIR --repo ROOT [--server BIN] [--no-smoke]
//       [--rendered NAME=FILE]...
//
// 1. Every object in deploy/kubernetes/*.yaml against the Kubernetes OpenAPI
//    schemas of the npm package kubernetes-models, plus fields the schemas do
//    not know (the API server's strict field validation refuses them; the
//    schemas themselves allow any extra field, so unknown ones are found by
//    watching which fields the validator reads).
// 2. Cross-checks the schemas cannot make: ports, probes, mounts and the
//    drain timeout agree with the server config; the readiness service is
//    the one server/audit_server.h registers; the security context; with TLS
//    (tls_cert_file set), the TLS files on a read-only Secret mount and TCP
//    probes (the kubelet's gRPC probes cannot speak TLS).
// 3. The ConfigMap's config (with the StatefulSet's MIA_* env) is accepted by
//    the real mia-server, and a server started from it serves and drains.
// 4. The Helm chart: the config its values.yaml produces, the same way; and
//    any --rendered stream (helm template, kubectl kustomize) as in 1 and 2.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const childProcess = require("child_process");
const { createRequire } = require("module");

// ---------------------------------------------------------------- arguments

const args = { rendered: [], smoke: true };
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (a === "--modules") args.modules = process.argv[++i];
  else if (a === "--repo") args.repo = process.argv[++i];
  else if (a === "--server") args.server = process.argv[++i];
  else if (a === "--no-smoke") args.smoke = false;
  else if (a === "--rendered") args.rendered.push(process.argv[++i]);
  else {
    console.error(`validate.cjs: unknown argument ${a}`);
    process.exit(2);
  }
}
if (!args.modules || !args.repo) {
  console.error("validate.cjs: --modules and --repo are required");
  process.exit(2);
}
const moduleRequire = createRequire(path.join(args.modules, "package.json"));
const YAML = moduleRequire("yaml");
const schemaDir = path.join(path.dirname(moduleRequire.resolve("kubernetes-models/package.json")),
                            "_schemas");

let failures = 0;
let checks = 0;
function fail(where, message) {
  ++failures;
  console.log(`FAIL ${where}: ${message}`);
}
function check(ok, where, message) {
  ++checks;
  if (!ok) fail(where, message);
  return ok;
}
function note(message) { console.log(`  ${message}`); }

// ------------------------------------------------------- facts from server/

const serverSource = (file) => fs.readFileSync(path.join(args.repo, "server", file), "utf8");
const readinessMatch = /kReadinessService\[\]\s*=\s*"([^"]*)"/.exec(serverSource("audit_server.h"));
if (!readinessMatch) {
  console.error("validate.cjs: kReadinessService not found in server/audit_server.h");
  process.exit(2);
}
const READINESS_SERVICE = readinessMatch[1];
const SERVER_KEYS = [...serverSource("server_config.cc").matchAll(/Field\("([a-z_]+)"/g)]
  .map((m) => m[1]);
// The keys naming PEM files, which the server reads at start.
const TLS_KEYS = ["tls_cert_file", "tls_key_file", "tls_client_ca_file"];
if (!TLS_KEYS.every((k) => SERVER_KEYS.includes(k))) {
  console.error("validate.cjs: the TLS keys were not found in server_config.cc");
  process.exit(2);
}
if (SERVER_KEYS.length < 10) {
  console.error("validate.cjs: the server's config keys were not found in server_config.cc");
  process.exit(2);
}

// ------------------------------------------------------ 1. schema validation

// "apps/v1" + "StatefulSet" -> IoK8sApiAppsV1StatefulSet.js
function schemaFile(apiVersion, kind) {
  const parts = String(apiVersion || "").split("/");
  const group = parts.length === 2 ? parts[0] : "core";
  const version = parts[parts.length - 1];
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  const file = path.join(schemaDir, `IoK8sApi${cap(group.split(".")[0])}${cap(version)}${kind}.js`);
  return fs.existsSync(file) ? file : null;
}

// One ajv error as text (these compiled validators carry no messages).
function schemaError(e) {
  const p = e.params || {};
  let what;
  if (e.message) what = e.message;
  else if (e.keyword === "type") what = `must be ${p.type}`;
  else if (e.keyword === "required") what = `must have the field ${p.missingProperty}`;
  else if (e.keyword === "enum") what = `must be one of ${(p.allowedValues || []).join(", ")}`;
  else if (e.keyword === "format") what = `must be a ${p.format}`;
  else what = `${e.keyword} ${JSON.stringify(p)}`;
  return `${e.instancePath || "/"} ${what}`;
}

// Runs the schema's validator on a proxy of the object that records which
// fields it reads; a field never read (in an object the validator did not
// iterate as a map) is unknown to the schema.
function validateObject(obj) {
  const file = schemaFile(obj.apiVersion, obj.kind);
  if (!file) return { errors: [`no schema for ${obj.apiVersion} ${obj.kind}`], unknown: [] };
  const { validate } = require(file);
  const read = new Map();
  const iterated = new Set();
  const mark = (p, k) => {
    if (!read.has(p)) read.set(p, new Set());
    read.get(p).add(k);
  };
  const wrap = (value, p) => {
    if (value === null || typeof value !== "object") return value;
    return new Proxy(value, {
      get(t, k, r) {
        if (typeof k === "string") mark(p, k);
        return wrap(Reflect.get(t, k, r), `${p}/${String(k)}`);
      },
      has(t, k) {
        if (typeof k === "string") mark(p, k);
        return Reflect.has(t, k);
      },
      ownKeys(t) {
        iterated.add(p);
        return Reflect.ownKeys(t);
      },
    });
  };
  const ok = validate(wrap(obj, ""));
  const errors = ok ? [] : (validate.errors || []).map(schemaError);
  const unknown = [];
  const walk = (value, p) => {
    if (value === null || typeof value !== "object") return;
    if (!Array.isArray(value) && !iterated.has(p)) {
      for (const k of Object.keys(value)) {
        if (!(read.get(p) || new Set()).has(k)) unknown.push(`${p}/${k}`);
      }
    }
    for (const k of Object.keys(value)) walk(value[k], `${p}/${k}`);
  };
  walk(obj, "");
  return { errors, unknown };
}

function parseDocuments(text, where) {
  const docs = YAML.parseAllDocuments(text);
  const objects = [];
  for (const doc of docs) {
    if (doc.errors.length) {
      fail(where, `not valid YAML: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj !== null && obj !== undefined) objects.push(obj);
  }
  return objects;
}

function validateObjects(objects, label) {
  for (const obj of objects) {
    const where = `${label}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const { errors, unknown } = validateObject(obj);
    check(errors.length === 0, where, `schema: ${errors.join("; ")}`);
    check(unknown.length === 0, where, `fields the schema does not know: ${unknown.join(", ")}`);
    check(!(obj.metadata && obj.metadata.namespace), where,
          "sets metadata.namespace (keep the manifests namespace-agnostic)");
  }
  note(`${label}: ${objects.length} objects checked against the Kubernetes schemas`);
}

// ------------------------------------------------------- 2. cross-checks

// "4" -> 4, "3500m" -> 4 (what resourceFieldRef with divisor 1 gives).
function cpuCores(quantity) {
  const s = String(quantity);
  return s.endsWith("m") ? Math.ceil(Number(s.slice(0, -1)) / 1000) : Math.ceil(Number(s));
}

// The env the container gives mia-server: name -> value for MIA_* variables.
function containerEnv(container, where) {
  const env = {};
  for (const e of container.env || []) {
    if (!e.name.startsWith("MIA_")) continue;
    if (e.value !== undefined) {
      env[e.name] = String(e.value);
    } else if (e.valueFrom && e.valueFrom.resourceFieldRef) {
      const ref = e.valueFrom.resourceFieldRef;
      const [section, resource] = ref.resource.split(".");
      const q = container.resources && container.resources[section] &&
                container.resources[section][resource];
      if (check(resource === "cpu" && q !== undefined, where,
                `${e.name}: only a cpu resourceFieldRef with that resource set is understood`)) {
        env[e.name] = String(cpuCores(q));
      }
    } else {
      fail(where, `${e.name}: value source not understood by this check`);
    }
  }
  return env;
}

// The YAML config text of the ConfigMap the container's MIA_CONFIG names.
function configFromObjects(objects, sts, container, where) {
  const env = containerEnv(container, where);
  const configPath = env.MIA_CONFIG;
  if (!check(configPath, where, "MIA_CONFIG is not set (the config file would not be read)")) {
    return null;
  }
  for (const m of container.volumeMounts || []) {
    const rel = path.posix.relative(m.mountPath, configPath);
    if (rel.startsWith("..") || path.posix.isAbsolute(rel)) continue;
    const volume = (sts.spec.template.spec.volumes || []).find((v) => v.name === m.name);
    if (!volume || !volume.configMap) continue;
    const cm = objects.find((o) => o.kind === "ConfigMap" &&
                                  o.metadata.name === volume.configMap.name);
    if (!check(cm, where, `ConfigMap ${volume.configMap.name} is not among the objects`)) {
      return null;
    }
    let key = m.subPath ? m.subPath : rel;
    const item = (volume.configMap.items || []).find((i) => i.path === key);
    if (item) key = item.key;
    if (!check(cm.data && cm.data[key] !== undefined, where,
               `ConfigMap ${cm.metadata.name} has no key ${key} (MIA_CONFIG=${configPath})`)) {
      return null;
    }
    return { text: cm.data[key], env, name: `ConfigMap ${cm.metadata.name} key ${key}` };
  }
  fail(where, `MIA_CONFIG=${configPath} is not on a ConfigMap volume mount`);
  return null;
}

function crossCheck(objects, label) {
  const stsList = objects.filter((o) => o.kind === "StatefulSet");
  if (!check(stsList.length === 1, label, `expected one StatefulSet, found ${stsList.length}`)) {
    return null;
  }
  const sts = stsList[0];
  const where = `${label}: StatefulSet/${sts.metadata.name}`;
  const pod = sts.spec.template.spec;
  check(sts.spec.replicas === 1, where,
        "replicas must be 1 (the job store is SQLite on one volume)");
  const container = pod.containers.find((c) => /mia-server/.test(c.image)) || pod.containers[0];
  const ports = Object.fromEntries((container.ports || []).map((p) => [p.name, p.containerPort]));
  check(ports.grpc && ports.metrics, where, "container ports named grpc and metrics are required");

  // Probes: native gRPC, overall "" for liveness, the API for readiness;
  // with TLS on the gRPC port, TCP checks of it (checked with the config).
  const checkProbes = (tls) => {
    const probeNames = ["startupProbe", "livenessProbe", "readinessProbe"];
    if (tls) {
      for (const name of probeNames) {
        const tcp = container[name] && container[name].tcpSocket;
        if (check(tcp && !container[name].grpc, where, `${name} must be a tcpSocket probe: ` +
                  "the gRPC port serves TLS, which the kubelet's gRPC probes cannot speak")) {
          check(tcp.port === ports.grpc || tcp.port === "grpc", where,
                `${name} port ${tcp.port} is not the grpc container port ${ports.grpc}`);
        }
      }
      return;
    }
    const probe = (name) => container[name] && container[name].grpc;
    for (const name of probeNames) {
      if (check(probe(name), where, `${name} must be a native gRPC probe`)) {
        check(probe(name).port === ports.grpc, where,
              `${name} port ${probe(name).port} is not the grpc container port ${ports.grpc}`);
      }
    }
    if (probe("livenessProbe")) {
      check((probe("livenessProbe").service || "") === "", where,
            "livenessProbe must check the overall health (service \"\")");
    }
    if (probe("readinessProbe")) {
      check(probe("readinessProbe").service === READINESS_SERVICE, where,
            `readinessProbe service must be ${READINESS_SERVICE} (server/audit_server.h), ` +
            `not ${JSON.stringify(probe("readinessProbe").service)}`);
    }
  };

  // Security context.
  const psc = pod.securityContext || {};
  const csc = container.securityContext || {};
  const either = (k) => (csc[k] !== undefined ? csc[k] : psc[k]);
  check(either("runAsNonRoot") === true, where, "runAsNonRoot must be true");
  check(either("runAsUser") === 10001, where, "runAsUser must be 10001 (the image's user)");
  check(csc.readOnlyRootFilesystem === true, where, "readOnlyRootFilesystem must be true");
  check(csc.allowPrivilegeEscalation === false, where, "allowPrivilegeEscalation must be false");
  check(((csc.capabilities || {}).drop || []).includes("ALL"), where,
        "capabilities must drop ALL");
  check((either("seccompProfile") || {}).type === "RuntimeDefault", where,
        "seccompProfile must be RuntimeDefault");
  for (const section of ["requests", "limits"]) {
    const r = (container.resources || {})[section] || {};
    check(r.cpu !== undefined && r.memory !== undefined, where,
          `resources.${section} must set cpu and memory`);
  }

  // Services: selectors match the pod, target ports exist, the governing one
  // is headless, the metrics annotations name the metrics port.
  const podLabels = sts.spec.template.metadata.labels || {};
  const selects = (svc) => Object.entries(svc.spec.selector || {})
    .every(([k, v]) => podLabels[k] === v);
  const services = objects.filter((o) => o.kind === "Service");
  for (const svc of services) {
    const w = `${label}: Service/${svc.metadata.name}`;
    check(selects(svc), w, "its selector does not select the StatefulSet's pods");
    for (const p of svc.spec.ports || []) {
      const target = p.targetPort === undefined ? p.port : p.targetPort;
      check(typeof target === "number" ? Object.values(ports).includes(target) : target in ports,
            w, `targetPort ${target} is not a container port`);
    }
  }
  const governing = services.find((s) => s.metadata.name === sts.spec.serviceName);
  if (check(governing, where, `serviceName ${sts.spec.serviceName} is not among the Services`)) {
    check(governing.spec.clusterIP === "None", where, `Service ${governing.metadata.name} ` +
          "(the serviceName) must be headless");
  }
  check(services.some((s) => (s.spec.ports || []).some((p) => p.targetPort === "grpc" ||
                                                              p.targetPort === ports.grpc)),
        label, "no Service exposes the gRPC port");
  const scraped = services.filter(
    (s) => (s.metadata.annotations || {})["prometheus.io/scrape"] === "true");
  if (check(scraped.length === 1, label, "exactly one Service must carry prometheus.io/scrape")) {
    const a = scraped[0].metadata.annotations;
    check(Number(a["prometheus.io/port"]) === ports.metrics, label,
          `prometheus.io/port ${a["prometheus.io/port"]} is not the metrics port ${ports.metrics}`);
    check(scraped[0].spec.ports.length === 1, label,
          "the scraped Service must have only the metrics port (else each port is scraped)");
  }

  // The config against the pod.
  const cfg = configFromObjects(objects, sts, container, where);
  if (!cfg) return null;
  let config;
  try {
    config = YAML.parse(cfg.text) || {};
  } catch (e) {
    fail(where, `${cfg.name}: not valid YAML: ${e.message}`);
    return null;
  }
  const unknownKeys = Object.keys(config).filter((k) => !SERVER_KEYS.includes(k));
  check(unknownKeys.length === 0, where,
        `${cfg.name}: keys mia-server does not know: ${unknownKeys.join(", ")}`);
  // Effective values: the env overrides the file.
  const eff = (key) => {
    const e = cfg.env[`MIA_${key.toUpperCase()}`];
    return e !== undefined ? e : config[key];
  };
  const listenPort = Number(String(eff("listen_address") || "").split(":").pop());
  check(listenPort === ports.grpc, where,
        `listen_address ${eff("listen_address")} is not on the grpc container port ${ports.grpc}`);
  check(!/^(127\.|localhost|\[::1\])/.test(String(eff("listen_address"))), where,
        "listen_address must not be loopback (probes and the Service connect to the pod IP)");
  check(Number(eff("metrics_port")) === ports.metrics, where,
        `metrics_port ${eff("metrics_port")} is not the metrics container port ${ports.metrics}`);
  const mounts = container.volumeMounts || [];
  const claimNames = (sts.spec.volumeClaimTemplates || []).map((t) => t.metadata.name);
  const dataMount = mounts.find((m) => m.mountPath === eff("data_dir"));
  check(dataMount && claimNames.includes(dataMount.name) && !dataMount.readOnly, where,
        `data_dir ${eff("data_dir")} must be a read-write mount of a volumeClaimTemplate`);
  let roots = eff("data_roots") || [];
  if (typeof roots === "string") roots = roots.split(",").filter(Boolean);
  check(roots.length > 0, where, "data_roots is empty (only uploads could be audited)");
  for (const root of roots) {
    check(mounts.some((m) => m.mountPath === root && m.readOnly === true), where,
          `data root ${root} must be a read-only volume mount`);
  }
  const drain = Number(eff("drain_timeout_seconds") === undefined ? 30
                                                                  : eff("drain_timeout_seconds"));
  check(pod.terminationGracePeriodSeconds > drain, where,
        `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed ` +
        `drain_timeout_seconds ${drain}`);
  // TLS: both files or neither (the server refuses the rest), each a key of a
  // Secret mounted read-only.
  const tlsFiles = TLS_KEYS.filter((k) => eff(k));
  const tls = Boolean(eff("tls_cert_file"));
  check(Boolean(eff("tls_cert_file")) === Boolean(eff("tls_key_file")) &&
        (tls || !eff("tls_client_ca_file")), where,
        "tls_cert_file and tls_key_file go together (tls_client_ca_file only with them)");
  for (const key of tlsFiles) {
    const file = String(eff(key));
    const mount = mounts.find((m) => {
      const rel = path.posix.relative(m.mountPath, file);
      return !rel.startsWith("..") && !path.posix.isAbsolute(rel) && rel !== "";
    });
    const volume = mount && (pod.volumes || []).find((v) => v.name === mount.name);
    if (check(mount && mount.readOnly === true && volume && volume.secret, where,
              `${key} ${file} must be on a read-only Secret volume mount`)) {
      const name = mount.subPath ? mount.subPath : path.posix.relative(mount.mountPath, file);
      const items = volume.secret.items;
      check(!items || items.some((i) => i.path === name), where,
            `${key} ${file}: the Secret volume's items do not include ${name}`);
    }
  }
  checkProbes(tls);
  const probes = tls ? "TCP, as the gRPC port serves TLS" : `readiness ${READINESS_SERVICE}`;
  note(`${label}: ports, probes (${probes}), mounts, security context, services and the ` +
       "drain timeout agree");
  return { text: cfg.text, env: cfg.env, name: `${label} ${cfg.name}` };
}

// ----------------------------------------------- 3. the config and the server

function tempDir() { return fs.mkdtempSync(path.join(os.tmpdir(), "mia-deploy-validate-")); }

// The environment mia-server gets: a clean one (no MIA_* of the caller's).
function serverEnv(extra) {
  const env = { PATH: process.env.PATH || "/usr/bin:/bin", HOME: os.tmpdir() };
  if (process.env.LD_LIBRARY_PATH) env.LD_LIBRARY_PATH = process.env.LD_LIBRARY_PATH;
  return Object.assign(env, extra);
}

function logLines(text) {
  const out = [];
  for (const line of String(text).split("\n")) {
    try {
      out.push(JSON.parse(line));
    } catch (e) { /* not a log line */ }
  }
  return out;
}

// The TLS files a config names live in a Secret that only exists in the
// cluster. The server checks at load that each is readable PEM of its kind
// (it parses them only when it opens the port, which this check never
// reaches), so stand-ins with the right PEM headers are put in `dir` and
// their keys pointed at them through the environment (MIA_TLS_*_FILE).
function tlsKeysSet(cfg) {
  let config = {};
  try {
    config = YAML.parse(cfg.text) || {};
  } catch (e) { /* reported by the server */ }
  return TLS_KEYS.filter((key) => config[key] || cfg.env[`MIA_${key.toUpperCase()}`]);
}

function tlsStandIns(cfg, dir) {
  const env = {};
  for (const key of tlsKeysSet(cfg)) {
    const envName = `MIA_${key.toUpperCase()}`;
    const kind = key === "tls_key_file" ? "PRIVATE KEY" : "CERTIFICATE";
    const file = path.join(dir, `${key}.pem`);
    fs.writeFileSync(file, `-----BEGIN ${kind}-----\nstand-in\n-----END ${kind}-----\n`);
    env[envName] = file;
  }
  return env;
}

// Config accepted? The server loads and range-checks the whole config before
// anything else, exiting 2 on a bad one. There is no check-only flag, so
// data_dir is pointed below a regular file: the first thing Start does then
// fails (exit 1, "cannot start"), before binding any port.
function checkConfigWithServer(cfg) {
  const where = `mia-server accepts ${cfg.name}`;
  const dir = tempDir();
  try {
    const file = path.join(dir, "config.yaml");
    fs.writeFileSync(file, cfg.text);
    fs.writeFileSync(path.join(dir, "blocker"), "");
    const env = serverEnv(Object.assign({}, cfg.env, {
      MIA_CONFIG: file, MIA_DATA_DIR: path.join(dir, "blocker", "data"),
    }, tlsStandIns(cfg, dir)));
    const r = childProcess.spawnSync(args.server, [], { env, encoding: "utf8", timeout: 60000 });
    const lines = logLines(r.stdout + r.stderr);
    const bad = lines.find((l) => l.msg === "bad configuration");
    if (!check(r.status === 1 && !bad && lines.some((l) => l.msg === "cannot start"), where,
               bad ? `refused: ${bad.error}`
                   : `unexpected exit ${r.status} ${r.signal || ""}: ${r.stdout}${r.stderr}`)) {
      return false;
    }
    const logged = lines.find((l) => l.msg === "configuration");
    let same = true;
    if (logged) {
      // Each key of the file (unless the env overrides it) as the server read it.
      const config = YAML.parse(cfg.text) || {};
      for (const [key, value] of Object.entries(config)) {
        if (env[`MIA_${key.toUpperCase()}`] !== undefined) continue;
        same = check(JSON.stringify(logged.config[key]) === JSON.stringify(value), where,
                     `${key}: the server read ${JSON.stringify(logged.config[key])}, ` +
                     `the file says ${JSON.stringify(value)}`) && same;
      }
    }
    if (same) {
      note(`${where}: yes (it loaded the config${logged ? " and read every key as written" : ""},` +
           " then stopped at the stand-in data_dir)");
    }
    return same;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// A config with TLS names files of a Secret: for a real start they are
// replaced by a throwaway self-signed certificate (also the client CA), made
// with openssl; without openssl, TLS is turned off for the start.
function tlsForSmokeTest(cfg, dir) {
  const names = tlsKeysSet(cfg).map((key) => `MIA_${key.toUpperCase()}`);
  if (names.length === 0) return {};
  const cert = path.join(dir, "tls.crt");
  const key = path.join(dir, "tls.key");
  const r = childProcess.spawnSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
  ], { encoding: "utf8" });
  const env = {};
  for (const name of names) {
    env[name] = r.status !== 0 ? "" : name === "MIA_TLS_KEY_FILE" ? key : cert;
  }
  note(r.status === 0 ? "smoke test: TLS with a throwaway self-signed certificate"
                      : "smoke test: TLS turned off (openssl failed or is missing)");
  return env;
}

// Starts mia-server from the config (only the listen address, data dir, data
// roots and metrics port replaced by local ones), waits until it serves, sends
// SIGTERM and expects a clean stop within the drain timeout.
async function smokeTest(cfg) {
  const where = `mia-server starts and drains with ${cfg.name}`;
  const dir = tempDir();
  const file = path.join(dir, "config.yaml");
  fs.writeFileSync(file, cfg.text);
  fs.mkdirSync(path.join(dir, "datasets"));
  const env = serverEnv(Object.assign({}, cfg.env, {
    MIA_CONFIG: file, MIA_DATA_DIR: path.join(dir, "data"),
    MIA_DATA_ROOTS: path.join(dir, "datasets"), MIA_LISTEN_ADDRESS: "127.0.0.1:0",
    MIA_METRICS_PORT: "0", MIA_LOG_LEVEL: "info",
  }, tlsForSmokeTest(cfg, dir)));
  const child = childProcess.spawn(args.server, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let resolveExit;
  const exited = new Promise((resolve) => { resolveExit = resolve; });
  child.on("exit", (code, signal) => resolveExit({ code, signal }));
  child.stdout.on("data", (d) => { output += d; });
  child.stderr.on("data", (d) => { output += d; });
  const until = (pred, ms) => new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred()) resolve(true);
      else if (Date.now() - t0 > ms) resolve(false);
      else setTimeout(tick, 100);
    };
    tick();
  });
  try {
    let exit = null;
    exited.then((e) => { exit = e; });
    const serving = await until(() => exit !== null ||
                                      logLines(output).some((l) => l.msg === "serving"), 120000);
    if (!check(serving && exit === null, where, `did not reach "serving": ${output}`)) return;
    child.kill("SIGTERM");
    const config = YAML.parse(cfg.text) || {};
    const drain = Number(cfg.env.MIA_DRAIN_TIMEOUT_SECONDS || config.drain_timeout_seconds || 30);
    await until(() => exit !== null, (drain + 10) * 1000);
    check(exit !== null && exit.code === 0 && logLines(output).some((l) => l.msg === "stopped"),
          where, `no clean stop after SIGTERM (exit ${JSON.stringify(exit)}): ${output}`);
    if (exit && exit.code === 0) note(`${where}: served, then stopped cleanly on SIGTERM`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------ 4. Helm chart

// The config file the chart's templates/configmap.yaml renders from
// values.yaml, built the same way (the chart itself is not rendered here).
function helmValuesConfig(chartDir) {
  const where = "helm chart";
  const chart = YAML.parse(fs.readFileSync(path.join(chartDir, "Chart.yaml"), "utf8"));
  check(chart.apiVersion === "v2" && chart.name && /^\d+\.\d+\.\d+/.test(chart.version || ""),
        where, "Chart.yaml needs apiVersion v2, a name and a SemVer version");
  const values = YAML.parse(fs.readFileSync(path.join(chartDir, "values.yaml"), "utf8"));
  const reserved = ["listen_address", "data_dir", "data_roots", "metrics_port", ...TLS_KEYS];
  const config = Object.assign({}, values.config || {});
  const clash = reserved.filter((k) => k in config);
  check(clash.length === 0, where, `values.yaml config sets ${clash.join(", ")}, which the ` +
        "chart derives from other values");
  const unknown = Object.keys(config).filter((k) => !SERVER_KEYS.includes(k));
  check(unknown.length === 0, where, `values.yaml config: keys mia-server does not know: ` +
        unknown.join(", "));
  const derived = {
    listen_address: `0.0.0.0:${values.service.grpcPort}`,
    data_dir: values.persistence.mountPath,
    data_roots: (values.dataRoots || []).map((r) => r.mountPath),
    metrics_port: values.metrics.port,
  };
  const tls = values.tls || {};
  check(!tls.requireClientCert || tls.secretName, where,
        "values.yaml tls.requireClientCert needs tls.secretName");
  if (tls.secretName) {
    derived.tls_cert_file = "/etc/mia-tls/tls.crt";
    derived.tls_key_file = "/etc/mia-tls/tls.key";
    if (tls.requireClientCert) derived.tls_client_ca_file = "/etc/mia-tls/ca.crt";
  }
  const drain = Number(config.drain_timeout_seconds === undefined ? 30
                                                                  : config.drain_timeout_seconds);
  check(values.terminationGracePeriodSeconds > drain, where,
        `values.yaml terminationGracePeriodSeconds must exceed drain_timeout_seconds ${drain}`);
  const env = {};
  for (const [k, v] of Object.entries(values.env || {})) env[k] = String(v);
  if (values.threadsPerJobFromCpuLimit) {
    env.MIA_THREADS_PER_JOB = String(cpuCores(values.resources.limits.cpu));
  }
  env.MIA_CONFIG = "/etc/mia/config.yaml";
  note(`${where}: Chart.yaml, values.yaml config keys and grace period checked`);
  return { text: YAML.stringify(Object.assign(derived, config)), env,
           name: "the config of helm/mia/values.yaml" };
}

// --------------------------------------------------------------- Dockerfile

// The image: the build stage installs only what building needs, and the
// server stage has a HEALTHCHECK on the gRPC port of the image's config.
function checkDockerfile() {
  const where = "Dockerfile";
  const text = fs.readFileSync(path.join(args.repo, "Dockerfile"), "utf8")
    .replace(/\\\n/g, " ");  // continuation lines joined
  const stages = {};
  let current = null;
  for (const line of text.split("\n")) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      current = from[1] || `stage${Object.keys(stages).length}`;
      stages[current] = [];
    } else if (current && line.trim() && !line.trim().startsWith("#")) {
      stages[current].push(line.trim());
    }
  }
  const build = (stages.build || []).join("\n");
  if (check(/install-deps\.sh --build-only/.test(build), where,
            "the build stage must run scripts/install-deps.sh --build-only")) {
    const listed = childProcess.execFileSync(
      "bash", [path.join(args.repo, "scripts", "install-deps.sh"), "--build-only", "--list"],
      { encoding: "utf8" }).split("\n").filter(Boolean);
    const testOnly = /^(golang-|nodejs$|npm$|dataset-|libgtest|libgmock|libbenchmark|python3-)/;
    const extra = listed.filter((p) => testOnly.test(p));
    check(extra.length === 0, where,
          `install-deps.sh --build-only installs what only tests need: ${extra.join(", ")}`);
  }
  check(!/\b(golang-go|nodejs|npm|dataset-[a-z-]+)\b/.test(build), where,
        "the build stage installs Go, Node.js or a dataset");
  const server = stages.server || [];
  const health = server.find((l) => /^HEALTHCHECK\s/i.test(l));
  if (check(health && !/\bNONE\b/.test(health), where, "the server stage has no HEALTHCHECK")) {
    const imageConfig = YAML.parse(fs.readFileSync(
      path.join(args.repo, "deploy", "docker", "mia-server.yaml"), "utf8")) || {};
    const port = String(imageConfig.listen_address || "").split(":").pop();
    check(port && health.includes(`/${port}`), where,
          `the HEALTHCHECK does not probe the image config's gRPC port ${port}`);
    const exposed = server.filter((l) => /^EXPOSE\s/i.test(l)).join(" ");
    check(new RegExp(`\\b${port}\\b`).test(exposed), where, `port ${port} is not EXPOSEd`);
  }
  note(`${where}: build stage packages and the server's HEALTHCHECK checked`);
}

// --------------------------------------------------------------------- main

async function main() {
  const kdir = path.join(args.repo, "deploy", "kubernetes");
  const files = fs.readdirSync(kdir).filter((f) => /\.ya?ml$/.test(f)).sort();
  const objects = [];
  let kustomization = null;
  for (const f of files) {
    const docs = parseDocuments(fs.readFileSync(path.join(kdir, f), "utf8"), `kubernetes/${f}`);
    if (f === "kustomization.yaml") kustomization = docs[0];
    else objects.push(...docs);
  }
  console.log("== deploy/kubernetes: schemas");
  validateObjects(objects, "kubernetes");
  if (check(kustomization, "kubernetes", "kustomization.yaml is missing")) {
    const listed = (kustomization.resources || []).slice().sort();
    const others = files.filter((f) => f !== "kustomization.yaml");
    check(JSON.stringify(listed) === JSON.stringify(others), "kubernetes/kustomization.yaml",
          `resources ${listed.join(", ")} differ from the files ${others.join(", ")}`);
  }
  console.log("== deploy/kubernetes: cross-checks");
  const cfg = crossCheck(objects, "kubernetes");

  for (const spec of args.rendered) {
    const [label, file] = spec.split("=");
    console.log(`== ${label}: schemas and cross-checks of the rendered objects`);
    const rendered = parseDocuments(fs.readFileSync(file, "utf8"), label);
    validateObjects(rendered, label);
    const rcfg = crossCheck(rendered, label);
    if (rcfg && args.server) checkConfigWithServer(rcfg);
  }

  console.log("== Dockerfile");
  checkDockerfile();

  console.log("== deploy/helm/mia: values");
  const helmCfg = helmValuesConfig(path.join(args.repo, "deploy", "helm", "mia"));

  const imageConfig = path.join(args.repo, "deploy", "docker", "mia-server.yaml");

  if (args.server) {
    console.log(`== mia-server (${args.server})`);
    if (cfg) checkConfigWithServer(cfg);
    checkConfigWithServer(helmCfg);
    if (fs.existsSync(imageConfig)) {
      checkConfigWithServer({ text: fs.readFileSync(imageConfig, "utf8"), env: {},
                              name: "the image's deploy/docker/mia-server.yaml" });
    }
    if (cfg && args.smoke) await smokeTest(cfg);
  } else {
    fail("mia-server", "no server binary: the config was not checked by the server");
  }

  console.log(failures === 0 ? `deploy: ${checks} checks passed`
                             : `deploy: ${failures} of ${checks} checks failed`);
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
