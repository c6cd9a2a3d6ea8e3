// Meridian dashboard: reads the server's API with the token the user
// gives (kept in sessionStorage, sent only in the Authorization header)
// and follows GET /v1/events, a stream of server-sent events read with
// fetch so that the token never goes into a URL.
"use strict";

const W = 960, H = 480; // the map's equirectangular frame
const TOKEN_KEY = "meridian.token";
const STATES = ["up", "degraded", "down", "drained", "shifted", "unknown"];
const STATE_TEXT = {
  up: "up", degraded: "degraded: some VIPs out", down: "down", drained: "drained by an operator",
  shifted: "shifted: an active shift sets its weight", unknown: "unknown: no counted vote",
};
// Where each client continent's line starts (longitude, latitude).
const CONTINENTS = {
  AF: [18, 4], AN: [20, -72], AS: [95, 48], EU: [30, 57], NA: [-102, 48], OC: [134, -25], SA: [-60, -12], unknown: [-160, -45],
};
const CONTINENT_NAMES = {
  AF: "Africa", AN: "Antarctica", AS: "Asia", EU: "Europe", NA: "North America", OC: "Oceania", SA: "South America", unknown: "unknown",
};
const SERIES_COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#6e7781", "#e16f24", "#57606a"];

const $ = (sel) => document.querySelector(sel);
const state = {
  status: null, lines: {}, lineWindow: 1, marks: [], hist: { start: 0, len: 0, regions: {}, services: {}, serviceRegions: {} },
  // tservice is the service whose traffic by region the chart shows, ""
  // for every service's; the event stream is asked for it (?service=).
  dropped: 0, service: "", tservice: "", revision: -1, pending: null, renderQueued: { status: false, traffic: false },
};

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  const t = token();
  if (t) h.Authorization = "Bearer " + t;
  return h;
}
function project(lon, lat) { return [(lon + 180) / 360 * W, (90 - lat) / 180 * H]; }
function pct(x) { return (x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0) + "%"; }

// api calls the API; it resolves to {ok, status, body}, body being the
// JSON (a problem document on errors) or null.
async function api(method, path, body, extra) {
  const init = { method, headers: headers(extra), cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, body: { detail: "the server cannot be reached (" + e.message + ")" } };
  }
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  return { ok: res.ok, status: res.status, body: data };
}
function problemText(r) {
  const d = (r.body && (r.body.detail || r.body.title)) || "HTTP " + r.status;
  if (r.status === 401) return "refused (401): " + d;
  if (r.status === 403) return "refused (403): " + d;
  return d;
}

// ---- the event stream ----

let streamAbort = null;
function setConn(s, text) {
  const el = $("#conn");
  el.dataset.state = s;
  el.textContent = text;
}
async function follow() {
  if (streamAbort) streamAbort.abort();
  const ctl = new AbortController();
  streamAbort = ctl;
  let wait = 1000;
  while (!ctl.signal.aborted) {
    let res = null;
    try {
      const q = state.tservice ? "?service=" + encodeURIComponent(state.tservice) : "";
      res = await fetch("/v1/events" + q, { headers: headers({ Accept: "text/event-stream" }), cache: "no-store", signal: ctl.signal });
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    if (res && (res.status === 401 || res.status === 403)) {
      let p = null;
      try { p = await res.json(); } catch (_) { /* no body */ }
      setConn("error", token() ? "the token is refused: " + ((p && p.detail) || res.status) : "this server needs a token to read: give one above");
      return; // a new token restarts the stream
    }
    if (res && res.ok && res.body) {
      setConn("live", "live");
      state.freshStream = true; // its first traffic event holds every mark
      wait = 1000;
      try {
        await readEvents(res.body, ctl.signal, (ms) => { wait = ms; });
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
    }
    if (ctl.signal.aborted) return;
    setConn("reconnecting", "connection lost: reconnecting…");
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 10000);
  }
}
async function readEvents(body, signal, setRetry) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || signal.aborted) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let ev = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) ev = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("retry: ")) setRetry(Number(line.slice(7)) || 1000);
      }
      if (data) handleEvent(ev, JSON.parse(data));
    }
  }
}
function handleEvent(ev, data) {
  if (ev === "status") {
    state.status = data;
    queue("status");
    if (data.revision !== state.revision) {
      state.revision = data.revision;
      loadAudit();
    }
  } else if (ev === "traffic") {
    if ((data.service || "") !== state.tservice) return; // a stream being replaced
    addTraffic(data);
    queue("traffic");
  }
}
function queue(kind) {
  const q = state.renderQueued;
  const first = !q.status && !q.traffic;
  q[kind] = true;
  if (first) {
    requestAnimationFrame(() => {
      const t0 = performance.now();
      if (q.status) renderStatus();
      if (q.status || q.traffic) { renderMap(); renderChart(); }
      const ds = document.body.dataset;
      ds.renderMs = (performance.now() - t0).toFixed(1);
      if (q.status && ds.firstStatusMs === undefined) {
        // When the page first showed the status, from the start of the
        // navigation, and how long that drawing took.
        ds.firstStatusMs = performance.now().toFixed(1);
        ds.firstRenderMs = ds.renderMs;
      }
      q.status = q.traffic = false;
      document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
    });
  }
}

// addTraffic appends an update's seconds to the hour kept here.
function addTraffic(u) {
  const h = state.hist;
  state.lines = u.lines || {};
  state.lineWindow = u.line_window || 1;
  state.dropped = u.dropped || 0;
  // A new stream (a reconnection, another service) sends every mark the
  // server holds again: they replace the ones held, from another
  // server's count perhaps.
  if (state.freshStream) state.marks = [];
  state.freshStream = false;
  if (u.marks && u.marks.length) state.marks = state.marks.concat(u.marks).slice(-512);
  if (!u.seconds) return;
  if (!h.len || u.start < h.start || u.start > h.start + h.len) {
    // First update, or a gap (a new server): start again from here.
    h.start = u.start; h.len = 0; h.regions = {}; h.services = {}; h.serviceRegions = {};
  }
  const offset = u.start - h.start; // seconds already held that the update repeats
  const add = (table, src) => {
    for (const name of Object.keys(table)) if (!(name in src)) table[name].push(...new Array(u.seconds).fill(0));
    for (const [name, vals] of Object.entries(src)) {
      const a = table[name] || (table[name] = new Array(h.len).fill(0));
      a.length = offset;
      a.push(...vals);
    }
  };
  add(h.regions, u.regions || {});
  add(h.services, u.services || {});
  add(h.serviceRegions, u.service_regions || {});
  h.len = offset + u.seconds;
  const over = h.len - 3600;
  if (over > 0) {
    for (const t of [h.regions, h.services, h.serviceRegions]) for (const k of Object.keys(t)) t[k].splice(0, over);
    h.start += over; h.len -= over;
  }
}

// ---- the status: notices, regions ----

// shiftsOf lists the active shifts that set the region's weight (a
// drain of it, or a weight for it), as the server's marks count them.
function shiftsOf(status, region) {
  return (status.shifts || []).filter((sh) => sh.state === "active" && (sh.drain === region || (sh.weights && region in sh.weights)));
}
// regionState decides as the server's regionState (api/traffic.go).
function regionState(r, status) {
  if (r.drained) return "drained";
  if (r.status === "down") return "down";
  if (shiftsOf(status, r.name).length) return "shifted";
  if (r.status === "unknown") return "unknown";
  if (r.healthy < (r.vips || []).length || (r.vips || []).some((v) => v.passive)) return "degraded";
  return "up";
}
function stateReason(r, status) {
  const left = (s) => s < 120 ? Math.ceil(s) + " s left" : Math.ceil(s / 60) + " min left";
  const shifts = shiftsOf(status, r.name).map((sh) => `shift ${sh.id}: ${sh.does}, ${left(sh.expires_in_seconds)}`);
  return [r.reason, ...shifts].filter(Boolean).join("; ");
}
function located(r) { return r.location && (r.location.lat !== 0 || r.location.lon !== 0 || r.location.country); }
function badge(s) { return `<span class="badge s-${s}" data-state="${s}">${esc(s)}</span>`; }

function renderNotices() {
  const st = state.status, out = [];
  if (st) {
    if (!st.snapshot) out.push("This server has no snapshot yet: it answers no service until it reads one from etcd or its state file.");
    if (st.etcd && !st.etcd.up) out.push("etcd is not reachable" + (st.etcd.reason ? " (" + st.etcd.reason + ")" : "") + ": the server answers from its last snapshot, and writes fail.");
    if (st.snapshot && st.snapshot.empty_refused) out.push(st.snapshot.empty_refused.message);
    for (const p of (st.snapshot && st.snapshot.problems) || []) out.push(p);
    const nowhere = (st.regions || []).filter((r) => !located(r)).map((r) => r.name);
    if (nowhere.length) out.push("Not on the map, no location configured: " + nowhere.join(", ") + ".");
  }
  if (state.dropped) out.push(state.dropped + " series (regions, services or a service's regions) are past the traffic history's limits and not charted.");
  $("#notices").innerHTML = out.map((t) => `<p>${esc(t)}</p>`).join("");
}

function currentService() {
  const svcs = (state.status && state.status.services) || [];
  return svcs.find((s) => s.name === state.service) || svcs[0] || null;
}
function fillSelect(sel, names, keep) {
  const cur = sel.value;
  const same = sel.options.length === names.length && names.every((n, i) => sel.options[i].value === n);
  if (!same) sel.innerHTML = names.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join("");
  if (names.includes(keep)) sel.value = keep; else if (names.includes(cur)) sel.value = cur;
}

function renderStatus() {
  const st = state.status;
  renderNotices();
  const names = (st.services || []).map((s) => s.name);
  fillSelect($("#service"), names, state.service);
  state.service = $("#service").value;
  fillSelect($("#t-service"), [""].concat(names), state.tservice);
  if ($("#t-service").options[0]) $("#t-service").options[0].textContent = "every service";
  if (state.tservice && !names.includes(state.tservice)) setTrafficService("");
  fillSelect($("#w-service"), names, $("#w-service").value);
  fillSelect($("#d-region"), (st.regions || []).map((r) => r.name), $("#d-region").value);
  const wf = $("#w-fields");
  if (wf.dataset.service !== $("#w-service").value || !wf.dataset.edited) fillWeights();

  const svc = currentService();
  const byRegion = {};
  if (svc) for (const r of svc.regions) byRegion[r.region] = r;
  const share = svc && svc.expected_share && (svc.expected_share.ipv4 || svc.expected_share.ipv6);
  const rows = [];
  for (const r of st.regions || []) {
    const s = regionState(r, st);
    const vips = (r.vips || []).map((v) => {
      const votes = (v.votes || []).map((vo) => {
        const cls = (vo.up ? "up" : "down") + (vo.counted ? "" : " ignored");
        const why = vo.counted ? (vo.reason && !vo.up ? ": " + vo.reason : "") : " — not counted: " + (vo.ignored || "");
        return `<li class="${cls}" data-prober="${esc(vo.prober)}">${esc(vo.prober)}${vo.prober_region ? " (" + esc(vo.prober_region) + ")" : ""}: ${vo.up ? "up" : "down"}${esc(why)}</li>`;
      }).join("");
      // Votes that all agree and count are folded away; any dissent shows.
      const agree = (v.votes || []).every((vo) => vo.counted && vo.up === (v.status !== "down"));
      const list = votes ? `<ul class="votes">${votes}</ul>` : "";
      return `<div class="vip"><code>${esc(v.addr)}</code> ${badge(v.status === "down" ? "down" : v.status === "unknown" ? "unknown" : "up")}` +
        ` <span class="reason">${v.up} up, ${v.down} down${v.passive ? ", passive" : ""}</span>` +
        (list && agree && v.votes.length > 3 ? `<details><summary>${v.votes.length} probers agree</summary>${list}</details>` : list) + `</div>`;
    }).join("");
    let load = "—";
    if (r.load && r.load.probers === 0) {
      load = `no counted reading${r.load.stale ? ` <span class="reason">${esc(r.load.stale)} too old</span>` : ""}`;
    } else if (r.load) {
      load = pct(r.load.utilisation) + " used" + (r.load.capacity ? ` <span class="reason">${esc(r.load.load)} of ${esc(r.load.capacity)}</span>` : "") +
        `<div class="reason">${esc(r.load.source)}, ${Math.round(r.load.age_seconds)} s old, ${esc(r.load.probers)} probers</div>`;
    }
    const caps = [];
    for (const v of r.vips || []) for (const vo of v.votes || []) if (vo.capacity != null) caps.push(vo.capacity);
    if (caps.length) load += `<div class="reason">capacity ${esc(Math.min(...caps))}</div>`;
    const sr = byRegion[r.name];
    const weight = sr ? String(sr.weight) + (sr.factors && sr.factors.effective_weight !== undefined && sr.factors.effective_weight !== sr.weight ? ` <span class="reason">effective ${(+sr.factors.effective_weight).toFixed(2)}</span>` : "") : "—";
    const sh = share && share.regions && r.name in share.regions ? pct(share.regions[r.name]) : "—";
    const why = stateReason(r, st);
    rows.push(`<tr data-region="${esc(r.name)}" data-state="${s}"><th scope="row">${esc(r.name)}</th><td>${badge(s)}${why ? `<div class="reason">${esc(why)}</div>` : ""}</td>` +
      `<td>${vips || "no VIPs"}</td><td>${load}</td><td class="num">${weight}</td><td class="num" data-share>${sh}</td><td class="num">${esc(r.answers)}</td></tr>`);
  }
  if (!rows.length) rows.push(`<tr><td colspan="7">${st.snapshot ? "No regions are configured." : "No snapshot yet: nothing to show."}</td></tr>`);
  $("#region-table tbody").innerHTML = rows.join("");
}

// ---- the map ----

// decodeLand turns the TopoJSON land outlines into one SVG path.
function decodeLand(topo) {
  const [sx, sy] = topo.transform.scale, [tx, ty] = topo.transform.translate;
  const arcs = topo.arcs.map((arc) => {
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return project(x * sx + tx, y * sy + ty); });
  });
  const ring = (idx) => {
    const pts = [];
    for (const i of idx) {
      const a = i < 0 ? arcs[~i].slice().reverse() : arcs[i];
      pts.push(...(pts.length ? a.slice(1) : a));
    }
    return "M" + pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join("L") + "Z";
  };
  let d = "";
  const geom = (g) => {
    if (g.type === "GeometryCollection") g.geometries.forEach(geom);
    else if (g.type === "Polygon") g.arcs.forEach((r) => { d += ring(r); });
    else if (g.type === "MultiPolygon") g.arcs.forEach((p) => p.forEach((r) => { d += ring(r); }));
  };
  geom(topo.objects.land);
  return d;
}
let landPath = null;
async function loadLand() {
  try {
    const res = await fetch("land-110m.json");
    landPath = decodeLand(await res.json());
  } catch (e) {
    landPath = "";
    $("#map-note").textContent += " (The land outlines could not be read: " + e.message + ".)";
  }
  renderMap();
}
function graticule() {
  let d = "";
  for (let lon = -150; lon <= 150; lon += 30) { const [x] = project(lon, 0); d += `M${x},0V${H}`; }
  for (let lat = -60; lat <= 60; lat += 30) { const [, y] = project(0, lat); d += `M0,${y}H${W}`; }
  return d;
}
function renderMap() {
  const st = state.status;
  const parts = [`<path class="graticule" d="${graticule()}"/>`];
  if (landPath) parts.push(`<path class="land" d="${landPath}"/>`);
  const pos = {};
  const regionsList = (st && st.regions) || [];
  for (const r of regionsList) if (located(r)) pos[r.name] = project(r.location.lon, r.location.lat);
  // Lines: each continent's answers by region over the last window.
  const flows = [];
  for (const [cont, byRegion] of Object.entries(state.lines)) {
    const total = Object.values(byRegion).reduce((a, b) => a + b, 0);
    if (!total || !CONTINENTS[cont]) continue;
    const [cx, cy] = project(...CONTINENTS[cont]);
    for (const [region, n] of Object.entries(byRegion)) {
      if (!pos[region] || !n) continue;
      const share = n / total;
      const [rx, ry] = pos[region];
      const mx = (cx + rx) / 2, my = (cy + ry) / 2 - Math.abs(rx - cx) * 0.15;
      flows.push(`<path class="flow" d="M${cx.toFixed(1)},${cy.toFixed(1)}Q${mx.toFixed(1)},${my.toFixed(1)} ${rx.toFixed(1)},${ry.toFixed(1)}" stroke-width="${(1 + 9 * share).toFixed(2)}" data-continent="${cont}" data-region="${esc(region)}" data-share="${share.toFixed(4)}"><title>${esc(CONTINENT_NAMES[cont])} → ${esc(region)}: ${pct(share)} (${n} answers in ${state.lineWindow} s)</title></path>`);
    }
  }
  parts.push(...flows);
  for (const [cont, ll] of Object.entries(CONTINENTS)) {
    if (!state.lines[cont]) continue;
    const [x, y] = project(...ll);
    parts.push(`<g class="continent"><circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4"/><text x="${(x + 6).toFixed(1)}" y="${(y + 4).toFixed(1)}">${esc(CONTINENT_NAMES[cont])}</text></g>`);
  }
  for (const r of regionsList) {
    if (!pos[r.name]) continue;
    const s = regionState(r, st);
    const [x, y] = pos[r.name];
    parts.push(`<g class="region" data-region="${esc(r.name)}" data-state="${s}" tabindex="0" role="img" aria-label="${esc(r.name)}: ${esc(STATE_TEXT[s])}">` +
      `<circle class="f-${s}" cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="7" stroke="#fff" stroke-width="1.5"/>` +
      `<text x="${(x + 9).toFixed(1)}" y="${(y - 1).toFixed(1)}">${esc(r.name)}</text><text class="state" x="${(x + 9).toFixed(1)}" y="${(y + 10).toFixed(1)}">${esc(s)}</text>` +
      `<title>${esc(r.name)}: ${esc(STATE_TEXT[s])}${stateReason(r, st) ? " — " + esc(stateReason(r, st)) : ""}</title></g>`);
  }
  $("#map").innerHTML = parts.join("");
}

// ---- the traffic chart ----

function renderChart() {
  // The chart spans the range chosen, or less while less is known (a
  // minute at least).
  const h = state.hist, span = Math.min(Number($("#range").value), Math.max(60, h.len));
  const L = 48, R = 950, T = 10, B = 230;
  const parts = [];
  const n = Math.min(h.len, span), from = h.len - n;
  // Every service's answers by region, or the chosen service's by
  // region with its total dashed.
  const byRegion = state.tservice ? h.serviceRegions : h.regions;
  const series = Object.keys(byRegion).sort().map((name) => ({ name, vals: byRegion[name].slice(from) }));
  const svc = state.tservice && h.services[state.tservice] ? h.services[state.tservice].slice(from) : null;
  let max = 1;
  for (const s of series) for (const v of s.vals) max = Math.max(max, v);
  if (svc) for (const v of svc) max = Math.max(max, v);
  const x = (i) => L + (R - L) * (i + span - n) / Math.max(span - 1, 1);
  const y = (v) => B - (B - T) * v / max;
  parts.push(`<line class="axis" x1="${L}" y1="${B}" x2="${R}" y2="${B}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${B}"/>`);
  parts.push(`<text x="${L - 4}" y="${T + 8}" text-anchor="end">${max}/s</text><text x="${L - 4}" y="${B}" text-anchor="end">0</text>`);
  parts.push(`<text x="${L}" y="${B + 16}">−${span >= 120 ? Math.round(span / 60) + " min" : span + " s"}</text><text x="${R}" y="${B + 16}" text-anchor="end">now</text>`);
  const poly = (vals) => vals.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
  const legend = [];
  series.forEach((s, i) => {
    const c = SERIES_COLOURS[i % SERIES_COLOURS.length];
    if (s.vals.length) parts.push(`<polyline class="series" stroke="${c}" points="${poly(s.vals)}" data-region="${esc(s.name)}"><title>${esc(s.name)}</title></polyline>`);
    if (i < 12) legend.push(`<text x="${L + 8 + (i % 6) * 150}" y="${B + 30 + Math.floor(i / 6) * 13}" fill="${c}">■ ${esc(s.name)}: ${s.vals.length ? s.vals[s.vals.length - 1] : 0}/s</text>`);
  });
  if (svc && svc.length) parts.push(`<polyline class="service" points="${poly(svc)}" data-service="${esc(state.tservice)}"><title>${esc(state.tservice)}: every answer</title></polyline>`);
  if (n && h.len) {
    const startSec = h.start + from;
    for (const m of state.marks) {
      const sec = Math.floor(Date.parse(m.time) / 1000) - startSec;
      if (sec < 0 || sec >= n) continue;
      const mx = x(sec).toFixed(1);
      const shift = m.from === "shifted" || m.to === "shifted";
      parts.push(`<line class="mark${shift ? " shift" : ""}" x1="${mx}" y1="${T}" x2="${mx}" y2="${B}" data-region="${esc(m.region)}" data-to="${esc(m.to)}"><title>${esc(m.region)}: ${esc(m.from)} → ${esc(m.to)}${m.note ? " (" + esc(m.note) + ")" : ""}</title></line>`);
    }
  }
  if (!h.len) parts.push(`<text x="${(L + R) / 2}" y="${(T + B) / 2}" text-anchor="middle">No traffic counted yet.</text>`);
  else if (state.tservice && !series.length) parts.push(`<text x="${(L + R) / 2}" y="${(T + B) / 2}" text-anchor="middle">${esc(state.tservice)} answered nothing in the last hour${state.dropped ? ", or is past the history's limit" : ""}.</text>`);
  if (series.length > 12) {
    legend.push(`<text x="${L + 8}" y="${B + 30 + 2 * 13}" class="more">and ${series.length - 12} more regions, not listed here: a line's name shows when it is pointed at</text>`);
  }
  parts.push(...legend);
  $("#chart").setAttribute("viewBox", `0 0 960 ${B + 30 + Math.ceil(Math.min(series.length, 12) / 6) * 13 + (series.length > 12 ? 13 : 0)}`);
  $("#chart").innerHTML = parts.join("");
  $("#marks").innerHTML = state.marks.slice().reverse().slice(0, 50).map((m) =>
    `<li data-region="${esc(m.region)}" data-to="${esc(m.to)}"><time datetime="${esc(m.time)}">${esc(new Date(m.time).toLocaleTimeString())}</time> ${esc(m.region)}: ${esc(m.from)} → ${badge(m.to === "absent" ? "unknown" : m.to).replace(/>[^<]*</, ">" + esc(m.to) + "<")}${m.note ? ` <span class="reason">${esc(m.note)}</span>` : ""}</li>`).join("") || "<li>No change of state since this page opened.</li>";
  $("#traffic-what").textContent = state.tservice ? `${state.tservice}'s answers per second by region, dashed its every answer` : "Answers per second by region, every service together";
}

// setTrafficService charts a service's traffic by region ("": every
// service's): the stream is asked again for it, and sends its hour.
function setTrafficService(name) {
  if (name === state.tservice) return;
  state.tservice = name;
  $("#t-service").value = name;
  const h = state.hist;
  h.start = 0; h.len = 0; h.regions = {}; h.services = {}; h.serviceRegions = {};
  queue("traffic");
  follow();
}

// ---- explain ----

async function explain(ev) {
  ev.preventDefault();
  const q = new URLSearchParams({ name: $("#ex-name").value.trim(), type: $("#ex-type").value });
  const client = $("#ex-client").value.trim();
  if (client) q.set("client", client);
  const out = $("#explain-out");
  out.textContent = "asking…";
  const r = await api("GET", "/v1/explain?" + q);
  if (!r.ok) { out.innerHTML = `<p class="error">${esc(problemText(r))}</p>`; return; }
  const e = r.body, x = e.explanation || {}, d = e.decision || {};
  const steps = (x.steps || []).map((s) => {
    const cands = (s.candidates || []).map((c) => `<li>${esc(c.region)}: ${esc(c.status)}, weight ${esc(c.weight)}${c.kept ? ", kept" : ", left out"}${c.distance_km != null ? ", " + Math.round(c.distance_km) + " km" : ""}${c.rtt_ms != null ? ", " + c.rtt_ms + " ms" : ""}${c.note ? " — " + esc(c.note) : ""}</li>`).join("");
    return `<li><strong>${esc(s.step)}</strong>: ${esc(s.reason)}${s.result ? " → " + esc(s.result.join(", ")) : ""}${cands ? `<ul>${cands}</ul>` : ""}</li>`;
  }).join("");
  const loc = x.client && x.client.location;
  out.innerHTML = `<p class="result" data-region="${esc(d.region || "")}" data-kind="${esc(d.kind || "")}">${esc(e.name)} → ${esc(d.kind)}${d.region ? " " + esc(d.region) : ""}: ${esc((d.addrs || []).join(", "))} (TTL ${esc(d.ttl)})</p>` +
    `<p>Client ${esc(e.client || "none")} via ${esc(e.resolver)}${loc ? ", located in " + esc([loc.country, loc.continent].filter(Boolean).join(", ")) : ""}; service ${esc(e.service)}, policy ${esc(x.policy)}, revision ${esc(e.revision)}.</p>` +
    `<p>${esc(x.reason || "")}</p><ol>${steps}</ol>` +
    `<details><summary>The API's answer (JSON)</summary><pre id="explain-json">${esc(JSON.stringify(e, null, 2))}</pre></details>`;
}

// ---- changes: audit log, weights, drains ----

async function loadAudit() {
  const r = await api("GET", "/v1/audit?limit=50");
  const body = $("#audit tbody");
  if (!r.ok) { body.innerHTML = `<tr><td colspan="3" class="error">${esc(problemText(r))}</td></tr>`; return; }
  const recs = r.body.records || [];
  body.innerHTML = recs.map((a) => `<tr><td><time datetime="${esc(a.time)}">${esc(new Date(a.time).toLocaleString())}</time></td><td>${esc(a.actor || "—")}</td><td>${esc(a.action)} ${esc(a.kind)} ${esc(a.name)}${auditDetail(a)}</td></tr>`).join("") ||
    `<tr><td colspan="3">No change recorded.</td></tr>`;
}
function auditDetail(a) {
  if (a.action !== "set-weights" && a.action !== "replace-weights") return "";
  const w = (o) => Object.fromEntries(((o && o.regions) || []).map((r) => [r.region, r.weight]));
  const b = w(a.before), f = w(a.after);
  const diff = Object.keys(f).filter((k) => b[k] !== f[k]).map((k) => `${k} ${b[k] ?? "—"}→${f[k]}`);
  return diff.length ? ": " + esc(diff.join(", ")) : "";
}

function fillWeights() {
  const st = state.status, name = $("#w-service").value;
  const svc = st && (st.services || []).find((s) => s.name === name);
  const f = $("#w-fields");
  f.dataset.service = name;
  f.dataset.edited = "";
  f.innerHTML = svc ? svc.regions.map((r, i) => `<label for="w-${i}">${esc(r.region)}</label><input id="w-${i}" type="number" min="0" max="1000000" step="1" data-region="${esc(r.region)}" value="${r.weight}">`).join("") : "";
}
function sharesOf(x) { return (x && (x.ipv4 || x.ipv6) && (x.ipv4 || x.ipv6).regions) || {}; }

async function previewWeights(ev) {
  ev.preventDefault();
  const name = $("#w-service").value, svc = (state.status.services || []).find((s) => s.name === name);
  if (!svc) return;
  const weights = {};
  for (const inp of $("#w-fields").querySelectorAll("input")) {
    const v = Number(inp.value);
    if (!Number.isInteger(v) || v < 0) { showPreview(`<p class="error">${esc(inp.dataset.region)}: a weight is a whole number, 0 or more.</p>`); return; }
    const cur = svc.regions.find((r) => r.region === inp.dataset.region);
    if (!cur || cur.weight !== v) weights[inp.dataset.region] = v;
  }
  if (!Object.keys(weights).length) { showPreview("<p>Nothing to change: the weights are as they are now.</p>"); return; }
  const path = "/v1/services/" + encodeURIComponent(name) + "/weights";
  const r = await api("PATCH", path + "?dry_run=true", { weights });
  if (!r.ok) { showPreview(`<p class="error">${esc(problemText(r))}</p>`); return; }
  const now = sharesOf(svc.expected_share), after = sharesOf(r.body.expected_share);
  const rows = svc.regions.map((x) => `<tr><th scope="row">${esc(x.region)}</th><td class="num">${x.weight}</td><td class="num">${weights[x.region] ?? x.weight}</td><td class="num">${x.region in now ? pct(now[x.region]) : "—"}</td><td class="num" data-after="${esc(x.region)}">${x.region in after ? pct(after[x.region]) : "—"}</td></tr>`).join("");
  state.pending = { method: "PATCH", path, body: { weights }, rev: r.body.revision, what: "weights of " + name };
  showPreview(`<p>Preview (dry run) of ${esc(name)}:</p><table><thead><tr><th scope="col">Region</th><th scope="col" class="num">Weight now</th><th scope="col" class="num">After</th><th scope="col" class="num">Share now</th><th scope="col" class="num">Share after</th></tr></thead><tbody>${rows}</tbody></table>` + confirmButtons());
}
async function previewDrain(ev) {
  ev.preventDefault();
  const name = $("#d-region").value, action = $("#d-action").value;
  const path = "/v1/regions/" + encodeURIComponent(name) + "/" + action;
  const r = await api("POST", path + "?dry_run=true");
  if (!r.ok) { showPreview(`<p class="error">${esc(problemText(r))}</p>`); return; }
  if (!r.body.changed) { state.pending = null; showPreview(`<p>${esc(name)} is already ${action === "drain" ? "drained" : "not drained"}: nothing to do.</p>`); return; }
  const nodata = (r.body.nodata || []).map((n) => n.service || JSON.stringify(n));
  state.pending = { method: "POST", path, rev: r.body.revision, what: action + " " + name, force: nodata.length > 0 };
  showPreview(`<p>Preview (dry run): ${esc(action)} ${esc(name)}. ${action === "drain" ? "It leaves every answer; its clients go to their next candidates." : "It is answered again by its weights."}</p>` +
    (nodata.length ? `<p class="error">These services would answer NODATA: ${esc(nodata.join(", "))}.</p>` : "") + confirmButtons());
}
function confirmButtons() { return `<p><button type="button" class="primary" id="confirm">Confirm</button> <button type="button" id="cancel">Cancel</button></p>`; }
function showPreview(html) {
  $("#preview").innerHTML = html;
  const c = $("#confirm");
  if (c) { c.addEventListener("click", confirmChange); $("#cancel").addEventListener("click", () => { state.pending = null; showPreview("<p>Cancelled.</p>"); }); c.focus(); }
}
async function confirmChange() {
  const p = state.pending;
  if (!p) return;
  state.pending = null;
  const extra = p.rev ? { "If-Match": '"' + p.rev + '"' } : {};
  const r = await api(p.method, p.path + (p.force ? "?force=true" : ""), p.body, extra);
  if (!r.ok) {
    const why = r.status === 412 ? "it changed since the preview; preview again" : problemText(r);
    showPreview(`<p class="error">Not done: ${esc(why)}</p>`);
    return;
  }
  $("#w-fields").dataset.edited = "";
  showPreview(`<p class="ok" id="done">Done: ${esc(p.what)} (revision ${esc(r.body.revision)}).</p>`);
  loadAudit();
}

// ---- start ----

function start() {
  $("#token").value = "";
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("#token").value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $("#token").value = "";
    follow();
    loadAudit();
  });
  $("#token-forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); follow(); loadAudit(); });
  $("#service").addEventListener("change", () => { state.service = $("#service").value; queue("status"); });
  $("#range").addEventListener("change", () => queue("traffic"));
  $("#t-service").addEventListener("change", () => setTrafficService($("#t-service").value));
  $("#w-service").addEventListener("change", fillWeights);
  $("#w-fields").addEventListener("input", () => { $("#w-fields").dataset.edited = "1"; });
  $("#weights-form").addEventListener("submit", previewWeights);
  $("#drain-form").addEventListener("submit", previewDrain);
  $("#explain-form").addEventListener("submit", explain);
  $("#legend").innerHTML = STATES.map((s) => `<li>${badge(s)} ${esc(STATE_TEXT[s].replace(/^[a-z]+(: )?/, ""))}</li>`).join("");
  renderChart();
  loadLand();
  follow();
}
start();
