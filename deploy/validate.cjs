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
//    A stream holds one workload: the one-replica StatefulSet (mode single)
//    or the Deployment of mode replicated, whose stores, Secrets, flags,
//    drain, PodDisruptionBudget, NetworkPolicy, ServiceMonitor and
//    autoscaling (KEDA ScaledObject + TriggerAuthentication, or an HPA) are
//    checked against each other. Custom resources (KEDA, Prometheus
//    Operator) have no OpenAPI schema here: their shape is checked by
//    CRD_SHAPES below (the fields this chart uses, types and unknown fields).
// 5. values.schema.json: every value of values.yaml typed by it; values.yaml
//    and each ci/*-values.yaml valid; each file of
//    deploy/testdata/helm-values-invalid/ invalid, for the reason its
//    "# expect:" line names.
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
  const shape = CRD_SHAPES[`${obj.apiVersion} ${obj.kind}`];
  if (shape) {
    const errors = [];
    const unknown = [];
    checkShape(obj, shape, "", errors, unknown);
    return { errors, unknown };
  }
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

// ------------------------------------------- custom resources: their shape

// A shape: "string", "integer", "boolean", "object" (anything), "stringMap"
// (string values), an object of field shapes (a name ending in "!" is
// required; other fields are unknown), or [shape] (a list of it).
function checkShape(value, shape, p, errors, unknown) {
  const where = p || "/";
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) { errors.push(`${where} must be a list`); return; }
    value.forEach((v, i) => checkShape(v, shape[0], `${p}/${i}`, errors, unknown));
    return;
  }
  if (typeof shape === "string") {
    const ok = {
      string: () => typeof value === "string",
      integer: () => Number.isInteger(value),
      boolean: () => typeof value === "boolean",
      object: () => value !== null && typeof value === "object" && !Array.isArray(value),
      stringMap: () => value !== null && typeof value === "object" && !Array.isArray(value) &&
                       Object.values(value).every((v) => typeof v === "string"),
    }[shape];
    if (!ok()) {
      errors.push(`${where} must be ${shape === "stringMap" ? "a map of strings" : `a ${shape}`}`);
    }
    return;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    errors.push(`${where} must be an object`);
    return;
  }
  const fields = {};
  for (const [k, v] of Object.entries(shape)) {
    const required = k.endsWith("!");
    const name = required ? k.slice(0, -1) : k;
    fields[name] = v;
    if (required && value[name] === undefined) errors.push(`${where} must have the field ${name}`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (!(k in fields)) unknown.push(`${p}/${k}`);
    else checkShape(v, fields[k], `${p}/${k}`, errors, unknown);
  }
}

const OBJECT_META = { "name!": "string", labels: "stringMap", annotations: "stringMap" };
const LABEL_SELECTOR = { matchLabels: "stringMap", matchExpressions: ["object"] };
// The fields of KEDA 2.x and Prometheus Operator v1 resources this chart may
// set (their CRDs' OpenAPI, reduced).
const CRD_SHAPES = {
  "keda.sh/v1alpha1 ScaledObject": {
    "apiVersion!": "string", "kind!": "string", "metadata!": OBJECT_META,
    "spec!": {
      "scaleTargetRef!": { apiVersion: "string", kind: "string", "name!": "string",
                           envSourceContainerName: "string" },
      pollingInterval: "integer", cooldownPeriod: "integer", idleReplicaCount: "integer",
      minReplicaCount: "integer", maxReplicaCount: "integer",
      fallback: { "failureThreshold!": "integer", "replicas!": "integer" },
      advanced: "object",
      "triggers!": [{
        "type!": "string", name: "string", "metadata!": "stringMap", metricType: "string",
        useCachedMetrics: "boolean", authenticationRef: { "name!": "string", kind: "string" },
      }],
    },
  },
  "keda.sh/v1alpha1 TriggerAuthentication": {
    "apiVersion!": "string", "kind!": "string", "metadata!": OBJECT_META,
    "spec!": {
      secretTargetRef: [{ "parameter!": "string", "name!": "string", "key!": "string" }],
      env: [{ "parameter!": "string", "name!": "string", containerName: "string" }],
      podIdentity: "object",
    },
  },
  "monitoring.coreos.com/v1 ServiceMonitor": {
    "apiVersion!": "string", "kind!": "string", "metadata!": OBJECT_META,
    "spec!": {
      "selector!": LABEL_SELECTOR, namespaceSelector: "object", jobLabel: "string",
      targetLabels: ["string"], podTargetLabels: ["string"], sampleLimit: "integer",
      "endpoints!": [{
        port: "string", targetPort: "object", path: "string", scheme: "string",
        interval: "string", scrapeTimeout: "string", honorLabels: "boolean",
        relabelings: ["object"], metricRelabelings: ["object"], tlsConfig: "object",
      }],
    },
  },
};

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

// Settings of issue 12 (replicas on PostgreSQL, a shared artifact store,
// authentication) that the chart passes as flags or env. A mia-server built
// before they exist does not know them: its config checks are then skipped
// for a config that uses one, with a note naming them.
const CLUSTER_KEYS = ["store", "replica_id", "artifact_store", "s3_endpoint", "s3_region",
                      "auth_tokens_file", "auth_jwt_keys", "auth_jwt_issuer",
                      "auth_jwt_audience"];
// The store URL stands in for the Secret's: a port nothing listens on.
const STORE_STAND_IN = "postgresql://mia@127.0.0.1:1/mia";
// KEDA's postgresql trigger counts exactly these (the work queue's pending
// units, and running ones whose replica's lease expired).
const KEDA_QUERY = "SELECT count(*) FROM work_units WHERE state = 'PENDING' OR " +
                   "(state = 'RUNNING' AND lease_until < now())";
const QUEUE_METRIC = "mia_queue_pending_units";

// The container's flags: "--key=value" each -> {key: value}.
function containerFlags(container, where) {
  const flags = {};
  for (const arg of container.args || []) {
    const m = /^--([a-z0-9_]+)=(.*)$/.exec(String(arg));
    if (!check(m, where, `argument ${JSON.stringify(arg)} is not --key=value`)) continue;
    check(SERVER_KEYS.includes(m[1]) || CLUSTER_KEYS.includes(m[1]), where,
          `--${m[1]} is not a mia-server setting`);
    check(!(m[1] in flags), where, `--${m[1]} is given twice`);
    flags[m[1]] = m[2];
  }
  return flags;
}

// The env variable `name` of the container (any, not only MIA_*).
const envVar = (container, name) => (container.env || []).find((e) => e.name === name);

// `file` is on a read-only mount of a Secret volume that holds it (no
// subPath when `reloaded`: the kubelet updates only whole-volume mounts).
function checkSecretFile(pod, container, key, file, where, reloaded) {
  const mount = (container.volumeMounts || []).find((m) => {
    const rel = path.posix.relative(m.mountPath, file);
    return !rel.startsWith("..") && !path.posix.isAbsolute(rel) && rel !== "";
  });
  const volume = mount && (pod.volumes || []).find((v) => v.name === mount.name);
  if (!check(mount && mount.readOnly === true && volume && volume.secret, where,
             `${key} ${file} must be on a read-only Secret volume mount`)) {
    return;
  }
  if (reloaded) {
    check(!mount.subPath, where, `${key} ${file}: a subPath mount never sees the Secret's ` +
          "updates (the server reloads the file when it changes)");
  }
  const name = mount.subPath ? mount.subPath : path.posix.relative(mount.mountPath, file);
  const items = volume.secret.items;
  check(!items || items.some((i) => i.path === name), where,
        `${key} ${file}: the Secret volume's items do not include ${name}`);
}

// A label selector (matchLabels only) selects `labels`.
const selectsLabels = (selector, labels) => selector && !selector.matchExpressions &&
  Object.entries(selector.matchLabels || {}).every(([k, v]) => labels[k] === v) &&
  Object.keys(selector.matchLabels || {}).length > 0;

// The objects of mode replicated around the Deployment: the store, the
// artifact store, the replica id, the drain, the disruption budget and the
// scaling on the queue.
function checkReplicated(objects, dep, container, flags, drain, label) {
  const where = `${label}: Deployment/${dep.metadata.name}`;
  const pod = dep.spec.template.spec;
  const podLabels = dep.spec.template.metadata.labels || {};
  // The store: MIA_STORE from a Secret, never a flag (argv is readable in
  // /proc) or a literal.
  check(!("store" in flags), where, "--store must not be a flag: the URL holds the password " +
        "(give MIA_STORE from a Secret)");
  const store = envVar(container, "MIA_STORE");
  const storeRef = store && store.valueFrom && store.valueFrom.secretKeyRef;
  check(storeRef && storeRef.name && storeRef.key, where,
        "MIA_STORE (the PostgreSQL URL) must come from a Secret (secretKeyRef)");
  // The replica id: the pod's name, through the downward API.
  const podName = envVar(container, "POD_NAME");
  check(flags.replica_id === "$(POD_NAME)" && podName && podName.valueFrom &&
        podName.valueFrom.fieldRef && podName.valueFrom.fieldRef.fieldPath === "metadata.name",
        where, "--replica_id must be $(POD_NAME), with POD_NAME from fieldRef metadata.name");
  // The artifact store: a ReadWriteMany claim mounted read-write, or S3.
  const artifacts = flags.artifact_store;
  if (check(artifacts, where, "--artifact_store is required in replicated mode")) {
    if (artifacts.startsWith("s3://")) {
      check(/^s3:\/\/[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](\/|$)/.test(artifacts), where,
            `--artifact_store ${artifacts} is not s3://BUCKET/PREFIX`);
      check(flags.s3_region, where, "--s3_region is required with an s3:// artifact store");
      const id = envVar(container, "AWS_ACCESS_KEY_ID");
      const secret = envVar(container, "AWS_SECRET_ACCESS_KEY");
      check(Boolean(id) === Boolean(secret), where,
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together");
      for (const e of [id, secret, envVar(container, "AWS_SESSION_TOKEN")]) {
        if (e) {
          check(e.valueFrom && e.valueFrom.secretKeyRef && e.value === undefined, where,
                `${e.name} must come from a Secret (secretKeyRef), never a literal`);
        }
      }
    } else {
      const mount = (container.volumeMounts || []).find((m) => m.mountPath === artifacts);
      const volume = mount && (pod.volumes || []).find((v) => v.name === mount.name);
      check(mount && !mount.readOnly && volume && volume.persistentVolumeClaim &&
            !volume.persistentVolumeClaim.readOnly, where,
            `--artifact_store ${artifacts} must be a read-write mount of a (ReadWriteMany) ` +
            "PersistentVolumeClaim shared by the replicas");
    }
  }
  // Drain: the preStop sleep, then SIGTERM's drain, within the grace period.
  const preStop = ((container.lifecycle || {}).preStop || {}).exec;
  const sleep = preStop && preStop.command && preStop.command[0] === "sleep"
    ? Number(preStop.command[1]) : NaN;
  if (check(Number.isFinite(sleep) && sleep >= 0, where,
            "a preStop hook [\"sleep\", N] is required (the pod leaves the endpoints first)")) {
    check(pod.terminationGracePeriodSeconds > sleep + drain, where,
          `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed the ` +
          `preStop sleep ${sleep} plus drain_timeout_seconds ${drain}`);
  }
  // The disruption budget.
  const pdbs = objects.filter((o) => o.kind === "PodDisruptionBudget");
  check(pdbs.length <= 1, label, `expected at most one PodDisruptionBudget, found ${pdbs.length}`);
  for (const pdb of pdbs) {
    const w = `${label}: PodDisruptionBudget/${pdb.metadata.name}`;
    check(selectsLabels(pdb.spec.selector, podLabels), w, "its selector does not select the pods");
    check(pdb.spec.maxUnavailable !== undefined && pdb.spec.maxUnavailable !== 0 &&
          pdb.spec.maxUnavailable !== "0%", w,
          "maxUnavailable must allow at least one eviction (or node drains block)");
  }
  // Scaling on the queue: one ScaledObject (with its TriggerAuthentication)
  // or one HPA, on this Deployment.
  const scalers = objects.filter((o) => o.kind === "ScaledObject" ||
                                        o.kind === "HorizontalPodAutoscaler");
  check(scalers.length <= 1, label, `expected at most one autoscaler, found ${scalers.length}`);
  if (scalers.length === 0) {
    check(Number.isInteger(dep.spec.replicas) && dep.spec.replicas >= 1, where,
          "replicas must be set (no autoscaler)");
    return;
  }
  const scaler = scalers[0];
  const w = `${label}: ${scaler.kind}/${scaler.metadata.name}`;
  check(dep.spec.replicas === undefined, where,
        `replicas must be unset: ${scaler.kind} ${scaler.metadata.name} owns it`);
  const ref = scaler.spec.scaleTargetRef || {};
  check(ref.name === dep.metadata.name && (ref.kind || "Deployment") === "Deployment" &&
        (ref.apiVersion || "apps/v1") === "apps/v1", w,
        `scaleTargetRef must be Deployment ${dep.metadata.name}`);
  const keda = scaler.kind === "ScaledObject";
  const min = keda ? scaler.spec.minReplicaCount : scaler.spec.minReplicas;
  const max = keda ? scaler.spec.maxReplicaCount : scaler.spec.maxReplicas;
  check(Number.isInteger(min) && min >= 1, w,
        "the minimum must be at least 1 (with none, no replica answers CreateAudit)");
  check(Number.isInteger(max) && max >= min, w, `the maximum ${max} is below the minimum ${min}`);
  if (keda) {
    const triggers = scaler.spec.triggers || [];
    const pg = triggers.filter((t) => t.type === "postgresql");
    if (!check(pg.length === 1 && triggers.length === 1, w,
               "expected exactly one trigger, of type postgresql")) return;
    const t = pg[0];
    check(t.metadata.query === KEDA_QUERY, w,
          `the postgresql trigger's query must be exactly: ${KEDA_QUERY}`);
    check(/^[1-9][0-9]*$/.test(t.metadata.targetQueryValue || ""), w,
          "targetQueryValue (pending units per replica) must be a positive integer");
    check(!t.metadata.connectionFromEnv && !t.metadata.password && !t.metadata.host, w,
          "the connection must come from the TriggerAuthentication, not the trigger's metadata");
    const authName = (t.authenticationRef || {}).name;
    const auth = objects.find((o) => o.kind === "TriggerAuthentication" &&
                                     o.metadata.name === authName);
    if (check(auth, w, `authenticationRef ${authName} is not among the TriggerAuthentications`)) {
      const conn = (auth.spec.secretTargetRef || []).find((r) => r.parameter === "connection");
      check(conn && storeRef && conn.name === storeRef.name && conn.key === storeRef.key,
            `${label}: TriggerAuthentication/${authName}`,
            "its connection must be the Secret key MIA_STORE comes from " +
            `(${storeRef ? `${storeRef.name}/${storeRef.key}` : "none"})`);
    }
  } else {
    const metrics = scaler.spec.metrics || [];
    const queue = metrics.find((m) => m.type === "External" && m.external &&
                                      m.external.metric.name === QUEUE_METRIC);
    check(metrics.length === 1 && queue, w,
          `expected one metric, the External ${QUEUE_METRIC} (each replica exports the whole ` +
          "queue's count, so a Pods metric would grow with the replicas)");
    if (queue) {
      check(queue.external.target.type === "AverageValue", w,
            "the target must be an AverageValue (pending units per replica)");
    }
  }
}

// NetworkPolicy and ServiceMonitor (both modes), and the GPU resources.
function checkAround(objects, workload, container, ports, services, label) {
  const podLabels = workload.spec.template.metadata.labels || {};
  const replicated = workload.kind === "Deployment";
  for (const np of objects.filter((o) => o.kind === "NetworkPolicy")) {
    const w = `${label}: NetworkPolicy/${np.metadata.name}`;
    check(selectsLabels(np.spec.podSelector, podLabels), w,
          "its podSelector does not select the server pods");
    const allows = (rules, port) => (rules || []).some((r) => (r.ports || []).some(
      (p) => p.port === port.number || p.port === port.name));
    check(allows(np.spec.ingress, { number: ports.grpc, name: "grpc" }), w,
          `no ingress rule allows the gRPC port ${ports.grpc}`);
    const metricsRule = (np.spec.ingress || []).find((r) => (r.ports || []).some(
      (p) => p.port === ports.metrics || p.port === "metrics"));
    check(metricsRule && (metricsRule.from || []).length > 0 &&
          metricsRule.from.every((f) => f.namespaceSelector), w,
          `the metrics port ${ports.metrics} must be open only to selected (monitoring) namespaces`);
    if (replicated) {
      check((np.spec.policyTypes || []).includes("Egress"), w,
            "replicated mode: policyTypes must include Egress (PostgreSQL, S3, DNS only)");
      check((np.spec.egress || []).some((r) => (r.ports || []).some((p) => p.port === 53)), w,
            "egress must allow DNS (port 53)");
      check((np.spec.egress || []).some((r) => (r.ports || []).some((p) => p.port !== 53)), w,
            "egress must allow PostgreSQL");
    }
  }
  const scraped = services.find((s) => (s.spec.ports || []).some((p) => p.name === "metrics"));
  for (const sm of objects.filter((o) => o.kind === "ServiceMonitor")) {
    const w = `${label}: ServiceMonitor/${sm.metadata.name}`;
    if (check(scraped, w, "no Service has a port named metrics")) {
      check(selectsLabels(sm.spec.selector, scraped.metadata.labels || {}), w,
            `its selector does not select Service ${scraped.metadata.name}`);
    }
    check((sm.spec.endpoints || []).length > 0 &&
          sm.spec.endpoints.every((e) => e.port === "metrics" && (e.path || "/metrics") ===
                                         "/metrics"), w,
          "its endpoints must scrape the port named metrics at /metrics");
  }
  const limits = (container.resources || {}).limits || {};
  const requests = (container.resources || {}).requests || {};
  for (const [name, count] of Object.entries(limits)) {
    if (!/gpu/.test(name)) continue;
    check(requests[name] === undefined || String(requests[name]) === String(count),
          `${label}: ${workload.kind}/${workload.metadata.name}`,
          `${name}: requests must equal limits (an extended resource is not overcommitted)`);
  }
}

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
    } else if (e.valueFrom && e.valueFrom.secretKeyRef) {
      // A Secret's value: a stand-in of the right form for the server checks.
      env[e.name] = e.name === "MIA_STORE" ? STORE_STAND_IN
                                           : `secret-${e.valueFrom.secretKeyRef.name}`;
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
  const workloads = objects.filter((o) => o.kind === "StatefulSet" || o.kind === "Deployment");
  if (!check(workloads.length === 1, label, "expected one StatefulSet (mode single) or one " +
             `Deployment (mode replicated), found ${workloads.length}`)) {
    return null;
  }
  const sts = workloads[0];
  const replicated = sts.kind === "Deployment";
  const where = `${label}: ${sts.kind}/${sts.metadata.name}`;
  const pod = sts.spec.template.spec;
  if (!replicated) {
    check(sts.spec.replicas === 1, where,
          "replicas must be 1 (the job store is SQLite on one volume; more replicas: mode " +
          "replicated, a Deployment on PostgreSQL)");
  }
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
  if (!replicated) {
    const governing = services.find((s) => s.metadata.name === sts.spec.serviceName);
    if (check(governing, where, `serviceName ${sts.spec.serviceName} is not among the Services`)) {
      check(governing.spec.clusterIP === "None", where, `Service ${governing.metadata.name} ` +
            "(the serviceName) must be headless");
    }
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
  const dataMount = mounts.find((m) => m.mountPath === eff("data_dir"));
  if (replicated) {
    // Nothing durable in the pod: the store and the artifact store hold it.
    const volume = dataMount && (pod.volumes || []).find((v) => v.name === dataMount.name);
    check(dataMount && !dataMount.readOnly && volume && volume.emptyDir, where,
          `data_dir ${eff("data_dir")} must be a read-write emptyDir mount in replicated mode`);
  } else {
    const claimNames = (sts.spec.volumeClaimTemplates || []).map((t) => t.metadata.name);
    check(dataMount && claimNames.includes(dataMount.name) && !dataMount.readOnly, where,
          `data_dir ${eff("data_dir")} must be a read-write mount of a volumeClaimTemplate`);
  }
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
  // Flags: authentication files from Secrets (both modes); replicated mode's
  // stores, replica id, drain and scaling.
  const flags = containerFlags(container, where);
  if (flags.auth_tokens_file) {
    checkSecretFile(pod, container, "auth_tokens_file", flags.auth_tokens_file, where, true);
  }
  if (flags.auth_jwt_keys) {
    checkSecretFile(pod, container, "auth_jwt_keys", flags.auth_jwt_keys, where, false);
  }
  const authOn = Boolean(flags.auth_tokens_file || flags.auth_jwt_keys ||
                         eff("auth_tokens_file") || eff("auth_jwt_keys"));
  check(!eff("dashboard") || eff("dashboard") === "false" || authOn, where,
        "dashboard needs authentication (auth_tokens_file or auth_jwt_keys) in the deploy configs");
  if (replicated) {
    checkReplicated(objects, sts, container, flags, drain, label);
  } else {
    const cluster = Object.keys(flags).filter((k) => ["store", "replica_id", "artifact_store",
                                                      "s3_endpoint", "s3_region"].includes(k));
    check(cluster.length === 0 && !envVar(container, "MIA_STORE"), where,
          `${cluster.map((k) => `--${k}`).join(", ") || "MIA_STORE"}: replicated mode's ` +
          "settings on the one-replica StatefulSet");
  }
  checkAround(objects, sts, container, ports, services, label);
  const probes = tls ? "TCP, as the gRPC port serves TLS" : `readiness ${READINESS_SERVICE}`;
  note(`${label}: ports, probes (${probes}), mounts, security context, services and the ` +
       `drain timeout agree${replicated ? "; the store, artifact store, replica id, preStop, " +
       "disruption budget and autoscaling of mode replicated too" : ""}`);
  return { text: cfg.text, env: cfg.env, args: container.args || [], podEnv: container.env || [],
           name: `${label} ${cfg.name}` };
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
// The container's flags for a local run: $(VAR) expanded (the pod's name
// for POD_NAME), files of Secrets and the artifact folder replaced by
// stand-ins in `dir`.
function serverArgs(cfg, dir) {
  const vars = {};
  for (const e of cfg.podEnv || []) {
    if (e.value !== undefined) vars[e.name] = String(e.value);
    else if (e.valueFrom && e.valueFrom.fieldRef) vars[e.name] = "mia-server-5d8f9c7b6-x2x4q";
    else if (e.valueFrom && e.valueFrom.secretKeyRef) vars[e.name] = "stand-in";
  }
  const standIns = {
    auth_tokens_file: ["tokens.yaml", "tokens: []\n"],
    auth_jwt_keys: ["jwt-keys", null],
  };
  return (cfg.args || []).map((arg) => {
    const expanded = String(arg).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
                                         (m, name) => (name in vars ? vars[name] : m));
    const m = /^--([a-z0-9_]+)=(.*)$/.exec(expanded);
    if (!m) return expanded;
    if (m[1] in standIns) {
      const [name, content] = standIns[m[1]];
      let file = path.join(dir, name);
      if (content !== null) {
        fs.writeFileSync(file, content);
      } else {
        // A verification key: an RSA public key (PEM), or a JWKS for .json.
        file = m[2].endsWith(".json") ? `${file}.json` : `${file}.pem`;
        const key = path.join(dir, "jwt-private.pem");
        childProcess.spawnSync("openssl", ["genpkey", "-algorithm", "RSA", "-out", key]);
        const pub = childProcess.spawnSync("openssl", ["pkey", "-in", key, "-pubout"],
                                           { encoding: "utf8" });
        fs.writeFileSync(file, file.endsWith(".json") ? '{"keys": []}\n' : pub.stdout || "");
      }
      return `--${m[1]}=${file}`;
    }
    if (m[1] === "artifact_store" && m[2].startsWith("/")) {
      fs.mkdirSync(path.join(dir, "artifacts"), { recursive: true });
      return `--artifact_store=${path.join(dir, "artifacts")}`;
    }
    return expanded;
  });
}

function checkConfigWithServer(cfg) {
  const where = `mia-server accepts ${cfg.name}`;
  // Settings this server does not have yet: nothing to run it with.
  const used = (cfg.args || []).map((a) => (/^--([a-z0-9_]+)=/.exec(String(a)) || [])[1])
    .concat(cfg.env.MIA_STORE !== undefined ? ["store"] : []);
  const awaited = used.filter((k) => CLUSTER_KEYS.includes(k) && !SERVER_KEYS.includes(k));
  if (awaited.length > 0) {
    note(`${where}: SKIPPED, this mia-server has no ${awaited.map((k) => `--${k}`).join(", ")} ` +
         "yet (server/server_config.cc); the chart's side of them was checked above");
    return true;
  }
  const dir = tempDir();
  try {
    const file = path.join(dir, "config.yaml");
    fs.writeFileSync(file, cfg.text);
    fs.writeFileSync(path.join(dir, "blocker"), "");
    const env = serverEnv(Object.assign({}, cfg.env, {
      MIA_CONFIG: file, MIA_DATA_DIR: path.join(dir, "blocker", "data"),
    }, tlsStandIns(cfg, dir)));
    const r = childProcess.spawnSync(args.server, serverArgs(cfg, dir),
                                     { env, encoding: "utf8", timeout: 60000 });
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
  // The keys the chart derives: one list in values.schema.json (config's
  // propertyNames), which the template's list must equal.
  const schema = JSON.parse(fs.readFileSync(path.join(chartDir, "values.schema.json"), "utf8"));
  const reserved = ((((schema.properties || {}).config || {}).propertyNames || {}).not || {}).enum ||
                   [];
  const helpers = fs.readFileSync(path.join(chartDir, "templates", "_helpers.tpl"), "utf8");
  const templateList = /range \$key := list ((?:"[a-z0-9_]+" ?)+)/.exec(helpers);
  const derivedInTemplate = templateList ? [...templateList[1].matchAll(/"([a-z0-9_]+)"/g)]
    .map((m) => m[1]) : [];
  check(JSON.stringify([...reserved].sort()) === JSON.stringify([...derivedInTemplate].sort()) &&
        ["listen_address", "data_dir", "data_roots", "metrics_port", ...TLS_KEYS]
          .every((k) => reserved.includes(k)), where,
        "the derived keys of values.schema.json (config.propertyNames) and of _helpers.tpl's " +
        `mia.config differ: ${reserved.join(",")} vs ${derivedInTemplate.join(",")}`);
  check(reserved.every((k) => SERVER_KEYS.includes(k) || CLUSTER_KEYS.includes(k)), where,
        "values.schema.json derives keys mia-server does not have: " +
        reserved.filter((k) => !SERVER_KEYS.includes(k) && !CLUSTER_KEYS.includes(k)).join(", "));
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
  const preStop = values.mode === "replicated" ? Number(values.preStopSleepSeconds) : 0;
  check(values.terminationGracePeriodSeconds > drain + preStop, where,
        "values.yaml terminationGracePeriodSeconds must exceed drain_timeout_seconds " +
        `${drain}${preStop ? ` plus preStopSleepSeconds ${preStop}` : ""}`);
  check(values.mode === "single" && config.dashboard === false, where,
        "values.yaml: the defaults are mode single and config.dashboard false");
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

// ------------------------------------------------ 5. values.schema.json

// Helm's merge of a values file over values.yaml: maps merge, the rest
// (lists included) is replaced; null deletes the key.
function mergeValues(base, over) {
  const out = Object.assign({}, base);
  for (const [k, v] of Object.entries(over || {})) {
    if (v === null) delete out[k];
    else if (v && typeof v === "object" && !Array.isArray(v) && out[k] &&
             typeof out[k] === "object" && !Array.isArray(out[k])) out[k] = mergeValues(out[k], v);
    else out[k] = v;
  }
  return out;
}

function schemaErrorText(e) {
  const p = e.params || {};
  const extra = p.additionalProperty ? ` (${p.additionalProperty})`
    : p.allowedValues ? ` (${p.allowedValues.join(", ")})` : "";
  return `${e.instancePath || "/"}: ${e.message}${extra}`;
}

// The schema node that types `pathParts` (keys of values.yaml), following
// $ref, properties, additionalProperties and items; null when none does.
function schemaAt(schema, root, pathParts) {
  let node = schema;
  const deref = (n) => {
    while (n && n.$ref) {
      n = n.$ref.replace(/^#\//, "").split("/").reduce((o, k) => (o || {})[k], root);
    }
    return n;
  };
  node = deref(node);
  for (const part of pathParts) {
    if (!node) return null;
    if (typeof part === "number") node = deref(node.items);
    else if (node.properties && node.properties[part]) node = deref(node.properties[part]);
    else if (node.additionalProperties && typeof node.additionalProperties === "object") {
      node = deref(node.additionalProperties);
    } else return null;
  }
  return node;
}

function checkValuesSchema(chartDir) {
  const where = "helm chart values.schema.json";
  let Ajv;
  try {
    Ajv = moduleRequire("ajv");
  } catch (e) {
    fail(where, `ajv (a dependency of kubernetes-models) not found in ${args.modules}`);
    return;
  }
  const schema = JSON.parse(fs.readFileSync(path.join(chartDir, "values.schema.json"), "utf8"));
  const ajv = new (Ajv.default || Ajv)({ allErrors: true, strict: false });
  let validate;
  try {
    validate = ajv.compile(schema);
  } catch (e) {
    fail(where, `not a valid JSON schema: ${e.message}`);
    return;
  }
  const values = YAML.parse(fs.readFileSync(path.join(chartDir, "values.yaml"), "utf8"));
  // Every value of values.yaml has a type in the schema.
  const untyped = [];
  const walk = (v, parts) => {
    const node = schemaAt(schema, schema, parts);
    if (!node || (!node.type && !node.enum && !node.const)) untyped.push(`/${parts.join("/")}`);
    if (v && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        walk(child, [...parts, Array.isArray(v) ? Number(k) : k]);
      }
    }
  };
  for (const [k, v] of Object.entries(values)) walk(v, [k]);
  check(untyped.length === 0, where, `values without a type in the schema: ${untyped.join(", ")}`);
  const validOnes = [["values.yaml", {}]];
  for (const f of fs.readdirSync(path.join(chartDir, "ci")).filter((f) => /-values\.yaml$/.test(f))) {
    validOnes.push([`ci/${f}`, YAML.parse(fs.readFileSync(path.join(chartDir, "ci", f), "utf8"))]);
  }
  for (const [name, over] of validOnes) {
    const ok = validate(mergeValues(values, over));
    check(ok, where, `${name} does not validate: ` +
          (validate.errors || []).map(schemaErrorText).join("; "));
  }
  const invalidDir = path.join(args.repo, "deploy", "testdata", "helm-values-invalid");
  const invalid = fs.existsSync(invalidDir)
    ? fs.readdirSync(invalidDir).filter((f) => /\.yaml$/.test(f)).sort() : [];
  check(invalid.length > 0, where, `no samples in ${invalidDir}`);
  let templateOnly = 0;
  for (const f of invalid) {
    const text = fs.readFileSync(path.join(invalidDir, f), "utf8");
    const expect = (/^# expect: (.+)$/m.exec(text) || [])[1];
    // Refused by the templates only (validate.sh renders it): no schema error expected.
    if (!expect && /^# render-fails: /m.test(text)) {
      ++templateOnly;
      continue;
    }
    if (!check(expect, where, `testdata/helm-values-invalid/${f} has no "# expect:" line`)) continue;
    const ok = validate(mergeValues(values, YAML.parse(text)));
    const errors = (validate.errors || []).map(schemaErrorText);
    check(!ok && errors.some((e) => e.includes(expect.trim())), where,
          `testdata/helm-values-invalid/${f} must be refused for "${expect.trim()}"; ` +
          (ok ? "it validates" : `the errors: ${errors.join("; ")}`));
  }
  note(`${where}: every value typed; values.yaml and ${validOnes.length - 1} ci values ` +
       `valid; ${invalid.length - templateOnly} invalid samples refused for their reasons ` +
       `(${templateOnly} more that only the templates refuse: validate.sh renders them)`);
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

  // The replicated overlay: its own files (hpa.yaml, the alternative to
  // scaledobject.yaml, included) against the schemas, and its kustomization
  // naming the base and each of them.
  const rdir = path.join(args.repo, "deploy", "kubernetes-replicated");
  const rfiles = fs.readdirSync(rdir).filter((f) => /\.ya?ml$/.test(f)).sort();
  const overlay = {};
  let rkustomization = null;
  let rtext = "";
  for (const f of rfiles) {
    const text = fs.readFileSync(path.join(rdir, f), "utf8");
    const docs = parseDocuments(text, `kubernetes-replicated/${f}`);
    if (f === "kustomization.yaml") {
      rkustomization = docs[0];
      rtext = text;
    } else overlay[f] = docs;
  }
  console.log("== deploy/kubernetes-replicated: schemas");
  validateObjects([].concat(...Object.values(overlay)), "kubernetes-replicated");
  if (check(rkustomization, "kubernetes-replicated", "kustomization.yaml is missing")) {
    const listed = rkustomization.resources || [];
    const where = "kubernetes-replicated/kustomization.yaml";
    check(listed.includes("../kubernetes"), where, "its base ../kubernetes is not a resource");
    for (const f of Object.keys(overlay)) {
      check(listed.includes(f) || new RegExp(`^\\s*#\\s*- ${f.replace(".", "\\.")}\\b`, "m")
        .test(rtext), where, `${f} is neither a resource nor a commented alternative`);
    }
    check(listed.filter((r) => r !== "../kubernetes").every((r) => r in overlay), where,
          "a resource names a file that is not in the folder");
  }

  for (const spec of args.rendered) {
    const [label, file] = spec.split("=");
    console.log(`== ${label}: schemas and cross-checks of the rendered objects`);
    const rendered = parseDocuments(fs.readFileSync(file, "utf8"), label);
    validateObjects(rendered, label);
    const rcfg = crossCheck(rendered, label);
    if (rcfg && args.server) checkConfigWithServer(rcfg);
    if (label === "kustomize-replicated" && overlay["hpa.yaml"]) {
      // The overlay with hpa.yaml instead of scaledobject.yaml.
      console.log(`== ${label} with hpa.yaml: cross-checks`);
      crossCheck(rendered.filter((o) => o.kind !== "ScaledObject" &&
                                        o.kind !== "TriggerAuthentication")
        .concat(overlay["hpa.yaml"]), `${label}+hpa`);
    }
  }

  console.log("== Dockerfile");
  checkDockerfile();

  console.log("== deploy/helm/mia: values");
  const helmCfg = helmValuesConfig(path.join(args.repo, "deploy", "helm", "mia"));
  checkValuesSchema(path.join(args.repo, "deploy", "helm", "mia"));

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
