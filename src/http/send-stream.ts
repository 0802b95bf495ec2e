// Writes a blob stream to an HTTP response with backpressure, handing each chunk of a recycling stream
// back to its pool from the socket write's completion callback: the earliest moment nothing in this
// process refers to the bytes (storage/chunk-pool.ts). A write that fails or never completes (the
// client went away) keeps its chunk out of the pool for good.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { isRecycling } from '../storage/chunk-pool.js';

/**
 * Streams `source` as the response body. A failed source destroys the response, so the client sees a
 * broken transfer rather than a short body that looks whole; a response closed early destroys the
 * source. `onAbort` is told about either, for logs.
 */
export function sendStream(source: Readable, res: ServerResponse, onAbort: (reason: string) => void): void {
  const recycle = isRecycling(source) ? (chunk: Buffer) => source.recycle(chunk) : undefined;
  let ended = false;
  const resume = () => source.resume();
  source.on('data', (chunk: Buffer) => {
    const more = recycle
      ? res.write(chunk, (err) => {
        if (!err) recycle(chunk);
      })
      : res.write(chunk);
    if (!more) source.pause();
  });
  res.on('drain', resume);
  source.once('end', () => {
    ended = true;
    res.off('drain', resume);
    res.end();
  });
  source.once('error', (err) => {
    onAbort(err.message);
    res.destroy(err);
  });
  res.once('close', () => {
    if (ended) return;
    if (!source.destroyed) {
      onAbort('client closed the connection');
      source.destroy();
    }
  });
}
