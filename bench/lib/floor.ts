// The floor of scenario 5: a bare node:http server in its own process that answers every request with
// the status, headers and body of one sample response, from memory. What Longshore's manifest hits
// cost beyond it is Longshore's own work (routing, lookup, request id, log line, metrics); what the
// floor measures is this machine's HTTP ceiling at that moment, which moves a lot (bench/NOTES.md §3).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export interface FloorServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Headers Node's HTTP server sets itself; the floor lets it, as Longshore's server does. */
const NODE_SETS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

/** Starts a floor that answers like `status`, `headers`, `body` (a HEAD gets the headers only). */
export async function startFloor(status: number, headers: Headers, body: Buffer): Promise<FloorServer> {
  const kept = Object.fromEntries([...headers].filter(([name]) => !NODE_SETS.has(name)));
  const code = `const body = Buffer.from(${JSON.stringify(body.toString('base64'))}, 'base64');
    const headers = ${JSON.stringify(kept)};
    const server = require('node:http').createServer((req, res) => {
      res.statusCode = ${status};
      for (const name in headers) res.setHeader(name, headers[name]);
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child: ChildProcess = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return {
    url: `http://127.0.0.1:${line.toString().trim()}`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
