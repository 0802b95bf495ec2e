// Liveness and readiness, cheap enough to poll every second: /healthz touches nothing; /readyz runs one
// prepared SQLite statement and one access(2) on the data directory. From SIGTERM on, /readyz answers
// 503 while the node still serves (config `drainDelay`): a load balancer's health check takes the node
// out of rotation before its listener closes. /healthz stays 200: the process is alive, just leaving.
import { accessSync, constants } from 'node:fs';
import type { Request, Response } from 'express';
import type Database from 'better-sqlite3';

export function healthz(_req: Request, res: Response): void {
  res.status(200).json({ status: 'ok' });
}

/** `draining`: true once the process has been told to stop. */
export function readyz(db: Database.Database, writableDir: string, draining: () => boolean) {
  const ping = db.prepare('SELECT 1 AS ok');
  return (_req: Request, res: Response): void => {
    if (draining()) {
      res.status(503).json({ status: 'draining', checks: {} });
      return;
    }
    const checks: Record<string, string> = {};
    try {
      ping.get();
      checks.database = 'ok';
    } catch (err) {
      checks.database = `failed: ${(err as Error).message}`;
    }
    try {
      accessSync(writableDir, constants.W_OK);
      checks.dataDir = 'ok';
    } catch (err) {
      checks.dataDir = `not writable: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  };
}
