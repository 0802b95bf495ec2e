// Liveness and readiness, cheap enough to poll every second: /healthz touches nothing; /readyz runs one
// prepared SQLite statement and one access(2) on the data directory.
import { accessSync, constants } from 'node:fs';
import type { Request, Response } from 'express';
import type Database from 'better-sqlite3';

export function healthz(_req: Request, res: Response): void {
  res.status(200).json({ status: 'ok' });
}

export function readyz(db: Database.Database, writableDir: string) {
  const ping = db.prepare('SELECT 1 AS ok');
  return (_req: Request, res: Response): void => {
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
