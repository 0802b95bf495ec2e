// docs/grafana-dashboard.json is written by hand against the metric names in observability/metrics.ts;
// this keeps the two from drifting apart.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { Metrics } from '../../src/observability/metrics.js';

interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Array<{ expr: string; datasource?: { uid: string } }>;
}

/** Every string in a JSON document, with where it was found. */
function strings(node: unknown, path = '$'): Array<{ path: string; value: string }> {
  if (typeof node === 'string') return [{ path, value: node }];
  if (Array.isArray(node)) return node.flatMap((child, i) => strings(child, `${path}[${i}]`));
  if (node && typeof node === 'object') return Object.entries(node).flatMap(([key, child]) => strings(child, `${path}.${key}`));
  return [];
}

describe('Grafana dashboard', () => {
  it('queries only metrics that Longshore exports, through the ${DS_PROMETHEUS} input', async () => {
    const dashboard = JSON.parse(await readFile(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      __inputs: Array<{ name: string; pluginId: string }>;
      panels: Panel[];
    };
    assert.deepEqual(dashboard.__inputs.map((i) => [i.name, i.pluginId]), [['DS_PROMETHEUS', 'prometheus']]);

    const metrics = new Metrics({ cache: () => ({ bytes: 0, objects: 0 }), downloads: () => ({ inFlight: 0, followers: 0 }), upstreams: () => [] });
    const exported = new Map((await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
    const used = new Set<string>();
    for (const { path, value } of strings(dashboard)) {
      for (const [name] of value.matchAll(/\blongshore_[a-z0-9_]+/g)) {
        const series = /^(.*)_(bucket|sum|count)$/.exec(name!);
        const base = series && exported.get(series[1]!) === 'histogram' ? series[1]! : name!;
        assert.ok(exported.has(base), `${path} uses ${name}, which Longshore does not export`);
        used.add(base);
      }
    }
    for (const name of ['longshore_http_requests_total', 'longshore_served_bytes_total', 'longshore_upstream_bytes_total',
      'longshore_upstream_request_duration_seconds', 'longshore_upstream_errors_total', 'longshore_downloads_in_flight',
      'longshore_download_followers', 'longshore_cache_size_bytes', 'longshore_upstream_ratelimit_remaining', 'longshore_upstream_circuit_open']) {
      assert.ok(used.has(name), `the dashboard shows ${name}`);
    }

    const queried = dashboard.panels.filter((p) => p.type !== 'row');
    assert.ok(queried.length >= 10);
    for (const panel of queried) {
      assert.equal(panel.datasource?.uid, '${DS_PROMETHEUS}', `panel "${panel.title}" uses the datasource input`);
      assert.ok(panel.targets && panel.targets.length > 0, `panel "${panel.title}" has a query`);
      for (const target of panel.targets) assert.equal(target.datasource?.uid, '${DS_PROMETHEUS}');
    }
  });

  it('breaks a fleet down per node: requests, hit ratio, upstream bytes and disk, by the node label Longshore exports', async () => {
    const dashboard = JSON.parse(await readFile(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      panels: Panel[];
      templating: { list: Array<{ name: string; query: { query: string } }> };
    };
    assert.equal(dashboard.templating.list.find((v) => v.name === 'node')?.query.query, 'label_values(longshore_http_requests_total, node)');
    const row = dashboard.panels.findIndex((p) => p.type === 'row' && p.title === 'Fleet: per node');
    assert.ok(row >= 0, 'a "Fleet: per node" row');
    const fleet = dashboard.panels.slice(row + 1);
    const perNode = (metric: string) => fleet.find((p) => p.targets?.some((t) => t.expr.includes('sum by (node)') && t.expr.includes(metric)));
    assert.ok(perNode('longshore_http_requests_total{')?.title.match(/requests/i), 'requests per node');
    assert.ok(fleet.some((p) => /hit ratio/i.test(p.title) && p.targets?.[0]?.expr.includes('sum by (node)')), 'hit ratio per node');
    assert.ok(perNode('longshore_upstream_bytes_total'), 'upstream bytes per node');
    assert.ok(perNode('longshore_cache_size_bytes'), 'disk per node');
    for (const panel of fleet) {
      for (const target of panel.targets ?? []) assert.match(target.expr, /node=~"\$node"/, `${panel.title} honours the node variable`);
    }

    const metrics = new Metrics({ cache: () => ({ bytes: 0, objects: 0 }), downloads: () => ({ inFlight: 0, followers: 0 }), upstreams: () => [] }, 'node-a');
    metrics.requests.note('blob', 'GET', 200, 'hit', 0.01, 0);
    assert.match(await metrics.registry.metrics(), /longshore_http_requests_total\{[^}]*node="node-a"/);
  });
});
