// deploy/k8s without a cluster: every manifest is checked against the Kubernetes schemas
// (kubernetes-models: types, required fields, enums) and type-checked against its TypeScript
// interfaces (which also rejects unknown fields, which the schemas let through), and the facts that
// span files are checked: the sidecar's flags exist, ports and probes agree with them, the
// termination grace covers the drain, selectors match the pods, and the HPA's metric is one the
// server exposes. The last part runs the real `pairpref serve` with the manifest's own args.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { credentials, loadPackageDefinition, type ChannelCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import ts from 'typescript';
import { parse, parseAllDocuments } from 'yaml';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { freePort } from '../helpers/net.ts';
import { killChildren, spawnServe, type ServeChild } from '../helpers/serve-child.ts';

const K8S_DIR = fileURLToPath(new URL('../../deploy/k8s/', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/pairpref.mjs', import.meta.url));
/** Files in deploy/k8s that are not meant for `kubectl apply -k` (see kustomization.yaml). */
const NOT_IN_KUSTOMIZATION = ['prometheus-adapter/adapter-rules.yaml'];
/** Time the app container may take to exit before the sidecar is stopped, within the same grace. */
const APP_SHUTDOWN_MARGIN_MS = 10_000;
/** A 9B model loads for minutes: the startup probe must allow at least this long. */
const MIN_STARTUP_WINDOW_S = 600;

type Obj = Record<string, unknown>;

interface Manifest {
  /** Path under deploy/k8s, and the document's index in the file. */
  readonly file: string;
  readonly index: number;
  readonly doc: Obj;
}

interface ModelClass {
  new (data: never): { validate(): void };
}

/** apiVersion/kind -> the kubernetes-models class that validates it and the interface that types it. */
const MODELS: Record<string, { model: ModelClass; module: string; iface: string }> = {
  'apps/v1/Deployment': { model: Deployment as unknown as ModelClass, module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  'v1/Service': { model: Service as unknown as ModelClass, module: 'kubernetes-models/v1/Service', iface: 'IService' },
  'v1/ConfigMap': { model: ConfigMap as unknown as ModelClass, module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'policy/v1/PodDisruptionBudget': { model: PodDisruptionBudget as unknown as ModelClass, module: 'kubernetes-models/policy/v1/PodDisruptionBudget', iface: 'IPodDisruptionBudget' },
  'autoscaling/v2/HorizontalPodAutoscaler': {
    model: HorizontalPodAutoscaler as unknown as ModelClass,
    module: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
    iface: 'IHorizontalPodAutoscaler',
  },
};

// ---- reading the manifests -----------------------------------------------------------------

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(name)) out.push(relative(K8S_DIR, path));
  }
  return out;
}

function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of yamlFiles(K8S_DIR)) {
    if (file === 'kustomization.yaml') continue;
    const docs = parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8'));
    assert.ok(Array.isArray(docs), `${file}: not a YAML stream`);
    docs.forEach((d, index) => {
      assert.deepEqual([...d.errors, ...d.warnings].map((e) => e.message), [], `${file}#${index}: YAML errors`);
      const doc = d.toJS() as unknown;
      if (doc === null) return;
      assert.ok(isObj(doc), `${file}#${index}: not a mapping`);
      out.push({ file, index, doc });
    });
  }
  return out;
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const typeKey = (doc: Obj): string => `${String(doc['apiVersion'])}/${String(doc['kind'])}`;
const clone = <T>(v: T): T => structuredClone(v);

// ---- the strict type check -----------------------------------------------------------------

/**
 * Type-checks every manifest as an object literal against its kubernetes-models interface, in
 * memory. Excess property checks reject unknown fields (a misspelled `readinesProbe` would
 * otherwise be dropped by the API server without a word); the schemas' validate() accepts them.
 * Returns one line per diagnostic, naming the manifest.
 */
function typeCheck(manifests: readonly Manifest[]): string[] {
  const root = fileURLToPath(new URL('./__k8s_manifests__.ts', import.meta.url));
  const lines: string[] = [];
  const owners: string[] = [];
  const kinds = [...new Set(manifests.map((m) => typeKey(m.doc)))];
  for (const [i, k] of kinds.entries()) {
    const entry = MODELS[k];
    assert.ok(entry, `no kubernetes-models class registered for ${k}`);
    lines.push(`import type { ${entry.iface} as T${i} } from '${entry.module}';`);
    owners.push('(imports)');
  }
  for (const [n, m] of manifests.entries()) {
    lines.push(`export const m${n}: T${kinds.indexOf(typeKey(m.doc))} = ${JSON.stringify(m.doc)};`);
    owners.push(`${m.file}#${m.index}`);
  }
  const text = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
    lib: ['lib.es2022.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (f, lang, ...rest) => (f === root ? ts.createSourceFile(f, text, lang) : getSourceFile.call(host, f, lang, ...rest));
  host.fileExists = (f) => f === root || fileExists.call(host, f);
  host.readFile = (f) => (f === root ? text : readFile.call(host, f));
  const program = ts.createProgram([root], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    return `${owners[line] ?? d.file?.fileName ?? '?'}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

// ---- pairpref serve's flags ----------------------------------------------------------------

/** Every --flag `pairpref serve --help` lists. */
function serveFlags(): Set<string> {
  const help = execFileSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' });
  const flags = new Set<string>();
  for (const line of help.split('\n')) {
    const m = /^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)/.exec(line);
    if (m) flags.add(m[1] as string);
  }
  assert.ok(flags.has('--port') && flags.has('--drain-grace-ms'), `serve --help parsed: ${[...flags].join(' ')}`);
  return flags;
}

/** `--flag value` / `--flag=value` / a bare `--flag` -> flag -> value ('' for a bare flag). */
function parseArgs(args: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(0, eq), a.slice(eq + 1));
    else if (i + 1 < args.length && !(args[i + 1] as string).startsWith('--')) out.set(a, args[++i] as string);
    else out.set(a, '');
  }
  return out;
}

/** The args without `serve`, with the model, host and ports swapped for a test run; every other flag as deployed. */
function argsForTest(args: readonly string[], swap: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const [flag, value] of parseArgs(args)) out.push(flag, ...(flag in swap ? [swap[flag] as string] : value === '' ? [] : [value]));
  return out;
}

// ---- the facts across files ----------------------------------------------------------------

interface Pod {
  readonly deployment: Obj;
  readonly spec: Obj;
  readonly labels: Obj;
  readonly annotations: Obj;
  readonly sidecar: Obj;
  readonly app: Obj[];
}

function only(manifests: readonly Manifest[], kind: string, problems: string[]): Obj | null {
  const found = manifests.filter((m) => m.doc['kind'] === kind);
  if (found.length !== 1) {
    problems.push(`expected one ${kind}, found ${found.length}`);
    return null;
  }
  return (found[0] as Manifest).doc;
}

function podOf(manifests: readonly Manifest[], problems: string[]): Pod | null {
  const deployment = only(manifests, 'Deployment', problems);
  if (!deployment) return null;
  const template = obj(obj(deployment['spec'])['template']);
  const spec = obj(template['spec']);
  const meta = obj(template['metadata']);
  const all = [...arr(spec['initContainers']), ...arr(spec['containers'])].map(obj);
  const sidecar = all.find((c) => c['name'] === 'pairpref');
  if (!sidecar) {
    problems.push('no container named pairpref in the Deployment');
    return null;
  }
  return { deployment, spec, labels: obj(meta['labels']), annotations: obj(meta['annotations']), sidecar, app: arr(spec['containers']).map(obj).filter((c) => c !== sidecar) };
}

/** Every key/value of the selector is among the labels (an empty selector matches nothing here). */
function selects(selector: unknown, labels: Obj): boolean {
  const entries = Object.entries(obj(selector));
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

const num = (v: string | undefined): number => (v === undefined || v === '' ? NaN : Number(v));

/** What the cross-file checks found wrong ([] when nothing), and what the runtime check needs. */
function crossFileProblems(manifests: readonly Manifest[], flags: ReadonlySet<string>): { problems: string[]; metricNames: string[]; probeServices: string[] } {
  const problems: string[] = [];
  const metricNames: string[] = [];
  const probeServices: string[] = [];
  for (const m of manifests) {
    if (obj(m.doc['metadata'])['namespace'] !== undefined) problems.push(`${m.file}: names a namespace (the layout is namespace-agnostic)`);
  }
  const pod = podOf(manifests, problems);
  if (!pod) return { problems, metricNames, probeServices };
  const { sidecar, spec, labels } = pod;

  // `serve` then flags (the image's entrypoint is `pairpref`); the flags exist, and the ones this layout depends on are set.
  const rawArgs = arr(sidecar['args']).map(String);
  if (rawArgs[0] !== 'serve') problems.push(`sidecar args start with ${JSON.stringify(rawArgs[0])}, not "serve"`);
  const positional = rawArgs.filter((a, i) => i > 0 && !a.startsWith('--') && !(rawArgs[i - 1] as string).startsWith('--'));
  if (positional.length > 0) problems.push(`sidecar args have stray words ${JSON.stringify(positional)}`);
  const args = parseArgs(rawArgs);
  for (const f of args.keys()) if (!flags.has(f)) problems.push(`sidecar arg ${f} is not a flag of pairpref serve`);
  for (const f of ['--host', '--port', '--health-port', '--metrics-port', '--drain-grace-ms', '--drain-timeout-ms', '--max-connection-age-ms']) {
    if (!args.has(f)) problems.push(`sidecar args lack ${f}`);
  }
  const host = args.get('--host') ?? '127.0.0.1';
  if (['localhost', '::1', '[::1]'].includes(host) || /^127\./.test(host)) {
    problems.push('sidecar --host is loopback: kubelet probes and the headless Service reach the pod IP');
  }
  if (!(num(args.get('--max-connection-age-ms')) > 0)) problems.push('--max-connection-age-ms must be > 0 so clients of the headless Service re-resolve');

  // Container ports agree with the flags.
  const port = num(args.get('--port'));
  const healthPort = num(args.get('--health-port'));
  const metricsPort = num(args.get('--metrics-port'));
  const ports = new Map(arr(sidecar['ports']).map(obj).map((p) => [String(p['name']), p['containerPort']]));
  for (const [name, want] of [['grpc', port], ['health', healthPort], ['metrics', metricsPort]] as const) {
    if (ports.get(name) !== want) problems.push(`sidecar containerPort "${name}" is ${String(ports.get(name))}, its flag says ${want}`);
  }

  // Probes: gRPC health on the plaintext health port, sized for a model that loads for minutes.
  for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const probe = obj(sidecar[kind]);
    const grpc = obj(probe['grpc']);
    if (!isObj(sidecar[kind]) || !isObj(probe['grpc'])) {
      problems.push(`sidecar ${kind} is missing or not a grpc probe`);
      continue;
    }
    if (grpc['port'] !== healthPort) problems.push(`sidecar ${kind} probes port ${String(grpc['port'])}, --health-port is ${healthPort}`);
    probeServices.push(String(grpc['service'] ?? ''));
  }
  const startup = obj(sidecar['startupProbe']);
  const startupWindowS = Number(startup['periodSeconds'] ?? 10) * Number(startup['failureThreshold'] ?? 3);
  if (!(startupWindowS >= MIN_STARTUP_WINDOW_S)) problems.push(`startup probe allows ${startupWindowS} s, less than ${MIN_STARTUP_WINDOW_S} s for a large model to load`);
  const progressDeadline = Number(obj(pod.deployment['spec'])['progressDeadlineSeconds'] ?? 600);
  if (!(progressDeadline > startupWindowS)) problems.push(`progressDeadlineSeconds ${progressDeadline} does not outlast the startup probe's ${startupWindowS} s`);

  // Native sidecar: in initContainers it must be restartable, or the app would never start.
  if (arr(spec['initContainers']).includes(sidecar) && sidecar['restartPolicy'] !== 'Always') {
    problems.push('pairpref is an init container without restartPolicy: Always (a native sidecar needs it)');
  }

  // Termination grace covers the drain, with room for the app to stop first.
  const graceMs = num(args.get('--drain-grace-ms'));
  const timeoutMs = num(args.get('--drain-timeout-ms'));
  const tgpsMs = Number(spec['terminationGracePeriodSeconds'] ?? 30) * 1000;
  if (!(tgpsMs >= graceMs + timeoutMs + APP_SHUTDOWN_MARGIN_MS)) {
    problems.push(`terminationGracePeriodSeconds (${tgpsMs / 1000} s) must cover --drain-grace-ms + --drain-timeout-ms (${graceMs + timeoutMs} ms) + ${APP_SHUTDOWN_MARGIN_MS} ms for the app`);
  }

  // Resources on every container; whole CPUs for the sidecar (its thread default rounds the quota down).
  for (const c of [sidecar, ...pod.app]) {
    const r = obj(c['resources']);
    for (const part of ['requests', 'limits']) for (const res of ['cpu', 'memory']) {
      if (obj(r[part])[res] === undefined) problems.push(`container ${String(c['name'])} has no resources.${part}.${res}`);
    }
  }
  const cpuLimit = String(obj(obj(sidecar['resources'])['limits'])['cpu']);
  if (!/^[1-9]\d*$/.test(cpuLimit)) problems.push(`sidecar CPU limit ${cpuLimit} is not a whole number of CPUs`);
  if (obj(sidecar['securityContext'])['readOnlyRootFilesystem'] === true && !arr(sidecar['volumeMounts']).map(obj).some((v) => v['mountPath'] === '/tmp')) {
    problems.push('sidecar has a read-only root filesystem but no /tmp mount (tsx writes its cache there)');
  }

  // The app reaches its own sidecar on localhost, on the sidecar's port.
  const target = pod.app.flatMap((c) => arr(c['env']).map(obj)).find((e) => e['name'] === 'PAIRPREF_TARGET');
  if (target?.['value'] !== `127.0.0.1:${port}`) problems.push(`app env PAIRPREF_TARGET is ${String(target?.['value'])}, the sidecar listens on 127.0.0.1:${port}`);
  if (pod.annotations['prometheus.io/port'] !== String(metricsPort)) problems.push(`prometheus.io/port annotation ${String(pod.annotations['prometheus.io/port'])} is not --metrics-port ${metricsPort}`);

  // Selectors.
  const deploymentSelector = obj(obj(pod.deployment['spec'])['selector'])['matchLabels'];
  if (!selects(deploymentSelector, labels)) problems.push("the Deployment's selector does not match its pod labels");
  const service = only(manifests, 'Service', problems);
  if (service) {
    const s = obj(service['spec']);
    if (s['clusterIP'] !== 'None') problems.push('the Service is not headless (clusterIP: None)');
    if (!selects(s['selector'], labels)) problems.push("the Service's selector does not match the pod labels");
    for (const p of arr(s['ports']).map(obj)) {
      const target = ports.get(String(p['targetPort']));
      if (target === undefined) problems.push(`Service port ${String(p['name'])} targets "${String(p['targetPort'])}", not a sidecar port name`);
      // Headless: clients dial the pod IP with the Service's port, so the two must be equal.
      else if (p['port'] !== target) problems.push(`Service port ${String(p['name'])} is ${String(p['port'])} but the container port is ${String(target)}`);
    }
    if (!arr(s['ports']).map(obj).some((p) => p['port'] === port)) problems.push(`the Service does not publish the gRPC port ${port}`);
  }
  const pdb = only(manifests, 'PodDisruptionBudget', problems);
  if (pdb && !selects(obj(obj(pdb['spec'])['selector'])['matchLabels'], labels)) problems.push("the PodDisruptionBudget's selector does not match the pod labels");

  // The HPA scales this Deployment on metrics the adapter rule serves.
  const hpa = only(manifests, 'HorizontalPodAutoscaler', problems);
  if (hpa) {
    const h = obj(hpa['spec']);
    const ref = obj(h['scaleTargetRef']);
    if (ref['kind'] !== 'Deployment' || ref['apiVersion'] !== 'apps/v1' || ref['name'] !== obj(pod.deployment['metadata'])['name']) {
      problems.push(`the HPA targets ${String(ref['apiVersion'])} ${String(ref['kind'])} ${String(ref['name'])}, not the Deployment`);
    }
    const adapter = manifests.find((m) => m.doc['kind'] === 'ConfigMap' && obj(m.doc['data'])['config.yaml'] !== undefined);
    const rules = arr(obj(parse(String(obj(adapter?.doc['data'])['config.yaml'] ?? '{}')))['rules']).map(obj);
    const served = new Set(rules.map((r) => String(obj(r['name'])['as'])));
    for (const mt of arr(h['metrics']).map(obj).filter((x) => x['type'] === 'Pods')) {
      const name = String(obj(obj(mt['pods'])['metric'])['name']);
      metricNames.push(name);
      if (!served.has(name)) problems.push(`the HPA's metric ${name} is not served by any prometheus-adapter rule`);
    }
    for (const r of rules) {
      const series = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(String(r['seriesQuery']))?.[0];
      if (series) metricNames.push(series);
    }
  }
  return { problems, metricNames: [...new Set(metricNames)], probeServices: [...new Set(probeServices)] };
}

// ---- the image the Deployment runs -------------------------------------------------------------

const DOCKERFILE = fileURLToPath(new URL('../../Dockerfile', import.meta.url));

/** The last ENTRYPOINT (exec form) and USER, and the COPY destinations, of a Dockerfile. */
function imageFacts(text: string): { entrypoint: string[]; user: string | null; copiedTo: string[] } {
  const joined = text.replace(/\\\n/g, ' ');
  const last = (re: RegExp): string | null => [...joined.matchAll(re)].at(-1)?.[1] ?? null;
  const json = (v: string | null): string[] => (v ? (JSON.parse(v) as string[]) : []);
  return {
    entrypoint: json(last(/^ENTRYPOINT\s+(\[.*\])\s*$/gm)),
    user: last(/^USER\s+(\S+)\s*$/gm),
    copiedTo: [...joined.matchAll(/^COPY\s+(?:--\S+\s+)*.*\s(\S+)\s*$/gm)].map((m) => (m[1] as string).replace(/\/$/, '')),
  };
}

/** The Deployment against the image: the command it ends up running, the user, the model path. */
function imageProblems(manifests: readonly Manifest[], dockerfile: string): string[] {
  const problems: string[] = [];
  const pod = podOf(manifests, problems);
  if (!pod) return problems;
  const image = imageFacts(dockerfile);
  const command = [...(arr(pod.sidecar['command']).length > 0 ? arr(pod.sidecar['command']).map(String) : image.entrypoint), ...arr(pod.sidecar['args']).map(String)];
  const bin = command.findIndex((a) => /pairpref(\.mjs)?$/.test(a));
  if (bin < 0 || command[bin + 1] !== 'serve') problems.push(`the container would run ${JSON.stringify(command.slice(0, 6))}..., not pairpref serve`);
  const [uid, gid] = (image.user ?? '').split(':');
  const ctx = { ...obj(pod.spec['securityContext']), ...obj(pod.sidecar['securityContext']) };
  if (!/^\d+$/.test(uid ?? '')) problems.push(`the image's USER ${String(image.user)} is not numeric: runAsNonRoot cannot check it unless runAsUser is set`);
  else if (ctx['runAsUser'] !== undefined && ctx['runAsUser'] !== Number(uid)) problems.push(`runAsUser ${String(ctx['runAsUser'])} is not the image's user ${uid}`);
  if (gid !== undefined && ctx['runAsGroup'] !== undefined && ctx['runAsGroup'] !== Number(gid)) problems.push(`runAsGroup ${String(ctx['runAsGroup'])} is not the image's group ${gid}`);
  const model = parseArgs(arr(pod.sidecar['args']).map(String)).get('--model');
  const mounted = arr(pod.sidecar['volumeMounts']).map(obj).some((v) => model !== undefined && model.startsWith(`${String(v['mountPath']).replace(/\/$/, '')}/`));
  if (model !== undefined && !mounted && !image.copiedTo.includes(model)) problems.push(`--model ${model} is neither in the image (COPY destinations: ${image.copiedTo.join(' ')}) nor on a mounted volume`);
  return problems;
}

// ---- the health client for the runtime check -------------------------------------------------

type HealthClient = Client & {
  check(req: { service: string }, opts: { deadline: number }, cb: (err: ServiceError | null, res: { status: string }) => void): void;
};
const Health = (
  loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (address: string, creds: ChannelCredentials) => HealthClient } } };
  }
).grpc.health.v1.Health;

function check(h: HealthClient, service: string): Promise<string> {
  return new Promise((resolve) => h.check({ service }, { deadline: Date.now() + 5_000 }, (err, res) => resolve(err ? `error:${err.code}` : res.status)));
}

/** What the kubelet's startup probe does: Check until SERVING (or the child exits, or the time is up). */
async function untilServing(h: HealthClient, service: string, child: ServeChild, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end && child.proc.exitCode === null) {
    last = await check(h, service);
    if (last === 'SERVING') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`health never SERVING (last: ${last}); log:\n${child.log()}`);
}

// ---- tests ---------------------------------------------------------------------------------

const manifests = loadManifests();
const manifest = (kind: string): Manifest => {
  const m = manifests.find((x) => x.doc['kind'] === kind);
  assert.ok(m, `no ${kind} in deploy/k8s`);
  return m;
};
const sidecarOf = (doc: Obj): Obj => arr(obj(obj(obj(doc['spec'])['template'])['spec'])['initContainers']).map(obj).find((c) => c['name'] === 'pairpref') as Obj;

after(killChildren);

describe('deploy/k8s manifests', () => {
  test('every document validates against the Kubernetes schemas (kubernetes-models)', () => {
    const kinds = manifests.map((m) => `${m.file}: ${typeKey(m.doc)}`);
    for (const want of ['Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'ConfigMap']) {
      assert.ok(manifests.some((m) => m.doc['kind'] === want), `a ${want} in deploy/k8s (found ${kinds.join(', ')})`);
    }
    for (const m of manifests) {
      const entry = MODELS[typeKey(m.doc)];
      assert.ok(entry, `${m.file}#${m.index}: no kubernetes-models class registered for ${typeKey(m.doc)}`);
      assert.doesNotThrow(() => new entry.model(m.doc as never).validate(), `${m.file}#${m.index} (${typeKey(m.doc)})`);
    }
  });

  test('the validator rejects a broken manifest: a gRPC probe on a named port, a Deployment without a selector', () => {
    const d = clone(manifest('Deployment').doc);
    obj(obj(sidecarOf(d)['startupProbe'])['grpc'])['port'] = 'health'; // named ports work for httpGet, not for grpc probes
    assert.throws(() => new Deployment(d as never).validate(), /startupProbe\/grpc\/port must be integer/);
    const noSelector = clone(manifest('Deployment').doc);
    delete obj(noSelector['spec'])['selector'];
    assert.throws(() => new Deployment(noSelector as never).validate(), /must have required property '?selector'?/);
  });

  test('every document type-checks against its kubernetes-models interface (no unknown fields)', () => {
    assert.deepEqual(typeCheck(manifests), []);
  });

  test('the type check catches what the schemas let through: a misspelled field', () => {
    const d = clone(manifest('Deployment').doc);
    const sidecar = sidecarOf(d);
    sidecar['readinesProbe'] = sidecar['readinessProbe'];
    delete sidecar['readinessProbe'];
    assert.doesNotThrow(() => new Deployment(d as never).validate(), 'the JSON schemas allow unknown fields');
    const problems = typeCheck([{ file: 'deployment.yaml', index: 0, doc: d }]);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] as string, /^deployment\.yaml#0: .*'"?readinesProbe"?' does not exist in type 'IContainer'/);
  });

  test('kustomization.yaml lists every manifest meant for kubectl apply -k', () => {
    const k = parse(readFileSync(join(K8S_DIR, 'kustomization.yaml'), 'utf8')) as Obj;
    assert.equal(k['kind'], 'Kustomization');
    const listed = arr(k['resources']).map(String).sort();
    const files = [...new Set(manifests.map((m) => m.file))].filter((f) => !NOT_IN_KUSTOMIZATION.includes(f)).sort();
    assert.deepEqual(listed, files);
  });

  test('cross-file facts hold: flags, ports, probes, grace vs drain, selectors, HPA metric vs adapter rule', () => {
    const { problems, metricNames, probeServices } = crossFileProblems(manifests, serveFlags());
    assert.deepEqual(problems, []);
    assert.deepEqual(metricNames, ['pairpref_backlog_tokens']);
    assert.deepEqual(probeServices.sort(), ['', 'pairpref.v1.PairwisePreference']);
  });

  test('the cross-file checks fire on broken copies', () => {
    const flags = serveFlags();
    const breakWith = (edit: (docs: Manifest[]) => void): string[] => {
      const docs = manifests.map((m) => ({ ...m, doc: clone(m.doc) }));
      edit(docs);
      return crossFileProblems(docs, flags).problems;
    };
    const dep = (docs: Manifest[]): Obj => (docs.find((m) => m.doc['kind'] === 'Deployment') as Manifest).doc;
    const podSpec = (docs: Manifest[]): Obj => obj(obj(obj(dep(docs)['spec'])['template'])['spec']);
    const cases: Array<[string, (docs: Manifest[]) => void, RegExp]> = [
      ['grace shorter than the drain', (docs) => void (podSpec(docs)['terminationGracePeriodSeconds'] = 20), /terminationGracePeriodSeconds \(20 s\) must cover/],
      ['a flag serve does not have', (docs) => void arr(sidecarOf(dep(docs))['args']).push('--drain-grace', '1'), /--drain-grace is not a flag/],
      ['a probe on the main port', (docs) => void (obj(obj(sidecarOf(dep(docs))['readinessProbe'])['grpc'])['port'] = 50051), /readinessProbe probes port 50051, --health-port is 50052/],
      ['the Service selects other pods', (docs) => void (obj(obj((docs.find((m) => m.doc['kind'] === 'Service') as Manifest).doc['spec'])['selector'])['app.kubernetes.io/name'] = 'other'), /Service's selector does not match/],
      ['a Service port that differs from the pod port', (docs) => void (obj(arr(obj((docs.find((m) => m.doc['kind'] === 'Service') as Manifest).doc['spec'])['ports'])[0])['port'] = 80), /Service port grpc is 80 but the container port is 50051/],
      ['the PDB selects other pods', (docs) => void (obj(obj(obj((docs.find((m) => m.doc['kind'] === 'PodDisruptionBudget') as Manifest).doc['spec'])['selector'])['matchLabels'])['app.kubernetes.io/name'] = 'other'), /PodDisruptionBudget's selector/],
      ['an HPA metric no adapter rule serves', (docs) => void (obj(obj(obj(arr(obj((docs.find((m) => m.doc['kind'] === 'HorizontalPodAutoscaler') as Manifest).doc['spec'])['metrics'])[0])['pods'])['metric'])['name'] = 'pairpref_queue_tokens'), /pairpref_queue_tokens is not served/],
      ['a loopback host', (docs) => {
        const args = arr(sidecarOf(dep(docs))['args']);
        args[args.indexOf('--host') + 1] = '127.0.0.1';
      }, /--host is loopback/],
    ];
    for (const [what, edit, want] of cases) {
      const problems = breakWith(edit);
      assert.ok(problems.some((p) => want.test(p)), `${what}: expected ${want}, got ${JSON.stringify(problems)}`);
    }
  });

  test('the Deployment fits the image the Dockerfile builds: entrypoint + args run serve, the user, the model path', () => {
    assert.ok(existsSync(DOCKERFILE), 'the Dockerfile is missing');
    const dockerfile = readFileSync(DOCKERFILE, 'utf8');
    assert.deepEqual(imageProblems(manifests, dockerfile), []);
    // And the check fires: args without `serve` under an entrypoint of `pairpref`.
    const docs = manifests.map((m) => ({ ...m, doc: clone(m.doc) }));
    arr(sidecarOf((docs.find((m) => m.doc['kind'] === 'Deployment') as Manifest).doc)['args']).shift();
    assert.match(imageProblems(docs, dockerfile).join('\n'), /not pairpref serve/);
  });

  test("pairpref serve runs with the sidecar's args: probes answer SERVING, the HPA's metric is exposed, SIGTERM drains within the grace", async () => {
    const { metricNames, probeServices } = crossFileProblems(manifests, serveFlags());
    const deployment = manifest('Deployment').doc;
    const sidecar = sidecarOf(deployment);
    const deployedArgs = arr(sidecar['args']).map(String);
    const tmp = mkdtempSync(join(tmpdir(), 'pairpref-k8s-'));
    const bundle = writeFixtureBundle(tmp).dir;
    const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const swap = { '--model': bundle, '--host': '127.0.0.1', '--port': String(port), '--health-port': String(healthPort), '--metrics-port': String(metricsPort) };
    const child = spawnServe(argsForTest(deployedArgs, swap));
    const health = new Health(`127.0.0.1:${healthPort}`, credentials.createInsecure());
    try {
      await untilServing(health, 'pairpref.v1.PairwisePreference', child);
      for (const service of probeServices) assert.equal(await check(health, service), 'SERVING', `health Check for service "${service}" on the health port`);
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      for (const name of metricNames) assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'), `${name} on /metrics`);

      const graceMs = num(parseArgs(deployedArgs).get('--drain-grace-ms'));
      const tgpsMs = Number(obj(obj(obj(deployment['spec'])['template'])['spec'])['terminationGracePeriodSeconds']) * 1000;
      const sent = performance.now();
      child.proc.kill('SIGTERM');
      // During --drain-grace-ms the readiness probe's Check says NOT_SERVING, so the pod leaves the endpoints.
      await new Promise((r) => setTimeout(r, Math.min(500, graceMs / 4)));
      assert.equal(await check(health, 'pairpref.v1.PairwisePreference'), 'NOT_SERVING', 'readiness during the drain grace');
      const exit = await child.exited;
      assert.equal(exit.code, 0, child.log());
      assert.ok(exit.at - sent < tgpsMs, `exited ${Math.round(exit.at - sent)} ms after SIGTERM, within terminationGracePeriodSeconds`);
      assert.ok(exit.at - sent >= graceMs, 'did not exit before --drain-grace-ms had passed');
    } finally {
      health.close();
      child.proc.kill('SIGKILL');
      await child.exited;
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
