import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ERROR_CODES, LongshoreError } from '../../src/errors.js';
import { WIRE_ERRORS, toOciError } from '../../src/http/oci-errors.js';

describe('error codes', () => {
  it('documents every internal code and its wire form in docs/errors.md', async () => {
    const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    for (const code of ERROR_CODES) {
      const wire = WIRE_ERRORS[code];
      const row = doc.split('\n').find((line) => line.includes(`\`${code}\``));
      assert.ok(row, `${code} is not documented`);
      assert.ok(row.includes(String(wire.status)) && row.includes(`\`${wire.code}\``), `${code}'s row must show ${wire.status} ${wire.code}`);
    }
  });

  it('renders the OCI error body', () => {
    const oci = toOciError(new LongshoreError('LS_BLOB_NOT_FOUND', 'blob unknown', { digest: 'sha256:x' }));
    assert.equal(oci.status, 404);
    assert.deepEqual(oci.body, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown', detail: { digest: 'sha256:x' } }] });
    const internal = toOciError(new Error('secret internals'));
    assert.equal(internal.status, 500);
    assert.equal(internal.body.errors[0]?.message, 'internal error');
  });
});
