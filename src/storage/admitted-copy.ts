// Copies a request body to a file, asking before each chunk whether it may be written (limits on upload
// size and quota). A refusal stops the copy without destroying the body: destroying an IncomingMessage
// destroys its socket, and the refusal must still be answered with a status. The body is left paused, so
// what the client has not sent yet is never read; the caller answers with `Connection: close`.
import type { Readable, Writable } from 'node:stream';

/**
 * `observe` sees every admitted chunk, in order, as it goes to the file (a digest computed while writing).
 * Resolves when the body ended and the file is closed. Rejects with what `admit` threw, or with the
 * body's or file's error, once the file is closed, so that the caller may truncate it safely.
 */
export function copyAdmitted(body: Readable, out: Writable, admit: (bytes: number) => void, observe?: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed = false;
    const detach = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', fail);
      body.off('close', onClose);
      out.off('drain', onDrain);
    };
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      detach();
      body.pause();
      // A write still in flight would land after the caller's truncate: wait for the file to close.
      if (out.closed) reject(err);
      else {
        out.once('close', () => reject(err));
        out.destroy();
      }
    };
    const onData = (chunk: Buffer) => {
      try {
        admit(chunk.length);
      } catch (err) {
        fail(err);
        return;
      }
      observe?.(chunk);
      if (!out.write(chunk)) {
        body.pause();
        out.once('drain', onDrain);
      }
    };
    const onDrain = () => body.resume();
    const onEnd = () => {
      detach();
      out.end();
    };
    const onClose = () => {
      if (!body.readableEnded) fail(endedEarly());
    };
    out.on('error', fail);
    out.once('close', () => {
      if (failed) return;
      if (out.writableFinished) resolve();
      else fail(new Error('the file closed before the body was written'));
    });
    if (body.readableEnded) {
      out.end();
      return;
    }
    // Opening the file may take longer than the client stays: a body already gone sends no more events.
    if (body.destroyed) {
      fail(body.errored ?? endedEarly());
      return;
    }
    body.on('error', fail);
    body.on('close', onClose);
    body.on('end', onEnd);
    body.on('data', onData);
    body.resume();
  });
}

/** A body that closed before its end without an error of its own: Node's code for it, which the error handler takes as the client leaving. */
function endedEarly(): Error {
  return Object.assign(new Error('the request body ended early'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}
