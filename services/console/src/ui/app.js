// The segcast console's web UI: one small module, no build step. It uses only the JSON API described in
// docs/console-api.md (the same API the CLI uses). Hash routes: #/campaigns, #/campaigns/<id>, #/contents/<id>, ...

// ---------------------------------------------------------------------------------------------------------
// DOM helpers

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Builds an element. Attributes: `class`, `id`, `data-*`, `on<event>` handlers; DOM properties for
 *  value/checked/selected/disabled/hidden/readOnly. Children: nodes, strings (as text), arrays, null. */
function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'g', 'rect', 'line', 'polyline', 'path', 'text', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    // Styles through the CSSOM: the console's Content-Security-Policy refuses inline style attributes.
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (!svg && ['value', 'checked', 'selected', 'disabled', 'hidden', 'readOnly', 'required'].includes(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces `el`'s children (same child rules as `h`). */
function setChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------
// Formatting

const fmtNum = (n) => (n === null || n === undefined || Number.isNaN(Number(n)) ? '–' : Number(n).toLocaleString());

function fmtDate(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(Number(s))) return '–';
  s = Math.max(0, Math.round(Number(s)));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A ratio (0.25) as a percentage. */
function fmtPct(x) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return '–';
  return `${(Number(x) * 100).toFixed(1)}%`;
}

const STATUS_LABELS = {
  draft: 'Draft',
  scheduled: 'Scheduled',
  extracting: 'Preparing recipients',
  fanning_out: 'Sending',
  delivering: 'Sending',
  retrying: 'Retrying',
  completed: 'Completed',
  paused: 'Paused',
  canceled: 'Canceled',
  failed: 'Failed',
};
const RUNNING = ['extracting', 'fanning_out', 'delivering', 'retrying'];
const FINAL = ['completed', 'canceled', 'failed'];

function badge(status) {
  return h('span', { class: `badge status-${status}`, 'data-test': 'status', 'data-status': status, title: status },
    STATUS_LABELS[status] || status);
}

// ---------------------------------------------------------------------------------------------------------
// Time zones: the send time is picked as a wall-clock time in a chosen zone and sent as RFC 3339 UTC.

const BROWSER_TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

function timeZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = [];
  }
  for (const z of ['UTC', BROWSER_TZ]) if (!zones.includes(z)) zones.unshift(z);
  return zones;
}

/** The wall-clock fields of instant `ms` in zone `tz`, as if they were UTC (ms). */
function wallAsUtc(ms, tz) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms));
  const get = (t) => Number(parts.find((p) => p.type === t).value);
  return Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
}

/** An instant -> `YYYY-MM-DDTHH:MM` in `tz` (for a datetime-local input). */
function utcToZoned(iso, tz) {
  const ms = typeof iso === 'number' ? iso : Date.parse(iso);
  if (Number.isNaN(ms)) return '';
  return new Date(wallAsUtc(ms, tz)).toISOString().slice(0, 16);
}

function fmtInZone(iso, tz) {
  if (!iso) return '–';
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: tz || 'UTC', dateStyle: 'medium', timeStyle: 'short' });
  } catch {
    return fmtDate(iso);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.field = body?.field || null;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET' && method !== 'HEAD') {
    init.headers['Content-Type'] = 'application/json';
    if (method !== 'DELETE' || body !== undefined) init.body = JSON.stringify(body ?? {});
  }
  for (let attempt = 0; ; attempt += 1) {
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { error: `The console could not be reached (${e.message}). Check the connection and retry.` });
    }
    if (res.status === 429 && attempt < 5) {
      await sleep(1000 * (Number(res.headers.get('Retry-After')) || 1));
      continue;
    }
    const type = res.headers.get('Content-Type') || '';
    let data = null;
    if (res.status !== 204) {
      data = type.includes('json') ? await res.json().catch(() => null) : await res.text().catch(() => '');
    }
    if (res.ok) return data;
    const errBody = data && typeof data === 'object'
      ? data
      : { error: (typeof data === 'string' && data.trim()) || `${res.status} ${res.statusText}` };
    const err = new ApiError(res.status, errBody);
    if (res.status === 401 && path !== '/api/session') signedOut(err.message);
    throw err;
  }
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------------------
// Banners and field errors

function showBanner(message) {
  const b = $('#banner');
  b.replaceChildren(h('span', { 'data-test': 'banner-text' }, message),
    h('button', { type: 'button', class: 'link close', 'aria-label': 'Dismiss', onclick: clearBanner }, '×'));
  b.hidden = false;
}

function clearBanner() {
  $('#banner').hidden = true;
  $('#banner').replaceChildren();
}

let pendingFlash = null;

/** A success notice; with `afterNavigation`, shown on the next page. */
function flash(message, afterNavigation = false) {
  if (afterNavigation) {
    pendingFlash = message;
    return;
  }
  const f = $('#flash');
  f.textContent = message;
  f.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { f.hidden = true; }, 8000);
}

function clearErrors(root) {
  for (const e of $$('.field-error', root)) e.remove();
  for (const e of $$('.invalid', root)) e.classList.remove('invalid');
  for (const e of $$('[aria-invalid]', root)) e.removeAttribute('aria-invalid');
  const status = $('[data-role=form-status]', root);
  if (status) {
    status.hidden = true;
    status.textContent = '';
  }
}

/** The `[data-field]` element in `root` an error on `field` belongs to: the exact one, else the closest
 *  parent path (`messages[0].text` -> `messages`). */
function fieldElement(root, field) {
  if (!field) return null;
  let best = null;
  let bestLen = -1;
  for (const el of $$('[data-field]', root)) {
    const f = el.dataset.field;
    const fits = field === f || field.startsWith(`${f}.`) || field.startsWith(`${f}[`);
    if (fits && f.length > bestLen) {
      best = el;
      bestLen = f.length;
    }
  }
  return best;
}

/** Shows an API error in `root`: each field error next to its field, the rest in the banner. */
function showErrors(root, err) {
  clearErrors(root);
  if (!(err instanceof ApiError)) {
    showBanner(String(err?.message || err));
    return;
  }
  let list = err.errors.length ? err.errors : [];
  if (!list.length && err.field) list = [{ field: err.field, message: err.message }];
  const unplaced = [];
  for (const e of list) {
    const el = fieldElement(root, e.field);
    if (!el) {
      unplaced.push(e);
      continue;
    }
    el.classList.add('invalid');
    const input = el.matches('input, textarea, select') ? el : $('[data-main]', el) || $('input, textarea, select', el);
    if (input) input.setAttribute('aria-invalid', 'true');
    const exact = e.field === el.dataset.field;
    const msg = h('p', { class: 'field-error', 'data-test': 'field-error', 'data-error-field': e.field },
      exact ? null : h('code', {}, e.field), exact ? null : ': ', e.message);
    if (el.matches('input, textarea, select')) el.after(msg);
    else el.append(msg);
  }
  const status = $('[data-role=form-status]', root);
  if (unplaced.length || !list.length) {
    showBanner(unplaced.length ? unplaced.map((e) => `${e.field}: ${e.message}`).join(' · ') : err.message);
  } else {
    clearBanner();
  }
  if (status && list.length) {
    status.textContent = `Nothing was saved: ${list.length === 1 ? 'one problem' : `${list.length} problems`} to fix (marked below).`;
    status.hidden = false;
  }
}

/** Runs `fn` with `button` disabled; errors go to `root` (fields) or the banner. */
async function busy(button, root, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    if (root) showErrors(root, e);
    else showBanner(e.message);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function field(label, name, input, hint) {
  return h('div', { class: 'field', 'data-field': name },
    h('label', { for: input.id }, label), input, hint ? h('p', { class: 'hint' }, hint) : null);
}

// ---------------------------------------------------------------------------------------------------------
// Session, navigation and routing

const ROLES = ['viewer', 'editor', 'approver', 'admin'];
const state = { me: null, nav: 0, cleanups: [] };
const can = (role) => state.me && ROLES.indexOf(state.me.role) >= ROLES.indexOf(role);

function signedOut(message) {
  state.me = null;
  renderSignIn(message);
}

function renderChrome() {
  const signedIn = !!state.me;
  $('#nav').hidden = !signedIn;
  $('#whoami').hidden = !signedIn;
  if (!signedIn) return;
  $('#me-email').textContent = state.me.email;
  $('#me-role').textContent = state.me.role;
  $('#nav-users').hidden = state.me.role !== 'admin';
  $('#signout').hidden = state.me.auth === 'iap';
}

function cleanup() {
  for (const fn of state.cleanups.splice(0)) fn();
}

/** A fresh page: clears the previous one (its timers) and returns a handle whose `alive()` turns false
 *  once the user has moved on, so late answers never write into another page. */
function newPage(title, ...actions) {
  cleanup();
  const token = ++state.nav;
  const main = $('#app');
  main.replaceChildren();
  document.title = `${title} · segcast`;
  const head = h('div', { class: 'page-head' }, h('h1', { id: 'page-title', 'data-test': 'page-title' }, title),
    h('div', { class: 'page-actions' }, actions));
  main.append(head);
  return {
    main,
    head,
    alive: () => token === state.nav,
    add: (...nodes) => append(main, nodes),
    /** Calls `fn` now and every `ms` while the page is shown and `fn` does not return false. */
    poll(ms, fn) {
      let timer = null;
      const run = async () => {
        if (token !== state.nav) return;
        let again = true;
        try {
          again = await fn();
        } catch (e) {
          if (token === state.nav && e.status !== 401) showBanner(e.message);
        }
        if (again !== false && token === state.nav) timer = setTimeout(run, ms);
      };
      state.cleanups.push(() => clearTimeout(timer));
      run();
    },
  };
}

function renderSignIn(message) {
  cleanup();
  state.nav += 1;
  renderChrome();
  document.title = 'Sign in · segcast';
  const email = h('input', { id: 'signin-email', 'data-test': 'signin-email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'signin-password', 'data-test': 'signin-password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { id: 'signin-submit', 'data-test': 'signin-submit', type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { id: 'signin-form', class: 'card narrow', novalidate: true },
    h('h1', {}, 'Sign in to segcast'),
    message ? h('p', { class: 'muted' }, message) : null,
    field('Email', 'email', email),
    field('Password', 'password', password),
    h('p', { class: 'form-status error', 'data-role': 'form-status', hidden: true }),
    submit);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, form, async () => {
      const session = await api('POST', '/api/session', { email: email.value.trim(), password: password.value });
      password.value = '';
      state.me = await api('GET', '/api/me').catch(() => ({ ...session.user, auth: 'local' }));
      clearBanner();
      renderChrome();
      if (!location.hash || location.hash === '#/signin') location.hash = '#/campaigns';
      else route();
    });
  });
  $('#app').replaceChildren(form);
  email.focus();
}

$('#signout').addEventListener('click', async () => {
  await api('DELETE', '/api/session').catch(() => {});
  state.me = null;
  location.hash = '#/campaigns';
  renderSignIn('You are signed out.');
});

const ROUTES = [
  [/^\/campaigns$/, () => pageCampaigns()],
  [/^\/campaigns\/new$/, () => pageCampaignForm(null)],
  [/^\/campaigns\/([^/]+)\/edit$/, (id) => pageCampaignForm(id)],
  [/^\/campaigns\/([^/]+)$/, (id) => pageCampaign(id)],
  [/^\/contents$/, () => pageContents()],
  [/^\/contents\/new$/, () => pageContent(null)],
  [/^\/contents\/([^/]+)$/, (id) => pageContent(id)],
  [/^\/segments$/, () => pageSegments()],
  [/^\/segments\/new$/, () => pageSegment(null)],
  [/^\/segments\/([^/]+)$/, (id) => pageSegment(id)],
  [/^\/channels$/, () => pageChannels()],
  [/^\/audit$/, () => pageAudit()],
  [/^\/users$/, () => pageUsers()],
];

async function route() {
  if (!state.me) {
    await boot();
    return;
  }
  clearBanner();
  $('#flash').hidden = true;
  const path = (location.hash || '#/campaigns').slice(1) || '/campaigns';
  const section = path.split('/')[1];
  for (const a of $$('#nav a')) a.classList.toggle('active', a.dataset.section === section);
  if (pendingFlash) {
    flash(pendingFlash);
    pendingFlash = null;
  }
  for (const [re, page] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      try {
        await page(...m.slice(1).map(decodeURIComponent));
      } catch (e) {
        if (e.status !== 401) showBanner(e.message);
      }
      return;
    }
  }
  location.hash = '#/campaigns';
}

async function boot() {
  try {
    state.me = await api('GET', '/api/me');
  } catch (e) {
    if (e.status !== 401) {
      const p = newPage('The console is not available');
      p.add(h('p', {}, e.message), h('button', { type: 'button', onclick: () => route() }, 'Retry'));
    }
    return;
  }
  renderChrome();
  await route();
}

window.addEventListener('hashchange', () => route());
boot();

// ---------------------------------------------------------------------------------------------------------
// Tables

function table(id, headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty muted', id: `${id}-empty`, 'data-test': 'empty' }, empty);
  return h('table', { id, 'data-test': id },
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows));
}

const idLink = (href, text, test) => h('a', { href, 'data-test': test }, text);

// ---------------------------------------------------------------------------------------------------------
// Channels

async function pageChannels() {
  const p = newPage('Channels');
  const listBox = h('div', { id: 'channels-list' });
  p.add(h('p', { class: 'muted' }, 'The LINE Official Accounts campaigns send from. A channel secret is stored safely and never shown again.'), listBox);

  const load = async () => {
    const channels = await api('GET', '/api/channels');
    if (!p.alive()) return;
    listBox.replaceChildren(table('channels-table', ['Channel ID', 'Name', 'Secret', 'Updated', ''],
      channels.map((c) => h('tr', { 'data-test': 'channel-row', 'data-id': c.id },
        h('td', { class: 'mono' }, c.id),
        h('td', {}, c.name),
        h('td', { 'data-test': 'channel-secret' }, c.has_secret ? h('span', { class: 'tag ok' }, 'secret stored') : h('span', { class: 'tag warn' }, 'no secret')),
        h('td', {}, fmtDate(c.updated_at)),
        h('td', {}, can('admin') ? h('button', { type: 'button', class: 'link', 'data-test': 'channel-edit', onclick: () => edit(c) }, 'Edit') : null))),
      'No channels yet.'));
  };

  if (!can('admin')) {
    await load();
    return;
  }
  const id = h('input', { id: 'channel-id', 'data-test': 'channel-id', inputmode: 'numeric', autocomplete: 'off', placeholder: 'e.g. 1656000001' });
  const name = h('input', { id: 'channel-name', 'data-test': 'channel-name', autocomplete: 'off' });
  const secret = h('input', { id: 'channel-secret', 'data-test': 'channel-secret-input', type: 'password', autocomplete: 'new-password' });
  const save = h('button', { id: 'channel-save', 'data-test': 'channel-save', type: 'submit', class: 'primary' }, 'Register channel');
  const cancelEdit = h('button', { type: 'button', id: 'channel-cancel-edit', hidden: true, onclick: () => reset() }, 'Cancel');
  const heading = h('h2', {}, 'Register a channel');
  let editing = null;
  const form = h('form', { id: 'channel-form', class: 'card', novalidate: true }, heading,
    h('div', { class: 'grid3' },
      field('Channel ID', 'id', id, 'From the LINE Developers console (digits).'),
      field('Name', 'name', name),
      field('Channel secret', 'secret', secret, 'Stored encrypted; it is never displayed after saving.')),
    h('p', { class: 'form-status error', 'data-role': 'form-status', hidden: true }),
    h('div', { class: 'buttons' }, save, cancelEdit));

  function reset() {
    editing = null;
    form.reset();
    id.readOnly = false;
    heading.textContent = 'Register a channel';
    save.textContent = 'Register channel';
    secret.placeholder = '';
    cancelEdit.hidden = true;
    clearErrors(form);
  }
  function edit(c) {
    editing = c.id;
    id.value = c.id;
    id.readOnly = true;
    name.value = c.name;
    secret.value = '';
    secret.placeholder = c.has_secret ? 'secret stored: leave empty to keep it' : '';
    heading.textContent = `Edit channel ${c.id}`;
    save.textContent = 'Save channel';
    cancelEdit.hidden = false;
    name.focus();
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(save, form, async () => {
      clearErrors(form);
      let saved;
      if (editing) {
        const body = { name: name.value.trim() };
        if (secret.value) body.secret = secret.value;
        saved = await api('PUT', `/api/channels/${enc(editing)}`, body);
      } else {
        saved = await api('POST', '/api/channels', { id: id.value.trim(), name: name.value.trim(), secret: secret.value });
      }
      secret.value = '';
      reset();
      flash(`Channel ${saved.id} saved${saved.has_secret ? ': secret stored' : ''}.`);
      await load();
    });
  });
  p.add(form);
  await load();
}

// ---------------------------------------------------------------------------------------------------------
// Contents

const TEMPLATES = {
  text: { type: 'text', text: 'Hello! Our autumn sale starts today.' },
  image: {
    type: 'image',
    originalContentUrl: 'https://example.com/images/sale.jpg',
    previewImageUrl: 'https://example.com/images/sale-preview.jpg',
  },
  sticker: { type: 'sticker', packageId: '446', stickerId: '1988' },
  flex: {
    type: 'flex',
    altText: 'Autumn sale',
    contents: {
      type: 'bubble',
      body: {
        type: 'box',
        layout: 'vertical',
        contents: [
          { type: 'text', text: 'Autumn sale', weight: 'bold', size: 'xl' },
          { type: 'text', text: 'Up to 30% off until Sunday.', wrap: true },
        ],
      },
    },
  },
  buttons: {
    type: 'template',
    altText: 'Autumn sale',
    template: {
      type: 'buttons',
      title: 'Autumn sale',
      text: 'Up to 30% off until Sunday.',
      actions: [{ type: 'uri', label: 'Shop now', uri: 'https://example.com/sale' }],
    },
  },
};
const TEMPLATE_LABELS = { text: 'Text', image: 'Image', sticker: 'Sticker', flex: 'Flex message', buttons: 'Template (buttons)' };

/** `{{column}}` placeholders (not `{{link:ID}}`) anywhere in the messages' strings. */
function placeholdersOf(value, out = new Set()) {
  if (typeof value === 'string') {
    for (const m of value.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) if (!m[1].startsWith('link:')) out.add(m[1]);
  } else if (Array.isArray(value)) value.forEach((v) => placeholdersOf(v, out));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => placeholdersOf(v, out));
  return out;
}

/** Text with `{{...}}` highlighted. */
function withMarks(text) {
  const parts = String(text ?? '').split(/(\{\{[^}]*\}\})/g);
  return parts.map((s) => (s.startsWith('{{') ? h('mark', {}, s) : s));
}

function textsIn(value, out = []) {
  if (out.length >= 6) return out;
  if (Array.isArray(value)) value.forEach((v) => textsIn(v, out));
  else if (value && typeof value === 'object') {
    if (typeof value.text === 'string' && value.type !== 'span') out.push(value.text);
    for (const [k, v] of Object.entries(value)) if (k !== 'text' && typeof v === 'object') textsIn(v, out);
  }
  return out;
}

function previewMessage(m, i) {
  const type = m && typeof m === 'object' ? m.type : typeof m;
  const item = (cls, ...children) => h('div', { class: `msg ${cls}`, 'data-test': 'preview-item', 'data-type': type, 'data-index': i }, children);
  switch (type) {
    case 'text':
      return item('bubble', withMarks(m.text));
    case 'image': {
      const img = h('img', { src: m.previewImageUrl || m.originalContentUrl || '', alt: '', loading: 'lazy' });
      img.addEventListener('error', () => img.remove());
      return item('box media', h('span', { class: 'label' }, 'Image'), img, h('span', { class: 'url' }, m.originalContentUrl || '(no URL)'));
    }
    case 'video':
    case 'audio':
      return item('box media', h('span', { class: 'label' }, type === 'video' ? 'Video' : 'Audio'), h('span', { class: 'url' }, m.originalContentUrl || '(no URL)'));
    case 'sticker':
      return item('box sticker', h('span', { class: 'label' }, 'Sticker'), `package ${m.packageId ?? '?'} · sticker ${m.stickerId ?? '?'}`);
    case 'flex': {
      const c = m.contents || {};
      const shape = c.type === 'carousel' ? `carousel of ${(c.contents || []).length} bubbles` : c.type || '?';
      return item('card', h('span', { class: 'label' }, `Flex message (${shape})`),
        h('strong', {}, withMarks(m.altText || '(no altText)')),
        h('ul', {}, textsIn(c).map((t) => h('li', {}, withMarks(t)))));
    }
    case 'template': {
      const t = m.template || {};
      const actions = t.actions || (t.columns || []).flatMap((col) => col.actions || []) || [];
      return item('card', h('span', { class: 'label' }, `Template (${t.type || '?'})`),
        t.title ? h('strong', {}, withMarks(t.title)) : null,
        t.text ? h('p', {}, withMarks(t.text)) : null,
        t.columns ? h('p', { class: 'muted' }, `${t.columns.length} columns`) : null,
        h('div', { class: 'actions' }, actions.slice(0, 8).map((a) => h('span', { class: 'pseudo-button' }, a.label || a.type))),
        h('p', { class: 'muted' }, 'Shown as: ', withMarks(m.altText || '(no altText)')));
    }
    default:
      return item('box', h('span', { class: 'label' }, `${type || 'unknown'} message`), h('code', {}, JSON.stringify(m).slice(0, 120)));
  }
}

async function pageContents() {
  const p = newPage('Contents', can('editor') ? h('a', { href: '#/contents/new', id: 'new-content', 'data-test': 'new-content', class: 'button primary' }, 'New content') : null);
  const contents = await api('GET', '/api/contents');
  if (!p.alive()) return;
  p.add(table('contents-table', ['Name', 'Messages', 'Delivery', 'Version', 'Updated'],
    contents.map((c) => h('tr', { 'data-test': 'content-row', 'data-id': c.id },
      h('td', {}, idLink(`#/contents/${enc(c.id)}`, c.name, 'content-link')),
      h('td', {}, (c.messages || []).map((m) => m.type).join(', ')),
      h('td', {}, h('span', { class: `tag ${c.delivery}` }, c.delivery)),
      h('td', {}, `v${c.version ?? 1}`),
      h('td', {}, fmtDate(c.updated_at), c.updated_by ? ` by ${c.updated_by}` : ''))),
    'No content yet: create the messages your campaigns will send.'));
}

async function pageContent(id) {
  const p = newPage(id ? 'Content' : 'New content');
  const [content, channels] = await Promise.all([
    id ? api('GET', `/api/contents/${enc(id)}`) : null,
    api('GET', '/api/channels').catch(() => []),
  ]);
  if (!p.alive()) return;
  if (content) $('#page-title').textContent = `Content: ${content.name}`;
  const readOnly = !can('editor');

  const name = h('input', { id: 'content-name', 'data-test': 'content-name', value: content?.name || '', autocomplete: 'off', readOnly });
  const typePicker = h('select', { id: 'message-type', 'data-test': 'message-type' },
    Object.entries(TEMPLATE_LABELS).map(([k, label]) => h('option', { value: k }, label)));
  const addMessage = h('button', { type: 'button', id: 'insert-message', 'data-test': 'insert-message', disabled: readOnly }, 'Add message');
  const messages = h('textarea', {
    id: 'content-messages', 'data-test': 'content-messages', 'data-main': true, class: 'mono', rows: 16, spellcheck: 'false', readOnly,
    value: JSON.stringify(content?.messages || [], null, 2),
  });
  const jsonStatus = h('p', { id: 'messages-json-status', class: 'hint', 'data-test': 'messages-json-status' });
  const linksBox = h('div', { id: 'links', 'data-field': 'links', class: 'links' });
  const addLink = h('button', { type: 'button', id: 'add-link', 'data-test': 'add-link', disabled: readOnly, onclick: () => linkRow('', '') }, 'Add tracked link');
  const channel = h('select', { id: 'content-channel', 'data-test': 'content-channel' },
    h('option', { value: '' }, 'segcast’s checks only'),
    channels.map((c) => h('option', { value: c.id }, `${c.name} (${c.id})`)));
  const validate = h('button', { type: 'button', id: 'content-validate', 'data-test': 'content-validate' }, 'Validate');
  const save = h('button', { type: 'submit', id: 'content-save', 'data-test': 'content-save', class: 'primary', disabled: readOnly }, content ? 'Save new version' : 'Save content');
  const result = h('div', { id: 'validate-result', 'data-test': 'validate-result', hidden: true });
  const delivery = h('p', { id: 'delivery-mode', 'data-test': 'delivery-mode' });
  const preview = h('div', { id: 'preview', 'data-test': 'preview', class: 'phone' });

  function linkRow(linkId, url) {
    const idInput = h('input', { class: 'link-id mono', 'data-test': 'link-id', value: linkId, placeholder: 'id, e.g. sale', autocomplete: 'off', readOnly });
    const urlInput = h('input', { class: 'link-url', 'data-test': 'link-url', type: 'url', value: url, placeholder: 'https://…', autocomplete: 'off', readOnly });
    const row = h('div', { class: 'link-row', 'data-test': 'link-row', 'data-field': `links.${linkId}` },
      idInput, h('span', { class: 'arrow' }, '→'), urlInput,
      h('button', { type: 'button', class: 'link', title: 'Remove', disabled: readOnly, onclick: () => row.remove() }, 'Remove'));
    idInput.addEventListener('input', () => { row.dataset.field = `links.${idInput.value.trim()}`; });
    linksBox.append(row);
    return row;
  }
  for (const [k, v] of Object.entries(content?.links || {})) linkRow(k, v);

  const links = () => Object.fromEntries($$('.link-row', linksBox)
    .map((r) => [$('.link-id', r).value.trim(), $('.link-url', r).value.trim()])
    .filter(([k, v]) => k || v));

  /** The textarea's messages, or null (with the JSON error shown) if it does not parse. */
  function parsed() {
    try {
      const v = JSON.parse(messages.value || '[]');
      return { ok: true, value: v };
    } catch (e) {
      return { ok: false, error: e.message };
    }
  }

  function refresh() {
    const r = parsed();
    if (!r.ok) {
      jsonStatus.textContent = `Not valid JSON yet: ${r.error}`;
      jsonStatus.className = 'hint error';
      return;
    }
    const list = Array.isArray(r.value) ? r.value : [r.value];
    jsonStatus.textContent = `Valid JSON: ${list.length} message${list.length === 1 ? '' : 's'} (LINE allows 1 to 5).`;
    jsonStatus.className = list.length >= 1 && list.length <= 5 ? 'hint' : 'hint error';
    preview.replaceChildren(...(list.length ? list.map(previewMessage) : [h('p', { class: 'muted' }, 'Add a message to see it here.')]));
    const fields = [...placeholdersOf(list)];
    delivery.dataset.mode = fields.length ? 'push' : 'multicast';
    setChildren(delivery, fields.length
      ? [h('strong', {}, 'Push'), ': personalised with ', fields.map((f, i) => [i ? ', ' : '', h('code', {}, `{{${f}}}`)]),
        ' from the segment’s columns (one request per recipient; the segment must return these columns).']
      : [h('strong', {}, 'Multicast'), ': everyone receives the same messages (up to 500 recipients per request).']);
  }
  messages.addEventListener('input', () => { result.hidden = true; refresh(); });

  addMessage.addEventListener('click', () => {
    const r = parsed();
    if (!r.ok) {
      showBanner('Fix the JSON in the messages editor before adding a message.');
      return;
    }
    const list = Array.isArray(r.value) ? r.value : [r.value];
    list.push(structuredClone(TEMPLATES[typePicker.value]));
    messages.value = JSON.stringify(list, null, 2);
    refresh();
  });

  const form = h('form', { id: 'content-form', novalidate: true, class: 'editor' },
    h('div', { class: 'editor-main' },
      field('Name', 'name', name, 'For you and your team; recipients never see it.'),
      h('div', { class: 'field', 'data-field': 'messages' },
        h('label', { for: 'content-messages' }, 'Messages (JSON array of LINE message objects)'),
        h('div', { class: 'inline' }, typePicker, addMessage),
        messages, jsonStatus),
      h('div', { class: 'field' },
        h('label', {}, 'Tracked links'),
        h('p', { class: 'hint' }, 'Write ', h('code', {}, '{{link:ID}}'), ' in a message; each click is counted and redirected to the URL.'),
        linksBox, addLink),
      field('Check with LINE too', 'channel_id', channel, 'Optional: also ask LINE’s validate endpoint with this channel.'),
      h('p', { class: 'form-status error', 'data-role': 'form-status', hidden: true }),
      result,
      h('div', { class: 'buttons' }, validate, save)),
    h('aside', { class: 'editor-side' }, h('h2', {}, 'Preview'), delivery, preview));

  const body = () => {
    const r = parsed();
    if (!r.ok) {
      throw new ApiError(422, { error: `messages: not valid JSON: ${r.error}`, errors: [{ field: 'messages', message: `not valid JSON: ${r.error}` }] });
    }
    const b = { name: name.value.trim(), messages: r.value, links: links() };
    if (channel.value) b.channel_id = channel.value;
    return b;
  };

  validate.addEventListener('click', () => busy(validate, form, async () => {
    clearErrors(form);
    result.hidden = true;
    const v = await api('POST', '/api/contents/validate', body());
    result.replaceChildren(h('p', { class: 'ok', 'data-test': 'validate-ok' },
      '✓ Valid. Delivery: ', h('strong', { 'data-test': 'validate-delivery' }, v.delivery),
      v.placeholders?.length ? ` (placeholders: ${v.placeholders.join(', ')})` : ''));
    result.hidden = false;
  }));

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(save, form, async () => {
      clearErrors(form);
      const b = body();
      const saved = id
        ? await api('PUT', `/api/contents/${enc(id)}`, b)
        : await api('POST', '/api/contents', b);
      if (id) {
        flash(`Saved version ${saved.version}.`);
        pageContent(id);
      } else {
        flash(`Content “${saved.name}” saved.`, true);
        location.hash = `#/contents/${enc(saved.id)}`;
      }
    });
  });

  p.add(form);
  refresh();

  if (content) {
    const versions = await api('GET', `/api/contents/${enc(id)}/versions`).catch(() => []);
    if (!p.alive()) return;
    p.add(h('section', { id: 'versions' }, h('h2', {}, 'Version history'),
      table('versions-table', ['Version', 'Saved', 'By', 'Messages', ''],
        versions.map((v) => h('tr', { 'data-test': 'version-row', 'data-version': v.version },
          h('td', {}, `v${v.version}`, v.version === content.version ? h('span', { class: 'tag' }, 'current') : null),
          h('td', {}, fmtDate(v.updated_at)),
          h('td', {}, v.updated_by || '–'),
          h('td', {}, (v.messages || []).map((m) => m.type).join(', ')),
          h('td', {}, readOnly ? null : h('button', {
            type: 'button', class: 'link', 'data-test': 'version-load',
            onclick: () => {
              messages.value = JSON.stringify(v.messages, null, 2);
              linksBox.replaceChildren();
              for (const [k, u] of Object.entries(v.links || {})) linkRow(k, u);
              refresh();
              flash(`Version ${v.version} loaded into the editor: save to make it the current version.`);
              window.scrollTo(0, 0);
            },
          }, 'Load into editor')))),
        'No versions.')));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Segments

async function pageSegments() {
  const p = newPage('Segments', can('editor') ? h('a', { href: '#/segments/new', id: 'new-segment', 'data-test': 'new-segment', class: 'button primary' }, 'New segment') : null);
  const segments = await api('GET', '/api/segments');
  if (!p.alive()) return;
  p.add(table('segments-table', ['Name', 'Columns', 'Updated'],
    segments.map((s) => h('tr', { 'data-test': 'segment-row', 'data-id': s.id },
      h('td', {}, idLink(`#/segments/${enc(s.id)}`, s.name, 'segment-link')),
      h('td', { class: 'mono' }, (s.columns || []).map((c) => (typeof c === 'string' ? c : c.name)).join(', ')),
      h('td', {}, fmtDate(s.updated_at), s.updated_by ? ` by ${s.updated_by}` : ''))),
    'No segments yet: a segment is a BigQuery query returning the LINE user IDs to send to.'));
}

function previewTable(preview) {
  const cols = (preview.columns || []).map((c) => (typeof c === 'string' ? { name: c } : c));
  const rows = preview.sample || [];
  return h('div', { id: 'segment-preview-result', 'data-test': 'segment-preview-result', class: 'card' },
    h('div', { class: 'stats' },
      stat('Recipients', fmtNum(preview.count), 'preview-count'),
      stat('Data scanned', fmtBytes(preview.bytes), 'preview-bytes'),
      stat('Columns', cols.map((c) => c.name).join(', ') || '–', 'preview-columns')),
    rows.length
      ? h('table', { id: 'preview-sample', 'data-test': 'preview-sample' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c.name, c.type ? h('small', {}, ` ${c.type}`) : null)))),
        h('tbody', {}, rows.map((r) => h('tr', { 'data-test': 'sample-row' }, cols.map((c) => h('td', {}, r[c.name] === null ? '∅' : String(r[c.name] ?? '')))))))
      : h('p', { class: 'muted' }, 'The query returns no rows.'));
}

async function pageSegment(id) {
  const p = newPage(id ? 'Segment' : 'New segment');
  const segment = id ? await api('GET', `/api/segments/${enc(id)}`) : null;
  if (!p.alive()) return;
  if (segment) $('#page-title').textContent = `Segment: ${segment.name}`;
  const readOnly = !can('editor');
  const name = h('input', { id: 'segment-name', 'data-test': 'segment-name', value: segment?.name || '', autocomplete: 'off', readOnly });
  const sql = h('textarea', {
    id: 'segment-sql', 'data-test': 'segment-sql', class: 'mono', rows: 10, spellcheck: 'false', readOnly,
    value: segment?.sql || '', placeholder: 'SELECT user_id, name\nFROM `my_dataset.members`\nWHERE opted_in',
  });
  const previewBtn = h('button', { type: 'button', id: 'segment-preview', 'data-test': 'segment-preview', disabled: readOnly }, 'Preview');
  const save = h('button', { type: 'submit', id: 'segment-save', 'data-test': 'segment-save', class: 'primary', disabled: readOnly }, 'Save segment');
  const out = h('div', { id: 'segment-preview-box' });
  const form = h('form', { id: 'segment-form', novalidate: true },
    field('Name', 'name', name),
    field('BigQuery SQL', 'sql', sql, 'One read-only SELECT that returns a user_id column (LINE user IDs); other columns can fill {{placeholders}} in the content.'),
    h('p', { class: 'form-status error', 'data-role': 'form-status', hidden: true }),
    h('div', { class: 'buttons' }, previewBtn, save),
    out);
  previewBtn.addEventListener('click', () => busy(previewBtn, form, async () => {
    clearErrors(form);
    out.replaceChildren(h('p', { class: 'muted', id: 'preview-running' }, 'Running the query…'));
    try {
      const preview = await api('POST', '/api/segments/preview', { sql: sql.value });
      if (p.alive()) out.replaceChildren(previewTable(preview));
    } catch (e) {
      out.replaceChildren();
      throw e;
    }
  }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(save, form, async () => {
      clearErrors(form);
      const b = { name: name.value.trim(), sql: sql.value };
      const saved = id ? await api('PUT', `/api/segments/${enc(id)}`, b) : await api('POST', '/api/segments', b);
      flash(`Segment “${saved.name}” saved.`, !id);
      if (id) pageSegment(id);
      else location.hash = `#/segments/${enc(saved.id)}`;
    });
  });
  p.add(form);
  if (segment) p.add(h('p', { class: 'muted' }, `Columns: ${(segment.columns || []).map((c) => (typeof c === 'string' ? c : `${c.name} (${c.type})`)).join(', ') || '–'} · updated ${fmtDate(segment.updated_at)}${segment.updated_by ? ` by ${segment.updated_by}` : ''}`));
}

// ---------------------------------------------------------------------------------------------------------
// Campaigns

async function pageCampaigns() {
  const p = newPage('Campaigns', can('editor') ? h('a', { href: '#/campaigns/new', id: 'new-campaign', 'data-test': 'new-campaign', class: 'button primary' }, 'New campaign') : null);
  const box = h('div', { id: 'campaigns-list' });
  p.add(box);
  p.poll(5000, async () => {
    const campaigns = await api('GET', '/api/campaigns');
    if (!p.alive()) return false;
    campaigns.sort((a, b) => String(b.send_at).localeCompare(String(a.send_at)));
    box.replaceChildren(table('campaigns-table', ['Name', 'Status', 'Send time', 'Delivered / targeted', ''],
      campaigns.map((c) => h('tr', { 'data-test': 'campaign-row', 'data-id': c.id, 'data-status': c.status },
        h('td', {}, idLink(`#/campaigns/${enc(c.id)}`, c.name, 'campaign-link')),
        h('td', {}, badge(c.status), c.approval && !c.approval.approved_by && c.status === 'draft' ? h('span', { class: 'tag warn' }, 'awaiting approval') : null),
        h('td', {}, fmtInZone(c.send_at, c.time_zone), c.time_zone ? h('small', { class: 'muted' }, ` ${c.time_zone}`) : null),
        h('td', {}, c.counts ? `${fmtNum(c.counts.delivered)} / ${fmtNum(c.counts.targeted)}` : '–'),
        h('td', {}, c.dry_run ? h('span', { class: 'tag' }, 'dry run') : null))),
      'No campaigns yet.'));
    // Refresh while something is moving.
    return campaigns.some((c) => RUNNING.includes(c.status) || c.status === 'scheduled');
  });
}

function defaultSendAt(tz) {
  const soon = Date.now() + 15 * 60 * 1000;
  const rounded = Math.ceil(soon / (5 * 60 * 1000)) * 5 * 60 * 1000;
  return utcToZoned(rounded, tz);
}

async function pageCampaignForm(id) {
  const p = newPage(id ? 'Edit campaign' : 'New campaign');
  const [campaign, contents, segments, channels] = await Promise.all([
    id ? api('GET', `/api/campaigns/${enc(id)}`) : null,
    api('GET', '/api/contents'),
    api('GET', '/api/segments'),
    api('GET', '/api/channels'),
  ]);
  if (!p.alive()) return;
  const tzDefault = campaign?.time_zone || BROWSER_TZ;
  const select = (sid, items, current, label) => h('select', { id: sid, 'data-test': sid },
    h('option', { value: '' }, `Choose ${label}…`),
    items.map((x) => h('option', { value: x.id, selected: x.id === current }, x.label)));

  const name = h('input', { id: 'campaign-name', 'data-test': 'campaign-name', value: campaign?.name || '', autocomplete: 'off' });
  const content = select('campaign-content', contents.map((c) => ({ id: c.id, label: `${c.name} (${c.delivery}, v${c.version ?? 1})` })), campaign?.content_id, 'content');
  const segment = select('campaign-segment', segments.map((s) => ({ id: s.id, label: s.name })), campaign?.segment_id, 'a segment');
  const channel = select('campaign-channel', channels.map((c) => ({ id: c.id, label: `${c.name} (${c.id})` })), campaign?.channel_id || (channels.length === 1 ? channels[0].id : null), 'a channel');
  const tz = h('select', { id: 'campaign-tz', 'data-test': 'campaign-tz' },
    timeZones().map((z) => h('option', { value: z, selected: z === tzDefault }, z)));
  const past = campaign && Date.parse(campaign.send_at) <= Date.now();
  const sendAt = h('input', {
    id: 'campaign-send-at', 'data-test': 'campaign-send-at', type: 'datetime-local',
    value: campaign && !past ? utcToZoned(campaign.send_at, tzDefault) : defaultSendAt(tzDefault),
  });
  const sendNow = h('input', { id: 'campaign-send-now', 'data-test': 'campaign-send-now', type: 'checkbox', checked: !!past });
  const syncNow = () => { sendAt.disabled = sendNow.checked; };
  sendNow.addEventListener('change', syncNow);
  syncNow();
  const quietStart = h('input', { id: 'quiet-start', 'data-test': 'quiet-start', type: 'time', value: campaign?.quiet_hours?.start || '' });
  const quietEnd = h('input', { id: 'quiet-end', 'data-test': 'quiet-end', type: 'time', value: campaign?.quiet_hours?.end || '' });
  const dryRun = h('input', { id: 'campaign-dry-run', 'data-test': 'campaign-dry-run', type: 'checkbox', checked: !!campaign?.dry_run });
  const save = h('button', { type: 'submit', id: 'campaign-save', 'data-test': 'campaign-save', class: 'primary' }, id ? 'Save changes' : 'Create draft');
  const form = h('form', { id: 'campaign-form', novalidate: true },
    field('Name', 'name', name),
    h('div', { class: 'grid3' },
      field('Content', 'content_id', content),
      field('Segment', 'segment_id', segment),
      field('Channel', 'channel_id', channel)),
    h('div', { class: 'grid3' },
      h('div', { class: 'field', 'data-field': 'send_at' },
        h('label', { for: 'campaign-send-at' }, 'Send time'), sendAt,
        h('div', { class: 'check' }, sendNow, h('label', { for: 'campaign-send-now' }, 'As soon as it is scheduled'))),
      field('Time zone', 'time_zone', tz, 'The send time and quiet hours are in this zone.'),
      h('div', { class: 'field', 'data-field': 'quiet_hours' },
        h('label', { for: 'quiet-start' }, 'Quiet hours (optional)'),
        h('div', { class: 'inline' },
          h('span', { 'data-field': 'quiet_hours.start' }, quietStart), ' to ', h('span', { 'data-field': 'quiet_hours.end' }, quietEnd)),
        h('p', { class: 'hint' }, 'A campaign due inside this window waits until it ends (e.g. 21:00 to 08:00).'))),
    h('div', { class: 'field check', 'data-field': 'dry_run' },
      dryRun, h('label', { for: 'campaign-dry-run' }, 'Dry run: check everything with LINE but send nothing')),
    h('p', { class: 'form-status error', 'data-role': 'form-status', hidden: true }),
    h('div', { class: 'buttons' }, save, h('a', { href: id ? `#/campaigns/${enc(id)}` : '#/campaigns', class: 'button' }, 'Cancel')));

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(save, form, async () => {
      clearErrors(form);
      const local = [];
      if (!sendNow.checked && !sendAt.value) local.push({ field: 'send_at', message: 'pick a date and time' });
      if (!!quietStart.value !== !!quietEnd.value) local.push({ field: 'quiet_hours', message: 'give both a start and an end, or neither' });
      if (local.length) throw new ApiError(422, { error: local[0].message, errors: local });
      const b = {
        name: name.value.trim(),
        content_id: content.value,
        segment_id: segment.value,
        channel_id: channel.value,
        // A wall-clock time in the chosen zone; the console converts it (omitted: when scheduled).
        send_at: sendNow.checked ? null : sendAt.value,
        time_zone: tz.value,
        dry_run: dryRun.checked,
      };
      if (quietStart.value) b.quiet_hours = { start: quietStart.value.slice(0, 5), end: quietEnd.value.slice(0, 5) };
      if (campaign) b.max_rounds = campaign.max_rounds;
      const saved = id ? await api('PUT', `/api/campaigns/${enc(id)}`, b) : await api('POST', '/api/campaigns', b);
      flash(id ? 'Campaign saved.' : 'Draft created: send a test, then schedule it.', true);
      location.hash = `#/campaigns/${enc(saved.id)}`;
    });
  });
  p.add(form);
  if (!contents.length || !segments.length || !channels.length) {
    p.add(h('p', { class: 'hint' }, 'A campaign needs ',
      [!contents.length && h('a', { href: '#/contents/new' }, 'content'), !segments.length && h('a', { href: '#/segments/new' }, 'a segment'),
        !channels.length && h('a', { href: '#/channels' }, 'a channel')].filter(Boolean).flatMap((x, i) => (i ? [', ', x] : [x])), ' first.'));
  }
}

function stat(label, value, test) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, label), h('span', { class: 'stat-value', id: test, 'data-test': test }, value));
}

/** Deliveries over time as an inline SVG: stacked bars (delivered, failed) per time bucket, and the cumulative
 *  delivered count as a line. */
function timelineChart(points) {
  const W = 720;
  const H = 220;
  const pad = { l: 56, r: 56, t: 12, b: 28 };
  const data = points
    .map((p) => ({ t: typeof p.t === 'number' ? (p.t > 1e12 ? p.t : p.t * 1000) : Date.parse(p.t), d: Number(p.delivered) || 0, f: Number(p.failed) || 0 }))
    .filter((p) => !Number.isNaN(p.t))
    .sort((a, b) => a.t - b.t);
  const wrap = h('figure', { id: 'timeline', 'data-test': 'timeline' });
  if (!data.length) {
    wrap.append(h('p', { class: 'muted', 'data-test': 'timeline-empty' }, 'Nothing delivered yet.'));
    return wrap;
  }
  // Points are per second (per minute for long campaigns): the smallest gap is the step.
  let step = 60 * 1000;
  for (let i = 1; i < data.length; i += 1) if (data[i].t > data[i - 1].t) step = Math.min(step, data[i].t - data[i - 1].t);
  if (data.length < 2) step = 1000;
  const t0 = data[0].t;
  const t1 = data[data.length - 1].t + step;
  const span = t1 - t0;
  const nb = Math.min(120, Math.max(1, Math.round(span / step)));
  const bucketMs = span / nb;
  const buckets = Array.from({ length: nb }, () => ({ d: 0, f: 0 }));
  for (const p of data) {
    const i = Math.min(nb - 1, Math.floor((p.t - t0) / bucketMs));
    buckets[i].d += p.d;
    buckets[i].f += p.f;
  }
  const perSec = (b) => (b.d + b.f) / (bucketMs / 1000);
  const maxRate = Math.max(1, ...buckets.map(perSec));
  const total = data.reduce((s, p) => s + p.d, 0);
  const failed = data.reduce((s, p) => s + p.f, 0);
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const bw = iw / nb;
  const y = (rate) => pad.t + ih - (rate / maxRate) * ih;
  const bars = [];
  let cum = 0;
  const line = [`${pad.l},${pad.t + ih}`];
  buckets.forEach((b, i) => {
    const x = pad.l + i * bw;
    const dr = b.d / (bucketMs / 1000);
    const fr = b.f / (bucketMs / 1000);
    if (b.d) bars.push(h('rect', { class: 'bar-delivered', x: x + 0.5, y: y(dr), width: Math.max(1, bw - 1), height: pad.t + ih - y(dr) }));
    if (b.f) bars.push(h('rect', { class: 'bar-failed', x: x + 0.5, y: y(dr + fr), width: Math.max(1, bw - 1), height: y(dr) - y(dr + fr) }));
    cum += b.d;
    line.push(`${(x + bw).toFixed(1)},${(pad.t + ih - (cum / Math.max(1, total)) * ih).toFixed(1)}`);
  });
  const time = (ms) => new Date(ms).toLocaleTimeString();
  const svg = h('svg', {
    id: 'timeline-chart', 'data-test': 'timeline-chart', viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img',
    'data-total-delivered': total, 'data-total-failed': failed, 'data-points': data.length,
  },
  h('title', {}, `Deliveries over time: ${total} delivered, ${failed} failed`),
  h('line', { class: 'axis', x1: pad.l, y1: pad.t + ih, x2: W - pad.r, y2: pad.t + ih }),
  h('line', { class: 'axis', x1: pad.l, y1: pad.t, x2: pad.l, y2: pad.t + ih }),
  h('text', { class: 'tick', x: pad.l - 6, y: pad.t + 10, 'text-anchor': 'end' }, `${Math.round(maxRate)}/s`),
  h('text', { class: 'tick', x: pad.l - 6, y: pad.t + ih, 'text-anchor': 'end' }, '0'),
  h('text', { class: 'tick', x: W - pad.r + 6, y: pad.t + 10 }, fmtNum(total)),
  h('text', { class: 'tick', x: pad.l, y: H - 8 }, time(t0)),
  h('text', { class: 'tick', x: W - pad.r, y: H - 8, 'text-anchor': 'end' }, time(t1)),
  bars,
  h('polyline', { class: 'cumulative', points: line.join(' '), fill: 'none' }));
  wrap.append(svg, h('figcaption', { 'data-test': 'timeline-caption' },
    h('span', { class: 'key delivered' }, 'delivered/s'), ' ', h('span', { class: 'key failed' }, 'failed/s'), ' ',
    h('span', { class: 'key cumulative' }, 'delivered so far'), ' · ',
    `${fmtNum(total)} delivered and ${fmtNum(failed)} failed over ${fmtDuration(span / 1000)}, peak ${fmtNum(Math.round(maxRate))}/s`));
  return wrap;
}

function progressView(pr) {
  const targeted = Number(pr.targeted) || 0;
  const pctD = targeted ? Math.min(100, (pr.delivered / targeted) * 100) : 0;
  const pctF = targeted ? Math.min(100 - pctD, (pr.failed / targeted) * 100) : 0;
  return h('div', { id: 'progress', 'data-test': 'progress', 'data-status': pr.status },
    h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': targeted, 'aria-valuenow': pr.delivered },
      h('div', { class: 'fill delivered', style: { width: `${pctD.toFixed(2)}%` } }),
      h('div', { class: 'fill failed', style: { width: `${pctF.toFixed(2)}%` } })),
    h('div', { class: 'stats' },
      stat('Delivered', h('span', {}, h('span', { id: 'progress-delivered', 'data-test': 'progress-delivered' }, fmtNum(pr.delivered)), ' / ',
        h('span', { id: 'progress-targeted', 'data-test': 'progress-targeted' }, fmtNum(pr.targeted))), 'progress-delivered-box'),
      stat('Failed', fmtNum(pr.failed), 'progress-failed'),
      stat('Done', fmtPct(pr.done_ratio ?? (targeted ? (pr.delivered + pr.failed) / targeted : 0)), 'progress-percent'),
      pr.retryable ? stat('For the next round', fmtNum(pr.retryable), 'progress-retryable') : null,
      stat('Rate', pr.rate_per_s !== null && pr.rate_per_s !== undefined ? `${fmtNum(Math.round(pr.rate_per_s))}/s` : '–', 'progress-rate'),
      stat('Time left', FINAL.includes(pr.status) ? 'done' : fmtDuration(pr.eta_s), 'progress-eta'),
      stat('Round', pr.max_rounds ? `${fmtNum(pr.round)} of ${fmtNum(pr.max_rounds)}` : fmtNum(pr.round), 'progress-round')),
    pr.status_reason ? h('p', { class: 'muted', 'data-test': 'progress-reason' }, pr.status_reason) : null);
}

function resultsView(r, campaignId) {
  const reasons = Object.entries(r.failed_by_reason || {}).sort((a, b) => b[1] - a[1]);
  return h('div', { id: 'results', 'data-test': 'results', 'data-final': String(!!r.is_final) },
    r.is_final === false ? h('p', { class: 'hint' }, 'Live counts: the final numbers come from BigQuery when the campaign ends.') : null,
    h('div', { class: 'stats' },
      stat('Targeted', fmtNum(r.targeted), 'results-targeted'),
      stat('Delivered', fmtNum(r.delivered), 'results-delivered'),
      stat('Failed', fmtNum(r.failed), 'results-failed'),
      stat('Clicks', fmtNum(r.clicks), 'results-clicks'),
      stat('Unique clickers', fmtNum(r.unique_clickers), 'results-unique-clickers'),
      stat('Click rate', fmtPct(r.click_rate), 'results-click-rate')),
    reasons.length
      ? h('table', { id: 'failed-by-reason', 'data-test': 'failed-by-reason' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Failure reason'), h('th', {}, 'Recipients'))),
        h('tbody', {}, reasons.map(([k, n]) => h('tr', { 'data-test': 'reason-row', 'data-reason': k },
          h('td', { class: 'mono' }, k), h('td', { 'data-test': 'reason-count' }, fmtNum(n))))))
      : h('p', { class: 'muted', 'data-test': 'no-failures' }, 'No failed recipients.'),
    h('p', {}, h('a', {
      id: 'failures-csv', 'data-test': 'failures-csv', class: 'button', href: `/api/campaigns/${enc(campaignId)}/failures.csv`, download: `failures-${campaignId}.csv`,
    }, 'Download failures (CSV)')));
}

function auditTable(id, entries) {
  return table(id, ['When', 'Who', 'What', 'Target', 'Changes'],
    entries.map((e) => h('tr', { 'data-test': 'audit-row', 'data-action': e.action },
      h('td', {}, fmtDate(e.at)),
      h('td', { 'data-test': 'audit-actor' }, e.actor),
      h('td', { class: 'mono', 'data-test': 'audit-action' }, e.action),
      h('td', { class: 'mono' }, e.target),
      h('td', {}, diffView(e.before, e.after, e.action)))),
    'Nothing recorded yet.');
}

/** Flattens JSON to `path -> value` (arrays of scalars kept whole). */
function flatten(v, prefix = '', out = {}) {
  if (v && typeof v === 'object' && !(Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object'))) {
    const entries = Array.isArray(v) ? v.map((x, i) => [`[${i}]`, x]) : Object.entries(v).map(([k, x]) => [prefix ? `.${k}` : k, x]);
    if (!entries.length) out[prefix || '(value)'] = v;
    for (const [k, x] of entries) flatten(x, `${prefix}${k}`, out);
  } else {
    out[prefix || '(value)'] = v;
  }
  return out;
}

function diffView(before, after, action) {
  const a = before === null || before === undefined ? {} : flatten(before);
  const b = after === null || after === undefined ? {} : flatten(after);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const show = (v) => (v === undefined ? '' : JSON.stringify(v));
  const changed = keys.filter((k) => show(a[k]) !== show(b[k]) && k !== 'updated_at');
  const summary = before == null && after == null ? 'no details'
    : before == null ? (action && !action.endsWith('create') ? 'details' : 'created')
      : after == null ? 'deleted' : `${changed.length} field${changed.length === 1 ? '' : 's'} changed`;
  return h('details', { class: 'diff', 'data-test': 'audit-diff' },
    h('summary', {}, summary),
    changed.length
      ? h('table', { class: 'diff-table' }, h('tbody', {}, changed.slice(0, 60).map((k) => h('tr', {},
        h('td', { class: 'mono' }, k), h('td', { class: 'before mono' }, show(a[k])), h('td', { class: 'after mono' }, show(b[k]))))))
      : null,
    h('div', { class: 'json-pair' },
      h('div', {}, h('strong', {}, 'Before'), h('pre', {}, before == null ? '–' : JSON.stringify(before, null, 2))),
      h('div', {}, h('strong', {}, 'After'), h('pre', {}, after == null ? '–' : JSON.stringify(after, null, 2)))));
}

const ACTIONS = {
  edit: { label: 'Edit', when: ['draft', 'scheduled'] },
  schedule: { label: 'Schedule', when: ['draft'], primary: true },
  approve: { label: 'Approve', when: ['draft'], role: 'approver' },
  pause: { label: 'Pause', when: ['scheduled', ...RUNNING] },
  resume: { label: 'Resume', when: ['paused'], primary: true },
  cancel: { label: 'Cancel campaign', when: ['draft', 'scheduled', 'paused', ...RUNNING], danger: true },
  duplicate: { label: 'Duplicate', when: [...Object.keys(STATUS_LABELS)] },
};

async function pageCampaign(id) {
  const p = newPage('Campaign');
  let campaign = await api('GET', `/api/campaigns/${enc(id)}`);
  if (!p.alive()) return;
  const [contents, segments, channels] = await Promise.all([
    api('GET', `/api/contents/${enc(campaign.content_id)}`).then((c) => [c]).catch(() => []),
    api('GET', `/api/segments/${enc(campaign.segment_id)}`).then((s) => [s]).catch(() => []),
    api('GET', '/api/channels').catch(() => []),
  ]);
  if (!p.alive()) return;
  const nameOf = (list, key) => list.find((x) => x.id === key)?.name || key;

  const title = $('#page-title');
  const statusBox = h('span', { id: 'campaign-status-box' });
  title.after(statusBox);
  const summary = h('dl', { id: 'campaign-summary', class: 'summary' });
  const actions = h('div', { id: 'campaign-actions', 'data-test': 'campaign-actions', class: 'buttons' });
  const notice = h('div', { id: 'campaign-notice', 'data-test': 'campaign-notice' });
  const progressBox = h('section', { id: 'progress-section' }, h('h2', {}, 'Progress'), h('div', { id: 'progress-box' }));
  const resultsBox = h('section', { id: 'results-section', hidden: true }, h('h2', {}, 'Results'), h('div', { id: 'results-box' }), h('div', { id: 'timeline-box' }));
  const auditBox = h('section', { id: 'campaign-audit-section' }, h('h2', {}, 'History'), h('div', { id: 'campaign-audit-box' }));

  // Test send
  const ids = h('textarea', { id: 'test-user-ids', 'data-test': 'test-user-ids', class: 'mono', rows: 3, placeholder: 'U1234…\nU5678…', spellcheck: 'false' });
  const testBtn = h('button', { type: 'submit', id: 'test-send', 'data-test': 'test-send' }, 'Send test');
  const testOut = h('div', { id: 'test-send-out' });
  const testForm = h('form', { id: 'test-send-form', class: 'card', novalidate: true },
    h('h2', {}, 'Test send'),
    field('LINE user IDs, one per line', 'user_ids', ids, 'They receive the content now, as recipients will; the campaign itself is not affected.'),
    h('p', { class: 'form-status error', 'data-role': 'form-status', hidden: true }),
    testBtn, testOut);
  testForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(testBtn, testForm, async () => {
      clearErrors(testForm);
      const userIds = ids.value.split(/\s+/).map((s) => s.trim()).filter(Boolean);
      const res = await api('POST', `/api/campaigns/${enc(id)}/test-send`, { user_ids: userIds });
      testOut.replaceChildren(h('table', { id: 'test-send-results', 'data-test': 'test-send-results' },
        h('thead', {}, h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Result'), h('th', {}, 'Detail'))),
        h('tbody', {}, res.map((r) => h('tr', { 'data-test': 'test-send-row', 'data-user': r.user_id, 'data-delivered': String(!!r.delivered) },
          h('td', { class: 'mono' }, r.user_id),
          h('td', {}, r.delivered ? h('span', { class: 'tag ok' }, 'delivered') : h('span', { class: 'tag bad' }, 'not delivered')),
          h('td', {}, r.detail || ''))))));
    });
  });

  function renderSummary() {
    title.textContent = campaign.name;
    document.title = `${campaign.name} · segcast`;
    setChildren(statusBox, h('span', { id: 'campaign-status', 'data-test': 'campaign-status', 'data-status': campaign.status }, badge(campaign.status)),
      campaign.dry_run ? h('span', { class: 'tag' }, 'dry run') : null,
      campaign.status_reason ? h('span', { class: 'muted', id: 'status-reason', 'data-test': 'status-reason' }, ` ${campaign.status_reason}`) : null);
    const row = (k, ...v) => [h('dt', {}, k), h('dd', {}, v)];
    summary.replaceChildren(...[
      row('Content', h('a', { href: `#/contents/${enc(campaign.content_id)}` }, nameOf(contents, campaign.content_id))),
      row('Segment', h('a', { href: `#/segments/${enc(campaign.segment_id)}` }, nameOf(segments, campaign.segment_id))),
      row('Channel', `${nameOf(channels, campaign.channel_id)} (${campaign.channel_id})`),
      row('Send time', h('span', { 'data-test': 'send-at' }, fmtInZone(campaign.send_at, campaign.time_zone)), ` ${campaign.time_zone || 'UTC'}`,
        campaign.time_zone && campaign.time_zone !== BROWSER_TZ ? h('small', { class: 'muted' }, ` (${fmtDate(campaign.send_at)} your time)`) : null),
      row('Quiet hours', campaign.quiet_hours ? `${campaign.quiet_hours.start} to ${campaign.quiet_hours.end}` : 'none'),
      row('Rounds', `${campaign.round ?? 1} of at most ${campaign.max_rounds ?? '–'}`),
      row('Created by', campaign.created_by || '–'),
      campaign.started_at ? row('Started', fmtDate(campaign.started_at)) : [],
      campaign.completed_at ? row('Finished', fmtDate(campaign.completed_at)) : [],
      campaign.approval ? row('Approval', campaign.approval.approved_by
        ? `approved by ${campaign.approval.approved_by} (${fmtDate(campaign.approval.approved_at)})`
        : `requested by ${campaign.approval.requested_by} for ${fmtNum(campaign.approval.recipients)} recipients: waiting for a second person`) : [],
    ].flat());
    actions.replaceChildren();
    for (const [name, a] of Object.entries(ACTIONS)) {
      if (!a.when.includes(campaign.status) || !can(a.role || 'editor')) continue;
      if (name === 'approve' && !(campaign.approval && !campaign.approval.approved_by)) continue;
      if (name === 'schedule' && campaign.approval && !campaign.approval.approved_by) continue;
      actions.append(h('button', {
        type: 'button', id: `action-${name}`, 'data-test': `action-${name}`, 'data-action': name,
        class: a.primary ? 'primary' : a.danger ? 'danger' : '', onclick: (ev) => act(name, ev.currentTarget),
      }, a.label));
    }
    testForm.hidden = !can('editor') || FINAL.includes(campaign.status);
  }

  async function act(name, button) {
    if (name === 'edit') {
      location.hash = `#/campaigns/${enc(id)}/edit`;
      return;
    }
    if (name === 'cancel' && !button.dataset.confirming) {
      button.dataset.confirming = '1';
      button.textContent = 'Really cancel? Click again';
      setTimeout(() => { if (button.isConnected) { delete button.dataset.confirming; button.textContent = ACTIONS.cancel.label; } }, 5000);
      return;
    }
    await busy(button, notice, async () => {
      const res = await api('POST', `/api/campaigns/${enc(id)}/${name}`, {});
      if (name === 'duplicate') {
        flash(`Duplicated as a new draft “${res.name}”.`, true);
        location.hash = `#/campaigns/${enc(res.id)}`;
        return;
      }
      campaign = res;
      if (name === 'schedule' && res.status === 'draft' && res.approval) {
        flash(`This campaign goes to ${fmtNum(res.approval.recipients)} recipients: it needs a second person’s approval before it is scheduled.`);
      } else {
        flash(`Campaign ${STATUS_LABELS[res.status]?.toLowerCase() || res.status}.`);
      }
      renderSummary();
      startPolling();
      loadAudit();
    });
  }

  let lastStatus = campaign.status;
  let resultsShown = false;
  async function loadResults() {
    const [r, timeline] = await Promise.all([
      api('GET', `/api/campaigns/${enc(id)}/results`),
      api('GET', `/api/campaigns/${enc(id)}/timeline`).catch(() => []),
    ]);
    if (!p.alive()) return;
    $('#results-box', resultsBox).replaceChildren(resultsView(r, id));
    $('#timeline-box', resultsBox).replaceChildren(h('h3', {}, 'Deliveries over time'), timelineChart(timeline || []));
    resultsBox.hidden = false;
    resultsShown = true;
  }

  async function loadAudit() {
    const entries = await api('GET', `/api/audit?target=${enc(id)}`).catch(() => []);
    if (p.alive()) $('#campaign-audit-box', auditBox).replaceChildren(auditTable('campaign-audit', entries));
  }

  let polling = false;
  function startPolling() {
    if (polling || campaign.status === 'draft' || (FINAL.includes(campaign.status) && resultsShown)) return;
    polling = true;
    p.poll(1500, async () => {
      const pr = await api('GET', `/api/campaigns/${enc(id)}/progress`);
      if (!p.alive()) return false;
      $('#progress-box', progressBox).replaceChildren(progressView(pr));
      if (pr.status !== lastStatus) {
        lastStatus = pr.status;
        campaign = await api('GET', `/api/campaigns/${enc(id)}`);
        if (!p.alive()) return false;
        renderSummary();
        loadAudit();
      }
      if (FINAL.includes(pr.status)) {
        await loadResults();
        polling = false;
        return false;
      }
      return pr.status !== 'draft';
    });
  }

  p.add(h('div', { class: 'campaign-head' }, actions, notice), summary, testForm, progressBox, resultsBox, auditBox);
  renderSummary();
  if (campaign.status === 'draft') $('#progress-box', progressBox).replaceChildren(h('p', { class: 'muted' }, 'Not scheduled yet.'));
  startPolling();
  loadAudit();
}

// ---------------------------------------------------------------------------------------------------------
// Audit log

async function pageAudit() {
  const p = newPage('Audit log');
  const target = h('input', { id: 'audit-target', 'data-test': 'audit-target', placeholder: 'Filter by campaign, content, segment, channel or user', autocomplete: 'off' });
  const box = h('div', { id: 'audit-box' });
  const load = async () => {
    const q = target.value.trim();
    const entries = await api('GET', q ? `/api/audit?target=${enc(q)}` : '/api/audit');
    if (p.alive()) box.replaceChildren(auditTable('audit-table', entries));
  };
  const form = h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); load().catch((e) => showBanner(e.message)); } },
    target, h('button', { type: 'submit', id: 'audit-filter' }, 'Filter'));
  p.add(h('p', { class: 'muted' }, 'Every change anyone made: who, what, when, and the values before and after.'), form, box);
  await load();
}

// ---------------------------------------------------------------------------------------------------------
// Users

async function pageUsers() {
  const p = newPage('Users');
  if (!can('admin')) {
    p.add(h('p', {}, 'Only admins manage users.'));
    return;
  }
  const box = h('div', { id: 'users-box' });
  const roleSelect = (sid, current) => h('select', { id: sid, 'data-test': 'user-role' }, ROLES.map((r) => h('option', { value: r, selected: r === current }, r)));
  const load = async () => {
    const users = await api('GET', '/api/users');
    if (!p.alive()) return;
    box.replaceChildren(table('users-table', ['Email', 'Role', 'Changed', ''],
      users.map((u) => {
        const sel = roleSelect(null, u.role);
        const row = h('tr', { 'data-test': 'user-row', 'data-email': u.email });
        const saveBtn = h('button', {
          type: 'button', class: 'link', onclick: () => busy(saveBtn, row, async () => {
            await api('PUT', `/api/users/${enc(u.email)}`, { role: sel.value });
            flash(`${u.email} is now ${sel.value}.`);
            await load();
          }),
        }, 'Save');
        append(row, [h('td', {}, u.email), h('td', { 'data-field': 'role' }, sel), h('td', {}, fmtDate(u.updated_at), u.updated_by ? ` by ${u.updated_by}` : ''), h('td', {}, saveBtn)]);
        return row;
      }), 'No users.'));
  };
  const email = h('input', { id: 'user-email', 'data-test': 'user-email', type: 'email', autocomplete: 'off' });
  const role = roleSelect('user-role', 'editor');
  const add = h('button', { type: 'submit', id: 'user-save', 'data-test': 'user-save', class: 'primary' }, 'Add or change');
  const form = h('form', { id: 'user-form', class: 'card', novalidate: true },
    h('h2', {}, 'Add a user'),
    h('div', { class: 'grid3' }, field('Email', 'email', email), field('Role', 'role', role)),
    h('p', { class: 'hint' }, 'viewer: reads · editor: contents, segments, campaigns, test sends · approver: also approves others’ large campaigns · admin: also channels and users'),
    h('p', { class: 'form-status error', 'data-role': 'form-status', hidden: true }),
    add);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(add, form, async () => {
      clearErrors(form);
      const e = email.value.trim();
      if (!e) throw new ApiError(422, { error: 'email: give an email address', errors: [{ field: 'email', message: 'give an email address' }] });
      await api('PUT', `/api/users/${enc(e)}`, { role: role.value });
      form.reset();
      flash(`${e} can now sign in as ${role.value}.`);
      await load();
    });
  });
  p.add(box, form);
  await load();
}
