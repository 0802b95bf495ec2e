// One parse of a registry path, shared by the fast path, the router, authorization and /token.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nameOf, nsOf, parseTarget, targetOfUrl } from '../../src/http/registry-target.js';

describe('parseTarget', () => {
  it('names each endpoint of the spec, with the repository as everything before its suffix', () => {
    assert.deepEqual(parseTarget('/'), { endpoint: 'base' });
    assert.deepEqual(parseTarget('/_catalog'), { endpoint: 'catalog' });
    assert.deepEqual(parseTarget('/library/alpine/manifests/3.19'), { endpoint: 'manifest', name: 'library/alpine', reference: '3.19' });
    assert.deepEqual(parseTarget('/a/b/c/blobs/sha256:abc'), { endpoint: 'blob', name: 'a/b/c', digest: 'sha256:abc' });
    assert.deepEqual(parseTarget('/team/app/tags/list'), { endpoint: 'tags', name: 'team/app' });
    assert.deepEqual(parseTarget('/team/app/referrers/sha256:abc'), { endpoint: 'referrers', name: 'team/app', digest: 'sha256:abc' });
  });

  it('reads uploads before content: "<name>/blobs/uploads" is no blob whose digest is "uploads"', () => {
    assert.deepEqual(parseTarget('/team/app/blobs/uploads/'), { endpoint: 'upload-start', name: 'team/app' });
    assert.deepEqual(parseTarget('/team/app/blobs/uploads'), { endpoint: 'upload-start', name: 'team/app' });
    assert.deepEqual(parseTarget('/team/app/blobs/uploads/3f2a-01'), { endpoint: 'upload', name: 'team/app', id: '3f2a-01' });
    // a session id this process could not have made names nothing, for the check and the router alike
    assert.deepEqual(parseTarget('/team/app/blobs/uploads/bad!id'), { endpoint: 'unknown' });
    assert.deepEqual(parseTarget('/team/app/blobs/uploads/a/b'), { endpoint: 'unknown' });
  });

  it('reads a URL\'s path up to its first "?" or "#", where Express\'s req.path may be null (the fuzzer\'s "//a?b#c@d")', () => {
    assert.deepEqual(targetOfUrl('/library/alpine/manifests/3.19?ns=docker.io'), { endpoint: 'manifest', name: 'library/alpine', reference: '3.19' });
    assert.deepEqual(targetOfUrl('/library/alpine/manifests/3.19#x?y'), { endpoint: 'manifest', name: 'library/alpine', reference: '3.19' });
    assert.deepEqual(targetOfUrl('//0_664-?n=1e3&last=d_6-#p7@^'), { endpoint: 'unknown' });
    assert.deepEqual(targetOfUrl('/?n=1'), { endpoint: 'base' });
  });

  it('knows nothing else', () => {
    for (const path of ['/team/app', '/team/app/manifests/', '/team/app/manifests/a/b', '/team/app/tags', '/_catalog/x', '/team/app/other/x']) {
      assert.deepEqual(parseTarget(path), { endpoint: 'unknown' }, path);
      assert.equal(nameOf(parseTarget(path)), undefined);
    }
  });

  it('reads ?ns= only when it is given exactly once', () => {
    assert.equal(nsOf('/alpine/manifests/1?ns=docker.io'), 'docker.io');
    assert.equal(nsOf('/alpine/manifests/1?n=2&ns=ghcr.io'), 'ghcr.io');
    assert.equal(nsOf('/alpine/manifests/1?ns=a&ns=b'), undefined);
    assert.equal(nsOf('/alpine/manifests/1'), undefined);
  });
});
