// Serves the dashboard: the static files in ui/ (an HTML page, a script, a stylesheet; no build step).
// From source they are src/ui/, from the build dist/ui/ (the build script copies them).
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { RequestLocals } from './middleware/request-context.js';

export const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));

/** Only this origin's own files and API: no inline code, no external fonts or scripts. */
const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function dashboardRouter(dir = UI_DIR): express.Router {
  const router = express.Router({ caseSensitive: true, strict: true });
  router.use((req: Request, res: Response, next: NextFunction) => {
    (res.locals as RequestLocals).route = 'ui';
    // The page's URLs are relative: /ui must become /ui/ before it is served.
    if (req.path === '/' && !req.originalUrl.split('?', 1)[0]!.endsWith('/')) return res.redirect(301, `${req.baseUrl}/`);
    res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    next();
  });
  router.use(express.static(dir, { index: 'index.html', redirect: false, cacheControl: true, maxAge: 0 }));
  return router;
}
