// deploy/kubernetes/ is validated, not only parsed: every object against the Kubernetes API schemas
// (kubernetes-models' validators: types, enums, required fields), and, since those schemas allow
// unknown fields, against the API's TypeScript types with excess-property checks, so a misspelt
// field (kubectl apply --validate=strict would refuse it) fails here too. Then what deploy/README.md
// promises of the manifests: one PVC per node, secrets as files, probes, the shared config, HAProxy's
// config identical to the tested deploy/haproxy/haproxy.cfg, and the DaemonSet's registry files.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service, type IContainer, type IPodSpec } from 'kubernetes-models/v1';
import { loadConfig, parseConfig } from '../../src/config/load.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = join(ROOT, 'deploy', 'kubernetes');

/** apiVersion/kind → the model class and the module that declares its I<Kind> interface. */
const MODELS: Record<string, { model: { new (data: never): { validate(): void } }; types: string }> = {
  'v1/Namespace': { model: Namespace, types: 'kubernetes-models/v1/Namespace' },
  'v1/ConfigMap': { model: ConfigMap, types: 'kubernetes-models/v1/ConfigMap' },
  'v1/Secret': { model: Secret, types: 'kubernetes-models/v1/Secret' },
  'v1/Service': { model: Service, types: 'kubernetes-models/v1/Service' },
  'apps/v1/StatefulSet': { model: StatefulSet, types: 'kubernetes-models/apps/v1/StatefulSet' },
  'apps/v1/Deployment': { model: Deployment, types: 'kubernetes-models/apps/v1/Deployment' },
  'apps/v1/DaemonSet': { model: DaemonSet, types: 'kubernetes-models/apps/v1/DaemonSet' },
  'policy/v1/PodDisruptionBudget': { model: PodDisruptionBudget, types: 'kubernetes-models/policy/v1/PodDisruptionBudget' },
};

interface Manifest { file: string; object: Record<string, any> } // eslint-disable-line @typescript-eslint/no-explicit-any

function load(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(DIR, file), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${file} is YAML`);
      out.push({ file, object: doc.toJS() as Record<string, unknown> });
    }
  }
  return out;
}

const manifests = load();
const find = (kind: string, name: string) => {
  const found = manifests.find((m) => m.object.kind === kind && m.object.metadata?.name === name);
  assert.ok(found, `${kind} ${name} exists`);
  return found.object;
};
const container = (spec: IPodSpec, name: string): IContainer => spec.containers.find((c) => c.name === name)!;

describe('Kubernetes manifests', () => {
  it('validate against the Kubernetes API schemas', () => {
    assert.ok(manifests.length >= 12);
    for (const { file, object } of manifests) {
      const entry = MODELS[`${object.apiVersion}/${object.kind}`];
      assert.ok(entry, `${file}: ${object.apiVersion} ${object.kind} is a known API type`);
      assert.doesNotThrow(() => new entry.model(object as never).validate(), `${file}: ${object.kind} ${object.metadata?.name}`);
    }
  });

  it('have no field the API does not know (excess-property check against the API types)', () => {
    const virtual = join(DIR, '__manifests__.ts');
    const lines = Object.values(MODELS).map(({ types }, i) => `import type { I${types.split('/').pop()} as T${i} } from '${types}';`);
    const index = new Map(Object.keys(MODELS).map((key, i) => [key, i]));
    manifests.forEach(({ object }, n) => {
      lines.push(`export const m${n}: T${index.get(`${object.apiVersion}/${object.kind}`)} = ${JSON.stringify(object)};`);
    });
    const source = lines.join('\n');
    const options: ts.CompilerOptions = { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [] };
    const host = ts.createCompilerHost(options);
    const readFile = host.readFile.bind(host);
    const getSourceFile = host.getSourceFile.bind(host);
    host.readFile = (f) => (f === virtual ? source : readFile(f));
    host.fileExists = (f) => f === virtual || ts.sys.fileExists(f);
    host.getSourceFile = (f, v, ...rest) => (f === virtual ? ts.createSourceFile(f, source, v) : getSourceFile(f, v, ...rest));
    const program = ts.createProgram([virtual], options, host);
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
      const n = where ? Number(/^export const m(\d+)/.exec(source.split('\n')[where.line] ?? '')?.[1]) : NaN;
      const m = manifests[n];
      return `${m ? `${m.file} ${m.object.kind} ${m.object.metadata?.name}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
    assert.deepEqual(errors, []);
  });

  it('kustomization.yaml lists every manifest but the secrets example', () => {
    const kustomization = parseAllDocuments(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
    const files = [...new Set(manifests.map((m) => m.file))].filter((f) => f !== 'secrets.example.yaml').sort();
    assert.deepEqual([...kustomization.resources].sort(), files);
  });

  it('the nodes: a StatefulSet with one PVC each, the shared config, secrets as files, probes, node names, enough grace to drain', () => {
    const sts = find('StatefulSet', 'longshore');
    assert.equal(sts.spec.serviceName, 'longshore');
    assert.equal(sts.spec.replicas, 3);
    assert.equal(sts.spec.volumeClaimTemplates.length, 1);
    const pod = sts.spec.template.spec as IPodSpec;
    const node = container(pod, 'longshore');
    assert.deepEqual(node.volumeMounts!.find((v) => v.name === sts.spec.volumeClaimTemplates[0].metadata.name)?.mountPath, '/data');
    assert.equal(node.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(node.readinessProbe?.httpGet?.path, '/readyz');
    assert.ok(node.resources?.requests?.cpu && node.resources.requests.memory && node.resources.limits?.memory);
    const env = Object.fromEntries(node.env!.map((e) => [e.name, e]));
    assert.equal(env.LONGSHORE_NODE_NAME?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
    assert.equal(env.LONGSHORE_DATA_DIR?.value, '/data');
    const secretVolume = pod.volumes!.find((v) => v.secret)!;
    assert.equal(secretVolume.secret!.secretName, 'longshore-secrets');
    assert.ok(!JSON.stringify(node.env).includes('secretKeyRef'), 'secrets are files, not environment variables');

    // The config every node runs parses, and reads its secrets from the mounted Secret.
    const raw = JSON.parse(find('ConfigMap', 'longshore-config').data['config.json']);
    const secretDir = node.volumeMounts!.find((v) => v.name === secretVolume.name)!.mountPath;
    assert.equal(raw.upstreams['docker.io'].passwordFile, `${secretDir}/dockerhub-password`);
    assert.equal(raw.auth.signingKeyFile, `${secretDir}/token-signing-key.pem`);
    const example = find('Secret', 'longshore-secrets');
    assert.deepEqual(Object.keys(example.stringData).sort(), ['dockerhub-password', 'token-signing-key.pem']);
    delete raw.upstreams['docker.io'].passwordFile;
    const config = parseConfig({ ...raw, upstreams: { 'docker.io': { ...raw.upstreams['docker.io'], password: 'x' } } });
    assert.ok(config.drainDelay > 0, 'nodes drain before they refuse connections');
    assert.ok(pod.terminationGracePeriodSeconds! * 1000 > config.drainDelay + config.shutdownGrace, 'SIGKILL comes after drainDelay + shutdownGrace');
    assert.deepEqual(config.local.prefixes, ['team/']);

    const headless = find('Service', 'longshore');
    assert.equal(headless.spec.clusterIP, 'None');
    assert.equal(headless.spec.publishNotReadyAddresses, true, 'a draining node stays resolvable for HAProxy');
    assert.deepEqual(headless.spec.selector, sts.spec.selector.matchLabels);
    const pdb = find('PodDisruptionBudget', 'longshore');
    assert.equal(pdb.spec.maxUnavailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, sts.spec.selector.matchLabels);
  });

  it('HAProxy: the tested haproxy.cfg byte for byte, pointed at the StatefulSet pods, behind a Service', () => {
    const cfg = readFileSync(join(ROOT, 'deploy', 'haproxy', 'haproxy.cfg'), 'utf8');
    assert.equal(find('ConfigMap', 'longshore-haproxy').data['haproxy.cfg'], cfg,
      'regenerate the ConfigMap from deploy/haproxy/haproxy.cfg (see the comment in haproxy.yaml)');
    const deployment = find('Deployment', 'longshore-haproxy');
    const haproxy = container(deployment.spec.template.spec, 'haproxy');
    const env = Object.fromEntries(haproxy.env!.map((e) => [e.name, e.value]));
    for (let i = 0; i < 3; i++) {
      assert.equal(env[`LONGSHORE_NODE${i + 1}`], `longshore-${i}.longshore.$(POD_NAMESPACE).svc.cluster.local:5000`);
    }
    assert.equal(env.LONGSHORE_LOCAL_PREFIX, '/v2/team/');
    assert.ok(env.LONGSHORE_FRONT && env.LONGSHORE_STATS);
    const front = find('Service', 'longshore-front');
    assert.deepEqual(front.spec.selector, deployment.spec.selector.matchLabels);
    const daemonset = find('DaemonSet', 'longshore-registry-hosts');
    const port = container(daemonset.spec.template.spec, 'configure').env!.find((e) => e.name === 'MIRROR_PORT')!.value;
    assert.equal(String(front.spec.ports[0].nodePort), port, 'the DaemonSet points kubelet pulls at the front\'s NodePort');
  });

  it('the DaemonSet writes containerd hosts.toml and a CRI-O registries.conf.d drop-in for each mirrored registry', () => {
    const script = find('ConfigMap', 'longshore-registry-hosts').data['configure.sh'] as string;
    const root = mkdtempSync(join(tmpdir(), 'longshore-registry-hosts-'));
    try {
      const run = spawnSync('sh', ['-c', script], {
        env: { PATH: process.env.PATH, NODE_IP: '10.0.0.7', MIRROR_PORT: '30500', MIRRORED_REGISTRIES: 'docker.io ghcr.io', HOST_ROOT: root, CONFIGURE_ONCE: '1' },
        encoding: 'utf8',
      });
      assert.equal(run.status, 0, run.stderr);
      const hub = readFileSync(join(root, 'containerd', 'certs.d', 'docker.io', 'hosts.toml'), 'utf8');
      assert.match(hub, /^server = "https:\/\/registry-1\.docker\.io"$/m);
      assert.match(hub, /^\[host\."http:\/\/10\.0\.0\.7:30500"\]\n {2}capabilities = \["pull", "resolve"\]$/m);
      assert.match(readFileSync(join(root, 'containerd', 'certs.d', 'ghcr.io', 'hosts.toml'), 'utf8'), /^server = "https:\/\/ghcr\.io"$/m);
      const crio = readFileSync(join(root, 'containers', 'registries.conf.d', '50-longshore.conf'), 'utf8');
      assert.match(crio, /\[\[registry\]\]\nprefix = "docker\.io"\nlocation = "docker\.io"\n\n\[\[registry\.mirror\]\]\n#.*\nlocation = "10\.0\.0\.7:30500\/docker\.io"\ninsecure = true/);
      assert.match(crio, /location = "10\.0\.0\.7:30500\/ghcr\.io"/);
      assert.deepEqual(readdirSync(join(root, 'containerd', 'certs.d', 'docker.io')), ['hosts.toml'], 'no temp file left behind');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    const pod = find('DaemonSet', 'longshore-registry-hosts').spec.template.spec as IPodSpec;
    assert.deepEqual(pod.volumes!.filter((v) => v.hostPath).map((v) => v.hostPath!.path).sort(), ['/etc/containerd/certs.d', '/etc/containers/registries.conf.d']);
  });

  it('deploy/fleet.config.json, the file every node of the one-machine example runs, loads', () => {
    const config = loadConfig({ argv: ['--config', join(ROOT, 'deploy', 'fleet.config.json')], env: {}, cwd: ROOT });
    assert.ok(config.drainDelay > 0);
    assert.deepEqual(config.local.prefixes, ['team/']);
  });
});
