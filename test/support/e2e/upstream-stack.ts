// The upstream side of every e2e scenario: token server, distribution registry, the counting proxy
// in front of it, and the standard test images published there.
//   library/alpine:3.19  Docker media types (manifest list + schema2), linux/amd64 + linux/arm64
//   library/ocitest:1.0  OCI media types (image index + image manifest), same platforms
// plus whatever extra images a scenario asks for.
import { CountingProxy } from './counting-proxy.js';
import { Longshore, type LongshoreOptions } from './longshore.js';
import { buildMultiArchImage, type TestImage } from '../images.js';
import { publishImage } from './publish.js';
import { Skopeo } from './skopeo.js';
import type { Credentials } from './registry-client.js';
import { Teardown } from './teardown.js';
import { TokenServer, type TokenUser } from './token-server.js';
import { startUpstreamRegistry, type UpstreamRegistry } from './upstream-registry.js';

export interface UpstreamStack {
  tokens: TokenServer;
  registry: UpstreamRegistry;
  proxy: CountingProxy;
  /** Pull-only account for the mirror. */
  mirrorCredentials: Credentials;
  /** Account that may push, used to publish. */
  publisherCredentials: Credentials;
  alpine: TestImage;
  ocitest: TestImage;
  /** The extra images, as given in the options, published after the standard two. */
  extra: readonly TestImage[];
  stop(): Promise<void>;
}

export interface UpstreamStackOptions {
  /** More images to publish, e.g. from buildImageFamily. */
  extraImages?: readonly TestImage[];
  /** The mirror's pull-only account. Default mirror / mirror-secret. */
  mirrorCredentials?: Credentials;
  /** Repository-name prefixes the mirror's account may pull, e.g. ['library/']. Default: every repository. */
  mirrorRepositories?: readonly string[];
  /** More token-server accounts, e.g. clients' own; the names must differ from the mirror's and the publisher's. */
  users?: Record<string, TokenUser>;
  /** Anonymous `pull`, on the repositories with these name prefixes ([''] for all). Default: none. */
  anonymousPull?: readonly string[];
}

export async function startUpstreamStack(options: UpstreamStackOptions = {}): Promise<UpstreamStack> {
  const mirrorCredentials = options.mirrorCredentials ?? { username: 'mirror', password: 'mirror-secret' };
  const publisherCredentials = { username: 'publisher', password: 'publisher-secret' };
  for (const name of Object.keys(options.users ?? {})) {
    if (name === mirrorCredentials.username || name === publisherCredentials.username) throw new Error(`token-server user ${name} is the stack's own`);
  }
  const teardown = new Teardown();
  try {
    const tokens = teardown.add('token server', await TokenServer.start({
      users: {
        ...options.users,
        [mirrorCredentials.username]: {
          password: mirrorCredentials.password,
          actions: ['pull'],
          ...(options.mirrorRepositories === undefined ? {} : { repositories: options.mirrorRepositories }),
        },
        [publisherCredentials.username]: { password: publisherCredentials.password, actions: ['pull', 'push', 'delete'] },
      },
      ...(options.anonymousPull === undefined ? {} : { anonymousPull: true, anonymousRepositories: options.anonymousPull }),
    }), (t) => t.stop());
    const registry = teardown.add('upstream registry', await startUpstreamRegistry(tokens), (r) => r.stop());
    const proxy = teardown.add('counting proxy', await CountingProxy.start(registry.url), (p) => p.stop());
    const alpine = buildMultiArchImage({ repository: 'library/alpine', tag: '3.19', format: 'docker' });
    const ocitest = buildMultiArchImage({ repository: 'library/ocitest', tag: '1.0', format: 'oci' });
    const extra = options.extraImages ?? [];
    for (const image of [alpine, ocitest, ...extra]) await publishImage(image, registry, publisherCredentials);
    tokens.reset();
    proxy.reset();
    return {
      tokens, registry, proxy, mirrorCredentials, publisherCredentials, alpine, ocitest, extra,
      stop: () => teardown.runAll(),
    };
  } catch (err) {
    await teardown.runAll().catch(() => undefined);
    throw err;
  }
}

/**
 * The e2e analog of startMirrorOverFake: an upstream stack and a Longshore whose docker.io upstream it
 * is (as the stack's mirror account), both stopped by `teardown`. `options` go to Longshore.start.
 */
export async function startLongshoreOverStack(
  teardown: Teardown,
  options: Omit<LongshoreOptions, 'upstreamUrl' | 'username' | 'password'> = {},
  stackOptions: UpstreamStackOptions = {},
): Promise<{ upstream: UpstreamStack; longshore: Longshore }> {
  const upstream = teardown.add('upstream stack', await startUpstreamStack(stackOptions), (s) => s.stop());
  const longshore = teardown.add('longshore', await Longshore.start({
    upstreamUrl: upstream.proxy.url,
    ...upstream.mirrorCredentials,
    ...options,
  }), (l) => l.stop());
  return { upstream, longshore };
}

/** startLongshoreOverStack, and a skopeo client whose files live in a new temp dir named `prefix…`, removed by `teardown`. */
export async function startSkopeoOverStack(
  teardown: Teardown,
  prefix: string,
  options: Omit<LongshoreOptions, 'upstreamUrl' | 'username' | 'password'> = {},
  stackOptions: UpstreamStackOptions = {},
): Promise<{ upstream: UpstreamStack; longshore: Longshore; skopeo: Skopeo }> {
  const { upstream, longshore } = await startLongshoreOverStack(teardown, options, stackOptions);
  return { upstream, longshore, skopeo: new Skopeo(teardown.tempDir('skopeo dir', prefix)) };
}
