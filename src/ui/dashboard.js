// The Longshore dashboard: polls the read-only admin API (/api/v1/) and renders it. No framework, no
// build step. Data is always inserted as text (never as HTML): repository names come from clients.
'use strict';

const REFRESH_MS = 5000;
const SVG_NS = 'http://www.w3.org/2000/svg';
const API = new URL('../api/v1/', document.baseURI);

const integer = new Intl.NumberFormat('en');
const percent = new Intl.NumberFormat('en', { style: 'percent', maximumFractionDigits: 1 });
const clock = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const shortClock = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' });

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : Number(value.toFixed(value < 10 ? 2 : 1))} ${units[unit]}`;
}

async function api(path) {
  const res = await fetch(new URL(path, API), { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.json();
}

function byId(id) {
  return document.getElementById(id);
}

/** Sets an element's text and keeps the raw value in data-value, for scripts and tests. */
function show(id, text, value) {
  const el = byId(id);
  el.textContent = text;
  if (value !== undefined) el.dataset.value = value === null ? '' : String(value);
}

function element(tag, text, className) {
  const el = document.createElement(tag);
  if (text !== undefined) el.textContent = text;
  if (className) el.className = className;
  return el;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) tr.append(cell instanceof Node ? cell : element('td', String(cell)));
  return tr;
}

function td(content, className) {
  const cell = element('td', undefined, className);
  cell.append(content instanceof Node ? content : document.createTextNode(String(content)));
  return cell;
}

/**
 * Builds the tables index.html declares (section[data-table]): the heading labels the section, the
 * header comes from data-columns ("Label" or "Label:class", separated by "|"), and the body gets the
 * section's data-table as its id, for the render functions below.
 */
function buildTables() {
  for (const section of document.querySelectorAll('section[data-table]')) {
    const name = section.dataset.table;
    labelByHeading(section, name);
    const header = section.dataset.columns.split('|').map((column) => {
      const [label, className] = column.split(':');
      const th = element('th', label, className);
      th.scope = 'col';
      return th;
    });
    const table = element('table');
    table.createTHead().append(row(header));
    const tbody = table.createTBody();
    tbody.id = name;
    const wrap = element('div', undefined, 'table-wrap');
    wrap.append(table);
    section.append(wrap);
  }
}

/** Builds the charts index.html declares (section[data-chart]): an SVG labelled by the heading, and the legend from data-legend. */
function buildCharts() {
  for (const section of document.querySelectorAll('section[data-chart]')) {
    const name = section.dataset.chart;
    const heading = labelByHeading(section, name);
    const chart = svg('svg', { id: `${name}-chart`, class: 'chart', viewBox: `0 0 ${BOX.width} ${BOX.height}`, role: 'img', 'aria-labelledby': `${heading} ${name}-desc` });
    chart.append(svg('desc', { id: `${name}-desc` }, 'No data yet.'));
    const legend = element('ul', undefined, 'legend');
    for (const entry of section.dataset.legend.split('|')) {
      const [swatch, label] = entry.split(':');
      const item = element('li');
      item.append(element('span', undefined, `swatch ${swatch}`), document.createTextNode(label));
      legend.append(item);
    }
    section.append(chart, legend);
  }
}

/** Names a declared section by its h2 (`<name>-heading`, for aria-labelledby); returns that id. */
function labelByHeading(section, name) {
  const heading = section.querySelector('h2');
  heading.id = `${name}-heading`;
  section.setAttribute('aria-labelledby', heading.id);
  return heading.id;
}

/** A table's single row saying it has nothing to show, across all its columns. */
function emptyRow(tbody, text) {
  const cell = element('td', text, 'empty');
  cell.colSpan = tbody.closest('table').tHead.rows[0].cells.length;
  tbody.replaceChildren(row([cell]));
}

function badge(text, tone) {
  return element('span', text, `badge ${tone}`);
}

const CACHE_TONE = { hit: 'good', revalidated: 'good', stale: 'warn', miss: 'info', coalesced: 'info', upstream: 'neutral' };
const CIRCUIT_TONE = { closed: 'good', 'half-open': 'warn', open: 'bad' };

function renderSummary(summary) {
  const { cache, totals, downloads } = summary;
  const bar = byId('cache-bar');
  const fill = bar.querySelector('.bar-fill');
  show('cache-bytes', formatBytes(cache.bytes), cache.bytes);
  show('cache-objects', integer.format(cache.objects), cache.objects);
  if (cache.maxBytes) {
    const used = Math.min(100, (cache.bytes / cache.maxBytes) * 100);
    fill.style.width = `${used}%`;
    bar.classList.toggle('bar-high', used >= 90);
    bar.setAttribute('aria-valuenow', used.toFixed(1));
    bar.setAttribute('aria-valuetext', `${used.toFixed(1)}% of ${formatBytes(cache.maxBytes)}`);
    show('cache-budget', `of ${formatBytes(cache.maxBytes)} (${used.toFixed(1)}%)`);
  } else {
    fill.style.width = '0%';
    bar.classList.add('bar-unbounded');
    bar.setAttribute('aria-valuetext', 'no budget configured');
    show('cache-budget', '(no budget configured: the cache is unbounded)');
  }
  show('hit-ratio', totals.hitRatio === null ? '–' : percent.format(totals.hitRatio), totals.hitRatio);
  show('total-hits', integer.format(totals.hits), totals.hits);
  show('total-misses', integer.format(totals.misses), totals.misses);
  show('bytes-from-cache', formatBytes(totals.bytesServedFromCache), totals.bytesServedFromCache);
  show('bytes-from-upstream', formatBytes(totals.bytesFromUpstream), totals.bytesFromUpstream);
  show('downloads', integer.format(downloads.inFlight), downloads.inFlight);
  show('followers', `${integer.format(downloads.followers)} client${downloads.followers === 1 ? '' : 's'} reading them`);
  renderUpstreams(summary.upstreams);
}

function renderUpstreams(upstreams) {
  const tbody = byId('upstreams');
  if (upstreams.length === 0) return emptyRow(tbody, 'No upstreams configured.');
  tbody.replaceChildren(...upstreams.map((u) => {
    const name = element('th', u.name);
    name.scope = 'row';
    return row([
      name,
      td(u.url, 'mono'),
      td(badge(u.circuit, CIRCUIT_TONE[u.circuit] ?? 'neutral')),
      td(u.offline ? badge('offline', 'warn') : badge('online', 'good')),
      td(rateLimit(u.rateLimit)),
    ]);
  }));
}

function renderSync(rules) {
  const tbody = byId('sync');
  if (rules.length === 0) return emptyRow(tbody, 'No sync rules configured.');
  const when = (iso) => (iso ? clock.format(new Date(iso)) : '–');
  tbody.replaceChildren(...rules.map((r) => {
    const name = element('th', `${r.upstream}/${r.repository}`);
    name.scope = 'row';
    return row([
      name,
      td(r.selector, 'mono'),
      td(r.running ? badge('running', 'neutral') : when(r.lastRun)),
      td(when(r.nextRun)),
      td(integer.format(r.images)),
      td(formatBytes(r.bytes)),
      td(r.lastError ? badge(r.lastError, 'bad') : badge('ok', 'good')),
    ]);
  }));
}

function rateLimit(limit) {
  if (!limit || limit.remaining === null) return element('span', 'not reported yet', 'muted');
  const wrap = element('span', undefined, 'headroom');
  const text = limit.limit ? `${integer.format(limit.remaining)} of ${integer.format(limit.limit)} left` : `${integer.format(limit.remaining)} left`;
  if (limit.limit) {
    const share = Math.max(0, Math.min(100, (limit.remaining / limit.limit) * 100));
    const bar = element('span', undefined, `mini-bar${share < 20 ? ' bar-high' : ''}`);
    bar.setAttribute('role', 'meter');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', String(limit.limit));
    bar.setAttribute('aria-valuenow', String(limit.remaining));
    bar.setAttribute('aria-label', 'Rate limit headroom');
    const fill = element('span', undefined, 'bar-fill');
    fill.style.width = `${share}%`;
    bar.append(fill);
    wrap.append(bar);
  }
  const label = element('span', text);
  label.title = `as of ${clock.format(new Date(limit.observedAt))}`;
  wrap.append(label);
  return wrap;
}

/** Local (pushed) repositories have the upstream "@local": shown by name with a "local" badge. */
function repositoryName(entry) {
  if (entry.upstream !== '@local') return `${entry.upstream}/${entry.repository}`;
  const wrap = element('span');
  wrap.append(document.createTextNode(`${entry.repository} `), badge('local', 'info'));
  wrap.title = 'local repository: pushed here, never evicted';
  return wrap;
}

function renderTop(byPulls, bySize) {
  const pulls = byId('top-pulls');
  if (byPulls.repositories.length === 0) emptyRow(pulls, 'Nothing cached yet.');
  else pulls.replaceChildren(...byPulls.repositories.map((r) => row([td(repositoryName(r), 'mono'), td(integer.format(r.pulls), 'num'), td(formatBytes(r.bytes), 'num')])));
  const size = byId('top-size');
  if (bySize.repositories.length === 0) emptyRow(size, 'Nothing cached yet.');
  else size.replaceChildren(...bySize.repositories.map((r) => row([td(repositoryName(r), 'mono'), td(formatBytes(r.bytes), 'num'), td(integer.format(r.objects), 'num')])));
}

function renderRecent(recent) {
  const tbody = byId('recent');
  if (recent.pulls.length === 0) return emptyRow(tbody, 'No pulls since start.');
  tbody.replaceChildren(...recent.pulls.map((p) => {
    const time = element('time', clock.format(new Date(p.time)));
    time.dateTime = p.time;
    const digest = element('span', p.digest ? `${p.digest.slice(0, 19)}…` : '–', 'mono');
    if (p.digest) digest.title = p.digest;
    const reference = p.reference.startsWith('sha256:') ? `${p.reference.slice(0, 19)}…` : p.reference;
    const ref = element('span', reference, 'mono');
    ref.title = `${p.method} ${p.reference}`;
    return row([
      td(time),
      td(repositoryName(p), 'mono'),
      td(ref),
      td(digest),
      td(p.cache ? badge(p.cache, CACHE_TONE[p.cache] ?? 'neutral') : element('span', '–', 'muted')),
      td(String(p.status), p.status >= 400 ? 'num status-bad' : 'num'),
    ]);
  }));
}

// ---- charts --------------------------------------------------------------------------------------

const BOX = { width: 640, height: 220, left: 64, right: 12, top: 12, bottom: 28 };

function svg(tag, attributes, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * Draws line series into an SVG: [{ className, points: [[time, value | null]] }]. A null value breaks
 * the line (an interval with no requests has no ratio).
 */
function lineChart(target, series, { yMax, formatY, description }) {
  const desc = target.querySelector('desc');
  desc.textContent = description;
  target.replaceChildren(desc);
  const times = series.flatMap((s) => s.points.map((p) => p[0]));
  if (times.length === 0) return;
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1);
  const plotW = BOX.width - BOX.left - BOX.right;
  const plotH = BOX.height - BOX.top - BOX.bottom;
  const x = (t) => BOX.left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v) => BOX.top + plotH - (v / yMax) * plotH;

  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const gy = y(yMax * fraction);
    target.append(svg('line', { x1: BOX.left, x2: BOX.width - BOX.right, y1: gy, y2: gy, class: fraction === 0 ? 'axis' : 'grid' }));
    target.append(svg('text', { x: BOX.left - 8, y: gy + 4, class: 'tick', 'text-anchor': 'end' }, formatY(yMax * fraction)));
  }
  const baseline = BOX.height - 8;
  const timeLabel = t1 - t0 < 10 * 60_000 ? clock : shortClock;
  target.append(svg('text', { x: BOX.left, y: baseline, class: 'tick', 'text-anchor': 'start' }, timeLabel.format(new Date(t0))));
  target.append(svg('text', { x: BOX.width - BOX.right, y: baseline, class: 'tick', 'text-anchor': 'end' }, timeLabel.format(new Date(t1))));

  for (const { className, points } of series) {
    let path = '';
    let pen = false;
    for (const [t, v] of points) {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        continue;
      }
      path += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (path) target.append(svg('path', { d: path, class: `line ${className}` }));
    const last = points.filter(([, v]) => v !== null && Number.isFinite(v)).at(-1);
    if (last) target.append(svg('circle', { cx: x(last[0]), cy: y(last[1]), r: 3.5, class: `dot ${className}` }));
  }
}

function renderCharts(series) {
  const points = series.points;
  const interval = [];
  const cumulative = [];
  for (let i = 0; i < points.length; i++) {
    const p = points[i];
    cumulative.push([p.time, p.hits + p.misses > 0 ? p.hits / (p.hits + p.misses) : null]);
    if (i === 0) continue;
    const hits = p.hits - points[i - 1].hits;
    const misses = p.misses - points[i - 1].misses;
    interval.push([p.time, hits + misses > 0 ? hits / (hits + misses) : null]);
  }
  const latestRatio = cumulative.at(-1)?.[1];
  lineChart(byId('ratio-chart'), [
    { className: 's-interval', points: interval },
    { className: 's-cumulative', points: cumulative },
  ], {
    yMax: 1,
    formatY: (v) => percent.format(v),
    description: latestRatio === null || latestRatio === undefined ? 'No cacheable requests yet.' : `Hit ratio since start: ${percent.format(latestRatio)}.`,
  });

  const fromCache = points.map((p) => [p.time, p.bytesServedFromCache]);
  const fromUpstream = points.map((p) => [p.time, p.bytesFromUpstream]);
  const top = Math.max(1, ...fromCache.map((p) => p[1]), ...fromUpstream.map((p) => p[1]));
  const last = points.at(-1);
  lineChart(byId('bytes-chart'), [
    { className: 's-cache', points: fromCache },
    { className: 's-upstream', points: fromUpstream },
  ], {
    yMax: niceCeiling(top),
    formatY: formatBytes,
    description: last ? `${formatBytes(last.bytesServedFromCache)} served from cache and ${formatBytes(last.bytesFromUpstream)} pulled from upstreams since start.` : 'No data yet.',
  });
}

/** A round axis maximum at or above `bytes`, in the unit formatBytes will show (so ticks read 5 MiB, 10 MiB…). */
function niceCeiling(bytes) {
  let unit = 1;
  while (bytes / unit >= 1024) unit *= 1024;
  const value = bytes / unit;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 4, 5, 10].find((s) => s * power >= value) ?? 10;
  return step * power * unit;
}

// ---- refresh loop --------------------------------------------------------------------------------

async function refresh() {
  const status = byId('status');
  try {
    const [summary, byPulls, bySize, recent, series, sync] = await Promise.all([
      api('summary'), api('top?by=pulls&limit=10'), api('top?by=size&limit=10'), api('recent?limit=20'), api('timeseries'), api('sync'),
    ]);
    renderSummary(summary);
    renderSync(sync.rules);
    renderTop(byPulls, bySize);
    renderRecent(recent);
    renderCharts(series);
    status.textContent = `Updated ${clock.format(new Date())} · running since ${clock.format(new Date(summary.startedAt))}`;
    status.classList.remove('status-bad');
    document.body.dataset.loaded = 'true';
  } catch (err) {
    status.textContent = `Could not load the admin API: ${err.message}`;
    status.classList.add('status-bad');
  }
}

async function loop() {
  if (!document.hidden) await refresh();
  setTimeout(loop, REFRESH_MS);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) void refresh();
});
buildTables();
buildCharts();
void loop();
