/* meshshim web UI: plain JavaScript, no framework and no build step.
 * Everything it shows comes from helperd's public HTTP API on the page's
 * own origin; an ACL token, when the operator gives one, is kept in
 * sessionStorage (gone with the tab) and sent as X-Consul-Token. Data is
 * always inserted as text, never as HTML. */
'use strict';

(function () {
  const TOKEN_KEY = 'meshshim.token';
  const NAME_RE = /^(\*|[A-Za-z0-9][A-Za-z0-9_-]{0,62})$/;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  /* ---- small helpers ---- */

  // h('td', {class: 'x'}, 'text', node...): attributes and text only.
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids.flat()) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  function fmtBytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    n = Number(n) || 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + ' ' + u[i];
  }

  function fmtDur(s) {
    const neg = s < 0;
    s = Math.abs(Math.round(s));
    const d = Math.floor(s / 86400), hr = Math.floor(s % 86400 / 3600);
    const m = Math.floor(s % 3600 / 60), sec = s % 60;
    let t;
    if (d >= 365) t = (d / 365).toFixed(1) + ' years';
    else if (d > 0) t = d + 'd ' + hr + 'h';
    else if (hr > 0) t = hr + 'h ' + m + 'm';
    else if (m > 0) t = m + 'm ' + sec + 's';
    else t = sec + 's';
    return neg ? t + ' ago' : t;
  }

  function fmtTime(ms) {
    if (!isFinite(ms)) return '?';
    return new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }

  const STATUS_SIGN = { passing: '\u2713', warning: '!', critical: '\u2717',
    alive: '\u2713', degraded: '!', failed: '\u2717', left: '\u2717' };

  function badge(status, text) {
    const cls = { alive: 'passing', degraded: 'warning', failed: 'critical',
      left: 'critical' }[status] || status;
    return h('span', { class: 'badge ' + cls },
      (STATUS_SIGN[status] || '?') + ' ' + (text || status));
  }

  function worst(checks) {
    const rank = { passing: 0, warning: 1, critical: 2 };
    let w = 'passing';
    for (const c of checks || [])
      if ((rank[c.Status] ?? 2) > rank[w]) w = c.Status in rank ? c.Status : 'critical';
    return w;
  }

  // Fill a <table> with a header row and rows of cells (text or nodes).
  function table(el, heads, rows, empty) {
    el.replaceChildren(h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))));
    const body = h('tbody');
    if (rows.length === 0 && empty)
      body.append(h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, empty)));
    for (const r of rows) {
      const tr = r instanceof Node ? r : h('tr', {}, r.map((c) => h('td', {}, c)));
      body.append(tr);
    }
    el.append(body);
  }

  function msg(el, kind, text) {
    el.className = 'msg ' + (kind || '');
    el.textContent = text || '';
  }

  /* ---- the API ---- */

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  // {ok, status, data} or {ok: false, status, error}; never throws.
  async function api(method, path, body, tok) {
    const headers = {};
    const t = tok !== undefined ? tok : token();
    if (t) headers['X-Consul-Token'] = t;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r, text;
    try {
      r = await fetch(path, { method, headers, cache: 'no-store',
        credentials: 'omit', redirect: 'error',
        body: body === undefined ? undefined : JSON.stringify(body) });
      text = await r.text();
    } catch (e) {
      return { ok: false, status: 0, error: 'helperd did not answer (' + e.message + ')' };
    }
    if (!r.ok)
      return { ok: false, status: r.status, error: text.trim() || r.statusText };
    if ((r.headers.get('Content-Type') || '').startsWith('application/json')) {
      try { return { ok: true, status: r.status, data: JSON.parse(text) }; }
      catch (e) { return { ok: false, status: r.status, error: 'malformed JSON from helperd' }; }
    }
    return { ok: true, status: r.status, data: text };
  }

  // The error of a refused request, with what to do about a 403.
  function why(r) {
    if (r.status !== 403) return r.error;
    if (!token()) return r.error + ' \u2014 enter a token that grants it (ACL token, above).';
    return r.error + ' \u2014 the token in use does not grant it.';
  }

  /* ---- agent and login ---- */

  let self = null;

  async function loadSelf() {
    const r = await api('GET', '/v1/agent/self');
    if (!r.ok) return;
    self = r.data.Config || {};
    $('agent').textContent = 'node ' + self.NodeName + ' \u00b7 ' + self.Datacenter +
      ' \u00b7 ' + self.Version + (self.ACLsEnabled ? '' : ' \u00b7 ACLs off (-dev)');
  }

  function showWho(t) {
    const names = (t.Policies || []).map((p) => p.Name).join(', ');
    $('who').textContent = 'Token: ' + (t.Description || t.AccessorID) +
      (names ? ' (' + names + ')' : '');
    $('logout-btn').hidden = false;
  }

  function forget(text) {
    sessionStorage.removeItem(TOKEN_KEY);
    $('logout-btn').hidden = true;
    $('who').textContent = text || 'No token: reads only';
  }

  async function checkToken(t) {
    const r = await api('GET', '/v1/acl/token/self', undefined, t);
    if (r.ok) return { ok: true, data: r.data };
    if (r.status === 401) return { ok: false, text: 'ACLs are off on this helperd: no token needed' };
    return { ok: false, text: 'Token refused: ' + r.error };
  }

  async function login(ev) {
    ev.preventDefault();
    const t = $('token').value.trim();
    if (!t) { $('token').focus(); return; }
    const c = await checkToken(t);
    if (!c.ok) { forget(c.text); return; }
    sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    showWho(c.data);
    reloadAll();
  }

  async function restoreToken() {
    const t = token();
    if (!t) return;
    const c = await checkToken(t);
    if (c.ok) showWho(c.data);
    else forget(c.text);
  }

  // A read the whole page needs failed: say so once, at the top.
  function pageError(r) {
    const e = $('error');
    if (!r || r.ok) { e.hidden = true; return; }
    e.textContent = r.status === 0 ? r.error : 'helperd answered ' + r.status + ': ' + why(r);
    e.hidden = false;
  }

  /* ---- Services ---- */

  const Services = {
    data: [], sig: '',
    async load(force) {
      const r = await api('GET', '/v1/catalog/services');
      pageError(r);
      if (!r.ok) return;
      const names = Object.keys(r.data).sort();
      const hs = await Promise.all(names.map((n) => api('GET', '/v1/health/service/' + enc(n))));
      const data = names.map((n, i) => ({ name: n, tags: r.data[n] || [],
        instances: hs[i].ok ? hs[i].data : [], error: hs[i].ok ? null : why(hs[i]) }));
      const sig = JSON.stringify(data);
      if (sig === this.sig && !force) return;
      this.sig = sig;
      this.data = data;
      this.render();
    },
    matches(s, q) {
      if (!q) return true;
      const hay = [s.name, ...s.tags];
      for (const i of s.instances)
        hay.push(i.Node.Node, i.Node.Address, i.Service.Address, i.Service.ID, worst(i.Checks));
      return hay.some((x) => String(x || '').toLowerCase().includes(q));
    },
    render() {
      const q = $('search').value.trim().toLowerCase();
      const shown = this.data.filter((s) => this.matches(s, q));
      $('services-count').textContent = shown.length + ' of ' + this.data.length + ' services';
      $('services-list').replaceChildren(...shown.map((s) => this.card(s)));
      if (shown.length === 0)
        $('services-list').append(h('p', { class: 'empty' }, this.data.length ? 'No service matches the search.' : 'No service is registered.'));
    },
    card(s) {
      const all = s.instances.flatMap((i) => i.Checks || []);
      const st = s.instances.length ? worst(all) : 'critical';
      return h('article', { class: 'card svc', 'data-service': s.name },
        h('h2', {}, s.name, ' ', badge(st, s.instances.length ? st : 'no instance'),
          ' ', h('span', { class: 'muted small' }, s.instances.length + ' instance' + (s.instances.length === 1 ? '' : 's'))),
        s.tags.length ? h('p', { class: 'tags' }, s.tags.map((t) => h('span', { class: 'tag' }, t))) : null,
        s.error ? h('p', { class: 'msg error' }, s.error) : null,
        s.instances.map((i) => this.instance(i)));
    },
    instance(i) {
      const sv = i.Service, conn = sv.Connect;
      const ups = conn && conn.Proxy && conn.Proxy.Upstreams || [];
      return h('div', { class: 'inst', 'data-instance': sv.ID },
        h('p', { class: 'inst-head' }, h('strong', {}, sv.ID), ' on node ',
          h('strong', {}, i.Node.Node), ' at ', h('code', {}, (sv.Address || i.Node.Address) + ':' + sv.Port)),
        h('dl', {},
          h('dt', {}, 'Connect'),
          h('dd', { class: 'connect' }, conn ? '\u2713 in the mesh (mTLS), inbound ' + (sv.Inbound || 'permissive')
            : '\u2717 not in the mesh'),
          h('dt', {}, 'Upstreams'),
          h('dd', {}, ups.length ? h('ul', { class: 'plain' }, ups.map((u) => h('li', {},
            u.DestinationName + ' on ' + (u.LocalBindAddress || '127.0.0.1') + ':' + u.LocalBindPort)))
            : 'none')),
        h('ul', { class: 'checks' }, (i.Checks || []).map((c) => h('li', { 'data-check': c.CheckID },
          badge(c.Status), ' ', h('span', {}, c.Name || c.CheckID),
          c.Output ? h('pre', { class: 'output' }, c.Output) : null))));
    },
  };

  /* ---- Intentions ---- */

  const Intentions = {
    list: [], names: [], sig: '', sel: null, editing: null, armed: null,
    async load(force) {
      const [li, cs] = await Promise.all([api('GET', '/v1/connect/intentions'),
        api('GET', '/v1/catalog/services')]);
      pageError(li.ok ? cs : li);
      if (!li.ok || !cs.ok) return;
      const sig = JSON.stringify([li.data, Object.keys(cs.data), self && self.DefaultIntention]);
      if (sig === this.sig && !force) return;
      this.sig = sig;
      this.list = li.data.slice().sort((a, b) => b.Precedence - a.Precedence ||
        (a.Action === b.Action ? 0 : a.Action === 'deny' ? -1 : 1) ||
        a.SourceName.localeCompare(b.SourceName) || a.DestinationName.localeCompare(b.DestinationName));
      this.names = Object.keys(cs.data).sort();
      this.render();
      if (this.sel) this.explain(this.sel.src, this.sel.dst);
    },
    find(s, d) {
      return this.list.find((i) => i.SourceName === s && i.DestinationName === d);
    },
    // As helperd decides (intent_check): exact, */dst, src/*, */*.
    decide(src, dst) {
      return this.find(src, dst) || this.find('*', dst) || this.find(src, '*') || this.find('*', '*') || null;
    },
    render() {
      const def = self && self.DefaultIntention;
      $('intent-default').textContent = def ? 'With no matching intention, helperd applies default_intention = "' + def + '".' : '';
      const srcs = new Set(this.names), dsts = new Set(this.names);
      for (const i of this.list) {
        if (i.SourceName !== '*') srcs.add(i.SourceName);
        if (i.DestinationName !== '*') dsts.add(i.DestinationName);
      }
      const S = [...srcs].sort().concat(['*']), D = [...dsts].sort();
      const m = $('matrix');
      m.replaceChildren(h('caption', { class: 'sr-only' }, 'Decision for each source (row) and destination (column)'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'source \\ destination'),
          D.map((d) => h('th', { scope: 'col' }, d)))),
        h('tbody', {}, S.map((s) => h('tr', {}, h('th', { scope: 'row' }, s === '*' ? '* (any other)' : s),
          D.map((d) => h('td', {}, this.cell(s, d)))))));
      const dl = $('names');
      dl.replaceChildren(...['*', ...this.names].map((n) => h('option', { value: n })));
      table($('intentions-list'), ['Precedence', 'Source', 'Destination', 'Action', 'Description', 'Updated', ''],
        this.list.map((i) => h('tr', { 'data-id': i.ID, 'data-src': i.SourceName, 'data-dst': i.DestinationName },
          h('td', {}, String(i.Precedence)), h('td', {}, i.SourceName), h('td', {}, i.DestinationName),
          h('td', {}, h('span', { class: 'cell ' + i.Action }, (i.Action === 'allow' ? '\u2713 ' : '\u2717 ') + i.Action)),
          h('td', {}, i.Description || ''), h('td', {}, i.UpdatedAt || ''),
          h('td', { class: 'row-actions' },
            h('button', { type: 'button', class: 'small', onclick: () => this.edit(i) , 'aria-label': 'Edit ' + i.SourceName + ' to ' + i.DestinationName }, 'Edit'),
            h('button', { type: 'button', class: 'small danger', 'data-delete': i.ID,
              'aria-label': 'Delete ' + i.SourceName + ' to ' + i.DestinationName,
              onclick: (ev) => this.del(i, ev.currentTarget) }, 'Delete')))),
        'No intention: every pair gets default_intention.');
    },
    cell(s, d) {
      const m = this.decide(s, d);
      const def = self && self.DefaultIntention || 'allow';
      const action = m ? m.Action : def;
      const by = m ? (m.SourceName === s && m.DestinationName === d ? 'intention' : m.SourceName + ' \u21d2 ' + m.DestinationName) : 'default';
      const label = (s === '*' ? 'any other source' : s) + ' to ' + d + ': ' + action +
        (m ? ' by intention ' + m.SourceName + ' to ' + m.DestinationName : ' by default_intention');
      const sel = this.sel && this.sel.src === s && this.sel.dst === d;
      return h('button', { type: 'button', class: 'cell ' + (m ? action : 'default-' + action) + (sel ? ' selected' : ''),
        'data-src': s, 'data-dst': d, 'data-action': action, 'data-by': m ? m.ID : 'default',
        'aria-label': label, 'aria-pressed': sel ? 'true' : 'false', title: label,
        onclick: () => this.explain(s, d) },
      (action === 'allow' ? '\u2713 ' : '\u2717 ') + action, h('small', {}, by));
    },
    // Which intention decides src => dst, as helperd says (check + match).
    async explain(src, dst) {
      this.sel = { src, dst };
      for (const b of $('matrix').querySelectorAll('button.cell')) {
        const on = b.dataset.src === src && b.dataset.dst === dst;
        b.classList.toggle('selected', on);
        b.setAttribute('aria-pressed', on ? 'true' : 'false');
      }
      const [c, m] = await Promise.all([
        api('GET', '/v1/connect/intentions/check?source=' + enc(src) + '&destination=' + enc(dst)),
        api('GET', '/v1/connect/intentions/match?by=destination&name=' + enc(dst))]);
      const box = $('decide');
      box.hidden = false;
      if (!c.ok || !m.ok) { box.replaceChildren(h('p', { class: 'msg error' }, why(c.ok ? m : c))); return; }
      const cands = m.data[dst] || [];
      const dec = cands.find((i) => i.SourceName === src || i.SourceName === '*') || null;
      const allowed = c.data.Allowed;
      const exact = this.find(src, dst);
      box.replaceChildren(
        h('p', {}, h('strong', {}, src + ' \u21d2 ' + dst + ': '),
          h('span', { class: 'cell ' + (allowed ? 'allow' : 'deny'), id: 'decide-result' }, allowed ? '\u2713 allowed' : '\u2717 denied'),
          ' ', dec ? 'decided by intention ' + dec.SourceName + ' \u21d2 ' + dec.DestinationName +
            ' (' + dec.Action + ', precedence ' + dec.Precedence + (dec.Description ? ', \u201c' + dec.Description + '\u201d' : '') + ').'
            : 'no intention matches: default_intention decides.'),
        cands.length > 1 ? h('p', { class: 'muted small' }, 'Intentions for ' + dst + ' in the order helperd tries them: ' +
          cands.map((i) => i.SourceName + ' \u21d2 ' + i.DestinationName + ' ' + i.Action).join('; ') + '.') : null,
        h('p', {}, exact ? h('button', { type: 'button', onclick: () => this.edit(exact) }, 'Edit ' + src + ' \u21d2 ' + dst)
          : h('button', { type: 'button', onclick: () => this.prefill(src, dst, allowed ? 'deny' : 'allow') },
            'New intention ' + src + ' \u21d2 ' + dst)));
    },
    prefill(src, dst, action) {
      this.editing = null;
      $('i-src').value = src;
      $('i-dst').value = dst;
      $(action === 'deny' ? 'i-deny' : 'i-allow').checked = true;
      $('i-desc').value = '';
      $('i-cancel').hidden = false;
      $('i-save').textContent = 'Save intention';
      msg($('intent-msg'), '', '');
      $('i-src').focus();
    },
    edit(i) {
      this.prefill(i.SourceName, i.DestinationName, i.Action);
      this.editing = i.ID;
      $('i-desc').value = i.Description || '';
      $('i-save').textContent = 'Update intention';
    },
    reset() {
      this.editing = null;
      $('intent-form').reset();
      $('i-cancel').hidden = true;
      $('i-save').textContent = 'Save intention';
    },
    async save(ev) {
      ev.preventDefault();
      const src = $('i-src').value.trim(), dst = $('i-dst').value.trim();
      const action = $('i-deny').checked ? 'deny' : 'allow';
      const out = $('intent-msg');
      if (!NAME_RE.test(src) || !NAME_RE.test(dst)) {
        msg(out, 'error', 'Source and destination are service names (letters, digits, - and _, up to 63) or *.');
        return;
      }
      const body = { SourceName: src, DestinationName: dst, Action: action,
        Description: $('i-desc').value.slice(0, 200) };
      const r = this.editing
        ? await api('PUT', '/v1/connect/intentions/' + enc(this.editing), body)
        : await api('PUT', '/v1/connect/intentions/exact?source=' + enc(src) + '&destination=' + enc(dst), body);
      if (!r.ok) { msg(out, 'error', 'Not saved: ' + why(r)); return; }
      msg(out, 'ok', 'Saved: ' + src + ' \u21d2 ' + dst + ' (' + action + ')');
      this.reset();
      this.sel = { src, dst };
      await this.load(true);
    },
    async del(i, btn) {
      const out = $('intent-msg');
      if (this.armed !== i.ID) {
        // Two steps: the first press asks, the second deletes.
        this.armed = i.ID;
        btn.textContent = 'Confirm delete';
        msg(out, '', 'Press \u201cConfirm delete\u201d to delete ' + i.SourceName + ' \u21d2 ' + i.DestinationName + '.');
        setTimeout(() => { if (this.armed === i.ID) { this.armed = null; btn.textContent = 'Delete'; } }, 6000);
        return;
      }
      this.armed = null;
      const r = await api('DELETE', '/v1/connect/intentions/' + enc(i.ID));
      if (!r.ok) { btn.textContent = 'Delete'; msg(out, 'error', 'Not deleted: ' + why(r)); return; }
      msg(out, 'ok', 'Deleted: ' + i.SourceName + ' \u21d2 ' + i.DestinationName);
      if (this.editing === i.ID) this.reset();
      await this.load(true);
    },
  };

  /* ---- Live traffic ---- */

  const Traffic = {
    prev: new Map(), rows: new Map(),
    async load() {
      if ($('traffic-pause').checked) return;
      const r = await api('GET', '/v1/agent/connections');
      const out = $('traffic-msg');
      if (!r.ok) {
        msg(out, r.status === 403 ? 'warn' : 'error', why(r));
        this.rows.clear();
        table($('pairs'), ['Pair'], []);
        table($('conns'), ['Connection'], []);
        return;
      }
      const now = performance.now() / 1000;
      const conns = r.data.slice().sort((a, b) => a.Source.localeCompare(b.Source) ||
        a.Destination.localeCompare(b.Destination) || a.ID - b.ID);
      const seen = new Map();
      for (const c of conns) {
        const tot = (c.BytesSent || 0) + (c.BytesReceived || 0);
        const p = this.prev.get(c.ID);
        c.rate = p && now > p.t ? Math.max(0, (tot - p.tot) / (now - p.t))
          : tot / Math.max(1, c.AgeSeconds || 1);
        seen.set(c.ID, { tot, t: now });
      }
      this.prev = seen;
      msg(out, '', conns.length + ' connection' + (conns.length === 1 ? '' : 's') +
        ' relaying, as of ' + new Date().toISOString().slice(11, 19) + ' UTC');
      this.pairs(conns);
      this.conns(conns);
    },
    pairs(conns) {
      const by = new Map();
      for (const c of conns) {
        const k = c.Source + '\u0000' + c.Destination;
        const p = by.get(k) || { src: c.Source, dst: c.Destination, out: 0, in: 0, sent: 0, recv: 0, rate: 0, procs: new Set() };
        p[c.Direction === 'inbound' ? 'in' : 'out']++;
        // a same-node connection is listed twice (both halves): its
        // bytes are counted once, from the outbound half
        if (c.Direction !== 'inbound' || !c.SameNode) {
          p.sent += c.BytesSent || 0;
          p.recv += c.BytesReceived || 0;
          p.rate += c.rate;
        }
        if (c.PID) p.procs.add('pid ' + c.PID + (c.Unit ? ' (' + c.Unit + ')' : ''));
        by.set(k, p);
      }
      table($('pairs'), ['Source \u21d2 destination', 'Open (out / in)', 'Sent', 'Received', 'Rate', 'Processes'],
        [...by.values()].map((p) => h('tr', { 'data-src': p.src, 'data-dst': p.dst },
          h('td', {}, p.src + ' \u21d2 ' + p.dst), h('td', {}, p.out + ' / ' + p.in),
          h('td', {}, fmtBytes(p.sent)), h('td', {}, fmtBytes(p.recv)), h('td', {}, fmtBytes(p.rate) + '/s'),
          h('td', {}, [...p.procs].join(', ') || '\u2014'))),
        'No connection is relaying now.');
    },
    // Rows are kept per connection ID, so a focused "Cut" button stays.
    conns(conns) {
      const el = $('conns');
      const heads = ['ID', 'Direction', 'Source \u21d2 destination', 'PID', 'UID', 'Unit', 'Node', 'Age', 'Sent', 'Received', 'Rate', ''];
      let body = el.tBodies[0];
      if (!body || !el.dataset.ready) {
        table(el, heads, []);
        body = el.tBodies[0];
        el.dataset.ready = '1';
        this.rows.clear();
      }
      const live = new Set(conns.map((c) => c.ID));
      for (const [id, tr] of this.rows)
        if (!live.has(id)) { tr.remove(); this.rows.delete(id); }
      for (const c of conns) {
        const cells = [String(c.ID), c.Direction, c.Source + ' \u21d2 ' + c.Destination,
          c.PID ? String(c.PID) : '\u2014', c.UID !== undefined ? String(c.UID) : '\u2014', c.Unit || '\u2014',
          c.Node || '', fmtDur(c.AgeSeconds || 0), fmtBytes(c.BytesSent), fmtBytes(c.BytesReceived),
          fmtBytes(c.rate) + '/s'];
        let tr = this.rows.get(c.ID);
        if (!tr) {
          tr = h('tr', { 'data-id': c.ID, 'data-src': c.Source, 'data-dst': c.Destination, 'data-pid': c.PID || '' },
            cells.map((x) => h('td', {}, x)),
            h('td', {}, h('button', { type: 'button', class: 'small danger', 'data-cut': c.ID,
              'aria-label': 'Cut connection ' + c.ID + ' (' + c.Source + ' to ' + c.Destination + ')',
              onclick: (ev) => this.cut(c, ev.currentTarget) }, 'Cut')));
          this.rows.set(c.ID, tr);
          body.append(tr);
        } else {
          cells.forEach((x, i) => { if (tr.cells[i].textContent !== x) tr.cells[i].textContent = x; });
        }
      }
      const empty = body.querySelector('td.empty');
      if (conns.length === 0 && !empty)
        body.append(h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, 'No connection is relaying now.')));
      else if (conns.length > 0 && empty)
        empty.parentNode.remove();
    },
    async cut(c, btn) {
      btn.disabled = true;
      const r = await api('DELETE', '/v1/agent/connections/' + enc(c.ID));
      const out = $('traffic-msg');
      if (!r.ok) { btn.disabled = false; msg(out, 'error', 'Not cut: ' + why(r)); return; }
      msg(out, 'ok', 'Connection ' + c.ID + ' (' + c.Source + ' \u21d2 ' + c.Destination + ') cut.');
      await this.load();
    },
  };

  /* ---- Identity ---- */

  // helperd renews a leaf at a random point between 60 % and 90 % of its
  // life, within a tick; one still not renewed 30 s after that point is
  // in the last part of its life and its renewal failed (or waits for
  // the CA servers): that is the warning, whatever the TTL.
  const RENEW_LATE = 30;

  const Identity = {
    async load() {
      const [roots, met, svcs] = await Promise.all([api('GET', '/v1/connect/ca/roots'),
        api('GET', '/v1/agent/metrics'), api('GET', '/v1/agent/services')]);
      const warns = [];
      const now = Date.now();
      if (roots.ok) {
        $('trust-domain').textContent = 'Trust domain: ' + roots.data.TrustDomain;
        const rs = roots.data.Roots || [];
        table($('roots'), ['Name', 'ID', 'State', 'Cross-signed', 'Valid from', 'Expires', 'Left'],
          rs.map((r) => {
            const nb = Date.parse(r.NotBefore), na = Date.parse(r.NotAfter);
            const left = (na - now) / 1000, life = (na - nb) / 1000;
            const soon = r.Active && (left <= 0 || left < life * 0.1);
            if (soon) warns.push('The active CA root ' + r.Name + (left <= 0 ? ' has expired' : ' expires in ' + fmtDur(left)) + ': rotate it (meshctl ca rotate).');
            return h('tr', { 'data-root': r.ID, class: soon ? 'warn-row' : null },
              h('td', {}, r.Name), h('td', {}, h('code', { title: r.ID }, r.ID.slice(0, 23) + '\u2026')),
              h('td', {}, r.Active ? badge('passing', 'active') : h('span', { class: 'badge neutral' }, '\u2013 previous')),
              h('td', {}, (r.IntermediateCerts || []).length ? 'yes (by the previous root)' : 'no'),
              h('td', {}, fmtTime(nb)), h('td', {}, fmtTime(na)),
              h('td', {}, soon ? badge('warning', fmtDur(left)) : fmtDur(left)));
          }), 'No CA root.');
      } else {
        table($('roots'), ['CA roots'], [[why(roots)]]);
      }
      if (met.ok) {
        const leaves = new Map();
        for (const g of met.data.Gauges || []) {
          const s = g.Labels && g.Labels.service;
          if (!s) continue;
          const l = leaves.get(s) || {};
          if (g.Name === 'meshshim.leaf.expiry.seconds') l.expiry = g.Value;
          if (g.Name === 'meshshim.leaf.renewal.seconds') l.renew = g.Value;
          leaves.set(s, l);
        }
        const names = new Set([...leaves.keys()].filter((s) => leaves.get(s).expiry !== undefined));
        if (svcs.ok)
          for (const s of Object.values(svcs.data)) if (s.Connect) names.add(s.Service);
        table($('leaves'), ['Service', 'Expires', 'Left', 'Renewal', 'State'],
          [...names].sort().map((s) => {
            const l = leaves.get(s) || {};
            if (l.expiry === undefined)
              return h('tr', { 'data-leaf': s }, h('td', {}, s), h('td', {}, '\u2014'), h('td', {}, '\u2014'),
                h('td', {}, '\u2014'), h('td', {}, h('span', { class: 'badge neutral' }, '\u2013 not issued yet')));
            let state = badge('passing', 'ok');
            if (l.expiry <= 0) {
              state = badge('critical', 'expired');
              warns.push('The leaf certificate of ' + s + ' has expired.');
            } else if (l.renew !== undefined && l.renew < -RENEW_LATE) {
              state = badge('critical', 'renewal overdue');
              warns.push('The leaf of ' + s + ' was due for renewal ' + fmtDur(-l.renew) +
                ' ago and is not renewed (see helperd\u2019s log); it expires in ' + fmtDur(l.expiry) + '.');
            }
            return h('tr', { 'data-leaf': s }, h('td', {}, s), h('td', {}, fmtTime(now + l.expiry * 1000)),
              h('td', {}, fmtDur(l.expiry)), h('td', {}, l.renew === undefined ? '?' :
                l.renew >= 0 ? 'in ' + fmtDur(l.renew) : 'due ' + fmtDur(l.renew)), h('td', {}, state));
          }), 'No service of this node is in the mesh.');
      } else {
        table($('leaves'), ['Leaf certificates'], [[why(met)]]);
      }
      const w = $('identity-warn');
      w.replaceChildren(...warns.map((x) => h('p', {}, '\u26a0 ' + x)));
      w.hidden = warns.length === 0;
      $('identity-flag').hidden = warns.length === 0;
      $('nav-identity').setAttribute('aria-label', warns.length ? 'Identity (warnings)' : 'Identity');
    },
  };

  /* ---- Nodes ---- */

  const Nodes = {
    async load() {
      const r = await api('GET', '/v1/agent/members');
      if (!r.ok) { table($('members'), ['Members'], [[why(r)]]); return; }
      table($('members'), ['Node', 'Address', 'Status', 'Datacenter', 'Version', ''],
        r.data.map((m) => h('tr', { 'data-node': m.Name }, h('td', {}, m.Name), h('td', {}, m.Addr || ''),
          h('td', {}, badge(m.Status)), h('td', {}, m.Datacenter || ''), h('td', {}, m.Version || '\u2014'),
          h('td', {}, m.Self ? 'this node' : ''))), 'No member.');
    },
  };

  /* ---- views, refresh ---- */

  const views = { services: Services, intentions: Intentions, traffic: Traffic, identity: Identity, nodes: Nodes };
  let current = 'services', ticks = 0;
  const busy = {};

  async function load(name, force) {
    if (busy[name]) return;
    busy[name] = true;
    try { await views[name].load(force); }
    finally { busy[name] = false; }
  }

  function route() {
    const name = views[location.hash.slice(1)] ? location.hash.slice(1) : 'services';
    for (const v of Object.keys(views)) {
      $('view-' + v).hidden = v !== name;
      if (v === name) $('nav-' + v).setAttribute('aria-current', 'page');
      else $('nav-' + v).removeAttribute('aria-current');
    }
    current = name;
    load(name, true);
  }

  function reloadAll() {
    Intentions.sig = Services.sig = '';
    load(current, true);
    if (current !== 'identity') load('identity');
  }

  // One tick a second: live traffic every tick, the other views every
  // 5 s, identity's warnings every 30 s in the background.
  function tick() {
    if (document.hidden) return;
    ticks++;
    if (current === 'traffic' || ticks % 5 === 0) load(current);
    if (current !== 'identity' && ticks % 30 === 0) load('identity');
  }

  document.addEventListener('DOMContentLoaded', async () => {
    $('login').addEventListener('submit', login);
    $('logout-btn').addEventListener('click', () => { forget(); reloadAll(); });
    $('search').addEventListener('input', () => Services.render());
    $('intent-form').addEventListener('submit', (ev) => Intentions.save(ev));
    $('i-cancel').addEventListener('click', () => Intentions.reset());
    window.addEventListener('hashchange', route);
    await Promise.all([loadSelf(), restoreToken()]);
    route();
    if (current !== 'identity') load('identity');
    setInterval(tick, 1000);
  });
})();
