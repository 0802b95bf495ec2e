// A minimal image puller, as a client on the other side of a load balancer sees the registry: the
// manifest by tag, the amd64 image of an index, then the config and every layer, each checked against
// its digest and size. It never retries: a pull either gets every byte right or throws.
import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Descriptor { digest: string; size: number; platform?: { architecture: string } }

export interface PulledImage {
  /** Digest of what the tag resolved to (the index, for a multi-platform image). */
  digest: string;
  /** Config and layer digests, in manifest order. */
  blobs: string[];
  bytes: number;
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function get(url: string, dispatcher: Dispatcher | undefined, accept?: string): Promise<{ body: Buffer; contentType: string }> {
  const res = await request(url, { headers: accept ? { accept } : {}, ...(dispatcher ? { dispatcher } : {}) });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`GET ${url} -> ${res.statusCode}: ${body.toString('utf8').slice(0, 200)}`);
  return { body, contentType: String(res.headers['content-type'] ?? '') };
}

async function getVerified(url: string, expected: Descriptor, dispatcher: Dispatcher | undefined, accept?: string): Promise<Buffer> {
  const { body } = await get(url, dispatcher, accept);
  if (body.length !== expected.size || sha256(body) !== expected.digest) {
    throw new Error(`GET ${url}: ${body.length} bytes hashing to ${sha256(body)}, expected ${expected.size} bytes of ${expected.digest}`);
  }
  return body;
}

/** Pulls `repository:tag` from `baseUrl` (http://host:port). */
export async function pullImage(baseUrl: string, repository: string, tag: string, dispatcher?: Dispatcher): Promise<PulledImage> {
  const top = await get(`${baseUrl}/v2/${repository}/manifests/${tag}`, dispatcher, ACCEPT);
  const digest = sha256(top.body);
  let manifest = JSON.parse(top.body.toString('utf8')) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
  let bytes = top.body.length;
  if (manifest.manifests) {
    const amd64 = manifest.manifests.find((m) => m.platform?.architecture === 'amd64');
    if (!amd64) throw new Error(`${repository}:${tag} has no amd64 image`);
    const body = await getVerified(`${baseUrl}/v2/${repository}/manifests/${amd64.digest}`, amd64, dispatcher, ACCEPT);
    bytes += body.length;
    manifest = JSON.parse(body.toString('utf8')) as typeof manifest;
  }
  const blobs = [manifest.config!, ...manifest.layers!];
  const bodies = await Promise.all(blobs.map((b) => getVerified(`${baseUrl}/v2/${repository}/blobs/${b.digest}`, b, dispatcher)));
  return { digest, blobs: blobs.map((b) => b.digest), bytes: bytes + bodies.reduce((n, b) => n + b.length, 0) };
}
