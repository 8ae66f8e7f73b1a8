// The dispatcher's dashboard: a client of the /v1 JSON API with a dispatcher key, nothing
// more. Plain JavaScript, every asset served by the service itself: it works on a closed
// network.
"use strict";

const LABELS = {
  en: {
    sign_in: "Sign in", sign_out: "Sign out", dispatcher_key: "Dispatcher API key",
    demo_login: "Demo fleet", bad_key: "This key is not a dispatcher's key.",
    fleet: "Fleet", status: "Status", all: "All active", in_transit: "On the road",
    planned: "Planned", search: "Search", reference: "Reference",
    vehicle: "Vehicle", next_stop: "Next stop", eta: "ETA", band: "P10 to P90",
    window: "Window", risk: "Risk", last_ping: "Last ping", feeds: "Feeds", map: "Map",
    truck: "Truck", remaining_stop: "Remaining stop", close: "Close", timeline: "Timeline",
    eta_history: "How the ETA moved", breakdown: "Breakdown", factors: "Strongest factors",
    operations: "Operations", on_time: "On time", at_risk: "At risk", late: "Late",
    no_window: "no window", updated: "Updated", model: "Model",
    active_shipments: "Active shipments", late_now: "Late or at risk",
    degraded_now: "Estimates missing a feed", accuracy: "Live accuracy (mean error)",
    none_yet: "none yet", drive: "Driving", break: "Break", rest: "Rest", dwell: "Dwell",
    ban_wait: "Ban wait", minutes: "min",
    feeds_ok: "all feeds", empty: "No active shipment.", ingestion: "Pings received",
    circuit_open: "down (circuit open)", no_data: "no data yet", no_feeds: "none configured",
    rules_fallback: "rules (no model)", all_columns: "All columns",
  },
  fr: {
    sign_in: "Se connecter", sign_out: "Se déconnecter", dispatcher_key: "Clé d'API exploitant",
    demo_login: "Flotte de démonstration", bad_key: "Cette clé n'est pas une clé d'exploitant.",
    fleet: "Flotte", status: "Statut", all: "Toutes en cours", in_transit: "En route",
    planned: "Planifiée", search: "Rechercher", reference: "Référence",
    vehicle: "Véhicule", next_stop: "Prochain arrêt", eta: "Arrivée prévue", band: "P10 à P90",
    window: "Créneau", risk: "Risque", last_ping: "Dernière position", feeds: "Flux", map: "Carte",
    truck: "Camion", remaining_stop: "Arrêt restant", close: "Fermer", timeline: "Déroulé",
    eta_history: "Évolution de l'arrivée prévue", breakdown: "Décomposition",
    factors: "Facteurs principaux", operations: "Exploitation", on_time: "À l'heure",
    at_risk: "À risque", late: "En retard", no_window: "sans créneau", updated: "Mis à jour",
    model: "Modèle", active_shipments: "Expéditions en cours",
    late_now: "En retard ou à risque", degraded_now: "Estimations sans un flux",
    accuracy: "Précision en direct (erreur moyenne)", none_yet: "pas encore", drive: "Conduite",
    break: "Pause", rest: "Repos", dwell: "Arrêt", ban_wait: "Interdiction",
    minutes: "min", feeds_ok: "tous les flux",
    empty: "Aucune expédition en cours.", ingestion: "Positions reçues",
    circuit_open: "en panne (circuit ouvert)", no_data: "pas encore de données",
    no_feeds: "aucun configuré", rules_fallback: "règles (pas de modèle)",
    all_columns: "Toutes les colonnes",
  },
};
const SEVERITY_ORDER = { late: 0, at_risk: 1, on_time: 2 };
const SEVERITY_MARK = { late: "✖", at_risk: "▲", on_time: "●" };
// Polling the list is the fallback while the event stream is down; with the stream up, the
// list is read again now and then only, for new shipments and what another replica computed.
const REFRESH_MS = 2000;
const FULL_REFRESH_MS = 30000;
const RECONNECT_MS = 5000;

const state = {
  language: localStorage.getItem("etape-language") ||
    ((navigator.language || "en").toLowerCase().startsWith("fr") ? "fr" : "en"),
  key: sessionStorage.getItem("etape-key"),
  rows: [],
  selected: null,
  sort: { field: "severity", descending: false },
  outline: null,
  timer: null,
  stream: null,
  live: null,
  reconnect: null,
  history: null,
  events: 0,
  // `/?poll` reads the list every 2 s instead of the stream: for a proxy that buffers streamed
  // answers, and for headless renderers whose virtual time stands still while a request is open.
  pollOnly: new URLSearchParams(location.search).has("poll"),
};

const $ = (selector) => document.querySelector(selector);
const t = (key) => (LABELS[state.language] || LABELS.en)[key] || key;

function applyLanguage() {
  document.documentElement.lang = state.language;
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  });
  $("#language").textContent = state.language === "fr" ? "English" : "Français";
  $("#language").lang = state.language === "fr" ? "en" : "fr";
}

function time(text) {
  if (!text) return "–";
  return new Date(text).toLocaleString(state.language === "fr" ? "fr-FR" : "en-GB", {
    weekday: "short", hour: "2-digit", minute: "2-digit",
  });
}

/// A span (a band, a window), its end as a time of day alone when it falls on its start's day.
function band(start, end) {
  if (!start || !end) return "–";
  const sameDay = new Date(start).toDateString() === new Date(end).toDateString();
  if (!sameDay) return `${time(start)} – ${time(end)}`;
  const clock = new Date(end).toLocaleTimeString(state.language === "fr" ? "fr-FR" : "en-GB", { hour: "2-digit", minute: "2-digit" });
  return `${time(start)} – ${clock}`;
}

function age(text) {
  if (!text) return "–";
  const minutes = Math.max(0, Math.round((Date.now() - new Date(text).getTime()) / 60000));
  if (minutes < 60) return `${minutes} ${t("minutes")}`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")}`;
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  if (response.status === 401 || response.status === 403) {
    signOut(t("bad_key"));
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function listShipments(status) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(`/v1/shipments?status=${status}&include=estimate&limit=200${cursor ? `&cursor=${cursor}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/// One row of the fleet: the shipment, its current estimate and what the dispatcher looks at.
function row(shipment, snapshot) {
  const next = snapshot.stops.find((stop) => stop.state === "pending") || snapshot.stops[snapshot.stops.length - 1];
  const plan = shipment.stops[next.index] || {};
  const worst = snapshot.stops
    .filter((stop) => stop.state === "pending" && stop.severity)
    .sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity])[0];
  return {
    id: shipment.id, reference: shipment.reference, vehicle: shipment.vehicle_id,
    status: shipment.status, next: plan.id || next.id, eta: next.eta, p10: next.eta_p10,
    p90: next.eta_p90, window: plan.window, severity: worst ? worst.severity : null,
    probability: worst ? worst.late_probability : null,
    ping: snapshot.position ? snapshot.position.at : null,
    position: snapshot.position, degraded: snapshot.degraded || [], snapshot, shipment,
  };
}

async function refresh() {
  try {
    // Each page carries its shipments' estimates: one request per page, never one per truck.
    const shipments = (await listShipments("in_transit")).concat(await listShipments("planned"));
    state.rows = shipments.filter((shipment) => shipment.estimate).map((shipment) => row(shipment, shipment.estimate));
    renderFleet();
    renderMap();
    await renderOperations();
    if (state.selected) await renderDetail(state.selected);
    $("#updated").textContent = `${t("updated")} ${new Date().toLocaleTimeString(state.language === "fr" ? "fr-FR" : "en-GB")}`;
  } catch (error) {
    if (error.message !== "signed out") $("#updated").textContent = error.message;
  }
}

// The organisation's event stream, read with fetch: EventSource cannot send the key in the
// Authorization header, and a key in the URL would end up in logs and the browser's history.
async function listen() {
  const controller = new AbortController();
  state.stream = controller;
  try {
    const response = await fetch("/v1/events", {
      headers: { Authorization: `Bearer ${state.key}`, Accept: "text/event-stream" },
      signal: controller.signal,
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 403) {
      signOut(t("bad_key"));
      return;
    }
    if (!response.ok || !response.body) throw new Error(`/v1/events: HTTP ${response.status}`);
    setLive(true);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        handleFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (_) {
    // Dropped or refused: polled below until it is back.
  }
  if (state.stream !== controller || controller.signal.aborted || !state.key) return;
  setLive(false);
  clearTimeout(state.reconnect);
  state.reconnect = setTimeout(listen, RECONNECT_MS);
}

/// Polls the list fast while the stream is down, slowly while it is up; catches up once it
/// is back.
function setLive(live) {
  const recovered = live && state.live === false;
  state.live = live;
  document.body.dataset.live = live ? "stream" : "polling";
  clearInterval(state.timer);
  state.timer = setInterval(refresh, live ? FULL_REFRESH_MS : REFRESH_MS);
  if (recovered) refresh();
}

/// One Server-Sent Event: its `event:` name and its JSON `data:`.
function handleFrame(frame) {
  let name = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  let payload;
  try {
    payload = JSON.parse(data.join("\n"));
  } catch (_) {
    return;
  }
  state.events += 1;
  document.body.dataset.events = String(state.events);
  if (name === "estimate") onEstimate(payload);
  else if (name === "status") onStatus(payload);
  else if (name === "lagged") refresh();
}

function onEstimate({ shipment_id: id, estimate }) {
  const index = state.rows.findIndex((item) => item.id === id);
  // A shipment registered since the list was read.
  if (index < 0) return reloadSoon();
  state.rows[index] = row(state.rows[index].shipment, estimate);
  renderSoon();
}

function onStatus({ shipment_id: id, status }) {
  const index = state.rows.findIndex((item) => item.id === id);
  const active = status === "planned" || status === "in_transit";
  if (index < 0) {
    if (active) reloadSoon();
    return;
  }
  if (active) {
    const current = state.rows[index];
    state.rows[index] = row({ ...current.shipment, status }, current.snapshot);
  } else {
    state.rows.splice(index, 1);
  }
  renderSoon();
}

/// Events come in bursts: the page is drawn once per burst.
function renderSoon() {
  if (state.rendering) return;
  state.rendering = setTimeout(() => {
    state.rendering = null;
    renderFleet();
    renderMap();
    if (state.selected) renderDetail(state.selected, false);
    $("#updated").textContent = `${t("updated")} ${new Date().toLocaleTimeString(state.language === "fr" ? "fr-FR" : "en-GB")}`;
  }, 100);
}

function reloadSoon() {
  if (state.reloading) return;
  state.reloading = setTimeout(() => {
    state.reloading = null;
    refresh();
  }, 1000);
}

function compare(a, b) {
  const { field, descending } = state.sort;
  const value = (row) => {
    if (field === "severity") return row.severity ? SEVERITY_ORDER[row.severity] : 3;
    if (field === "eta" || field === "ping") return row[field] ? new Date(row[field]).getTime() : Infinity;
    return String(row[field] || "");
  };
  const [x, y] = [value(a), value(b)];
  const order = x < y ? -1 : x > y ? 1 : 0;
  return descending ? -order : order;
}

function renderFleet() {
  const status = $("#status-filter").value;
  const search = $("#search").value.trim().toLowerCase();
  const rows = state.rows
    .filter((row) => !status || row.status === status)
    .filter((row) => !search || row.reference.toLowerCase().includes(search) || row.vehicle.toLowerCase().includes(search))
    .sort(compare);
  const body = $("#fleet-table tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    const empty = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 9;
    cell.textContent = t("empty");
    empty.append(cell);
    body.append(empty);
  }
  for (const item of rows) {
    const tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.id = item.id;
    tr.setAttribute("aria-selected", String(item.id === state.selected));
    // The columns that matter first: reference, vehicle, next stop, ETA, risk, band.
    const cell = (text, className) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (className) td.className = className;
      return td;
    };
    const reference = cell(item.reference, "ref");
    reference.title = item.reference;
    const next = cell(item.next, "next");
    next.title = item.next;
    tr.append(reference, cell(item.vehicle), next, cell(time(item.eta)));
    const risk = document.createElement("td");
    if (item.severity) {
      const badge = document.createElement("span");
      badge.className = `severity ${item.severity}`;
      // A shape and a word beside the colour: colour is never the only signal.
      badge.textContent = `${SEVERITY_MARK[item.severity]} ${t(item.severity)}`;
      if (item.probability != null) badge.title = `${Math.round(item.probability * 100)} %`;
      risk.append(badge);
    } else {
      risk.textContent = "–";
    }
    tr.append(risk);
    tr.append(cell(band(item.p10, item.p90)));
    tr.append(cell(item.window ? band(item.window.start, item.window.end) : t("no_window"), "col-window"));
    tr.append(cell(age(item.ping), "col-ping"));
    const feeds = cell("", "col-feeds");
    feeds.textContent = item.degraded.length ? `⚠ ${item.degraded.join(", ")}` : t("feeds_ok");
    if (item.degraded.length) feeds.classList.add("flag");
    tr.append(feeds);
    const open = () => select(item.id);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); }
    });
    body.append(tr);
  }
  document.querySelectorAll("[data-sort]").forEach((button) => {
    const sorted = button.dataset.sort === state.sort.field;
    if (sorted) button.setAttribute("aria-sort", state.sort.descending ? "descending" : "ascending");
    else button.removeAttribute("aria-sort");
  });
}

// The map: France and its neighbours in Web Mercator (the projection of raster tiles, so that
// an optional tile server lines up with the offline outline).
const VIEW = { west: -5.5, east: 10.5, south: 41.0, north: 51.8 };
const TILE_ZOOM = 6;
function mercator(lat, lon) {
  const size = 256 * 2 ** TILE_ZOOM;
  const radians = (lat * Math.PI) / 180;
  return [
    ((lon + 180) / 360) * size,
    ((1 - Math.log(Math.tan(radians) + 1 / Math.cos(radians)) / Math.PI) / 2) * size,
  ];
}
const CORNERS = [mercator(VIEW.north, VIEW.west), mercator(VIEW.south, VIEW.east)];
const CENTRE = [(CORNERS[0][0] + CORNERS[1][0]) / 2, (CORNERS[0][1] + CORNERS[1][1]) / 2];
const SCALE = Math.min(1000 / (CORNERS[1][0] - CORNERS[0][0]), 800 / (CORNERS[1][1] - CORNERS[0][1]));
function project(lat, lon) {
  const [x, y] = mercator(lat, lon);
  return [500 + (x - CENTRE[0]) * SCALE, 400 + (y - CENTRE[1]) * SCALE];
}

function drawTiles(map, template) {
  const [first, last] = CORNERS.map(([x, y]) => [Math.floor(x / 256), Math.floor(y / 256)]);
  for (let x = first[0]; x <= last[0]; x++) {
    for (let y = first[1]; y <= last[1]; y++) {
      const href = template.replace("{z}", TILE_ZOOM).replace("{x}", x).replace("{y}", y);
      map.append(svg("image", {
        href, x: 500 + (x * 256 - CENTRE[0]) * SCALE, y: 400 + (y * 256 - CENTRE[1]) * SCALE,
        width: 256 * SCALE + 0.5, height: 256 * SCALE + 0.5, class: "tile",
      }));
    }
  }
}

function svg(tag, attributes, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

function renderMap() {
  const map = $("#map");
  map.replaceChildren();
  map.setAttribute("aria-label", t("map"));
  const tiles = state.settings && state.settings.tile_url;
  map.classList.toggle("over-tiles", Boolean(tiles));
  if (tiles) drawTiles(map, tiles);
  if (state.outline) {
    for (const country of state.outline.countries) {
      const d = country.rings
        .map((ring) => ring.map(([lon, lat], index) => `${index ? "L" : "M"}${project(lat, lon).map((v) => v.toFixed(1)).join(",")}`).join("") + "Z")
        .join("");
      map.append(svg("path", { d, class: `country ${country.code}` }));
    }
  }
  const shown = state.selected ? state.rows.filter((row) => row.id === state.selected) : state.rows;
  for (const item of shown) {
    for (const stop of item.snapshot.stops.filter((stop) => stop.state === "pending")) {
      const plan = item.shipment.stops[stop.index];
      if (!plan) continue;
      const [x, y] = project(plan.lat, plan.lon);
      map.append(svg("rect", { x: x - 5, y: y - 5, width: 10, height: 10, class: "stop" }));
      if (state.selected) map.append(svg("text", { x: x + 8, y: y - 6 }, plan.id));
    }
  }
  if (state.trace && state.selected) {
    const points = state.trace.map((ping) => project(ping.lat, ping.lon).map((v) => v.toFixed(1)).join(",")).join(" ");
    map.append(svg("polyline", { points, class: "trace" }));
  }
  for (const item of shown) {
    if (!item.position) continue;
    const [x, y] = project(item.position.lat, item.position.lon);
    const dot = svg("circle", { cx: x, cy: y, r: 7, class: `truck ${item.severity || ""}` });
    dot.append(svg("title", {}, `${item.vehicle} · ${item.reference}`));
    map.append(dot);
    map.append(svg("text", { x: x + 9, y: y + 4 }, item.vehicle));
  }
}

async function select(id) {
  state.selected = id;
  state.trace = null;
  state.history = null;
  $("#detail").hidden = false;
  renderFleet();
  await renderDetail(id);
  renderMap();
  $("#detail-title").focus?.();
}

/// The detail of the selected shipment; its history and trace are read again unless
/// `reload` is false (an update from the stream redraws what it brought).
async function renderDetail(id, reload = true) {
  const item = state.rows.find((row) => row.id === id);
  if (!item) return;
  $("#detail-title").textContent = `${item.reference} · ${item.vehicle}`;
  if (reload || !state.history) {
    const [history, positions] = await Promise.all([
      api(`/v1/shipments/${id}/eta/history`).catch(() => ({ snapshots: [] })),
      api(`/v1/vehicles/${encodeURIComponent(item.vehicle)}/positions`).catch(() => []),
    ]);
    state.trace = Array.isArray(positions) ? positions : [];
    state.history = history.snapshots || [];
  }
  drawTimeline(item.snapshot.timeline);
  drawHistory(state.history, item);
  const totals = {};
  for (const segment of item.snapshot.timeline) {
    totals[segment.kind] = (totals[segment.kind] || 0) + (new Date(segment.end) - new Date(segment.start)) / 60000;
  }
  $("#breakdown").replaceChildren(...Object.entries(totals).flatMap(([kind, minutes]) => {
    const dt = document.createElement("dt");
    dt.textContent = t(kind);
    const dd = document.createElement("dd");
    dd.textContent = `${Math.round(minutes)} ${t("minutes")}`;
    return [dt, dd];
  }));
  $("#factors").replaceChildren(...item.snapshot.factors.map((factor) => {
    const li = document.createElement("li");
    const sign = factor.minutes >= 0 ? "+" : "−";
    li.textContent = `${factor.feature}${factor.value != null ? ` = ${Math.round(factor.value * 100) / 100}` : ""}: ${sign}${Math.abs(Math.round(factor.minutes))} ${t("minutes")}`;
    return li;
  }));
}

function drawTimeline(segments) {
  const chart = $("#timeline");
  chart.replaceChildren();
  chart.setAttribute("aria-label", t("timeline"));
  if (!segments.length) return;
  const start = new Date(segments[0].start).getTime();
  const end = new Date(segments[segments.length - 1].end).getTime();
  const x = (at) => 10 + ((new Date(at).getTime() - start) / Math.max(1, end - start)) * 980;
  for (const segment of segments) {
    const rect = svg("rect", { x: x(segment.start), y: 10, width: Math.max(1, x(segment.end) - x(segment.start)), height: 40, class: `segment ${segment.kind}` });
    rect.append(svg("title", {}, `${t(segment.kind)}: ${time(segment.start)} – ${time(segment.end)}`));
    chart.append(rect);
  }
  // An hour tick every few hours, labelled, so that the axis reads as time.
  const hours = (end - start) / 3600000;
  const step = Math.max(1, Math.ceil(hours / 8)) * 3600000;
  for (let at = Math.ceil(start / 3600000) * 3600000; at <= end; at += step) {
    const position = x(new Date(at).toISOString());
    chart.append(svg("line", { x1: position, x2: position, y1: 52, y2: 58, stroke: "#666" }));
    chart.append(svg("text", { x: position, y: 75, "text-anchor": "middle", "font-size": 12 }, time(new Date(at).toISOString())));
  }
}

function drawHistory(history, item) {
  const chart = $("#history-chart");
  chart.replaceChildren();
  chart.setAttribute("aria-label", t("eta_history"));
  const last = item.shipment.stops.length - 1;
  const points = history
    .map((snapshot) => ({ at: new Date(snapshot.computed_at).getTime(), stop: snapshot.stops[last] }))
    .filter((point) => point.stop);
  if (!points.length) return;
  const window = item.shipment.stops[last].window;
  const values = points.flatMap((point) => [point.stop.eta_p10, point.stop.eta_p90].map((v) => new Date(v).getTime()));
  if (window) values.push(new Date(window.start).getTime(), new Date(window.end).getTime());
  const [low, high] = [Math.min(...values), Math.max(...values)];
  const [first, latest] = [points[0].at, Math.max(points[points.length - 1].at, points[0].at + 60000)];
  const x = (at) => 70 + ((at - first) / (latest - first)) * 910;
  const y = (value) => 240 - ((new Date(value).getTime() - low) / Math.max(1, high - low)) * 220;
  if (window) {
    chart.append(svg("rect", { x: 70, width: 910, y: y(window.end), height: Math.max(1, y(window.start) - y(window.end)), class: "window" }));
  }
  const band = points.map((p) => `${x(p.at)},${y(p.stop.eta_p90)}`).concat(
    points.slice().reverse().map((p) => `${x(p.at)},${y(p.stop.eta_p10)}`)).join(" ");
  chart.append(svg("polygon", { points: band, class: "band" }));
  chart.append(svg("polyline", { points: points.map((p) => `${x(p.at)},${y(p.stop.eta)}`).join(" "), class: "median" }));
  for (const value of [low, high]) {
    chart.append(svg("text", { x: 4, y: y(new Date(value).toISOString()) + 4, "font-size": 12 }, time(new Date(value).toISOString())));
  }
}

async function renderOperations() {
  const ops = await api("/v1/operations").catch(() => null);
  if (!ops) return;
  const now = Date.now();
  let rate = "–";
  if (state.lastOps) {
    const minutes = (now - state.lastOps.at) / 60000;
    if (minutes > 0) rate = `${Math.round((ops.pings_received - state.lastOps.pings) / minutes)} / min`;
  }
  state.lastOps = { at: now, pings: ops.pings_received };
  const accuracy = ops.accuracy
    .map((entry) => `${entry.horizon}: ${Math.round(entry.mean_absolute_error_minutes)} ${t("minutes")}`)
    .join(" · ");
  const feeds = ops.feeds
    .map((feed) => `${feed.feed}: ${feed.circuit_open ? t("circuit_open") : feed.data_age_seconds == null ? t("no_data") : `${Math.round(feed.data_age_seconds)} s`}`)
    .join(" · ");
  const entries = [
    [t("model"), ops.fallback ? t("rules_fallback") : ops.model_version],
    [t("active_shipments"), `${ops.shipments_in_transit} ${t("in_transit").toLowerCase()} · ${ops.shipments_planned} ${t("planned").toLowerCase()}`],
    [t("late_now"), String(state.rows.filter((row) => row.severity === "late" || row.severity === "at_risk").length)],
    [t("ingestion"), rate],
    [t("accuracy"), accuracy || t("none_yet")],
    [t("feeds"), feeds || t("no_feeds")],
    [t("degraded_now"), String(state.rows.filter((row) => row.degraded.length).length)],
  ];
  $("#ops").replaceChildren(...entries.flatMap(([name, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }));
}

function signOut(message) {
  sessionStorage.removeItem("etape-key");
  state.key = null;
  clearInterval(state.timer);
  clearTimeout(state.reconnect);
  if (state.stream) state.stream.abort();
  state.stream = null;
  state.live = null;
  $("#board").hidden = true;
  $("#sign-out").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
}

async function signIn(key) {
  state.key = key;
  sessionStorage.setItem("etape-key", key);
  $("#login").hidden = true;
  $("#board").hidden = false;
  $("#sign-out").hidden = false;
  await refresh();
  clearInterval(state.timer);
  // Polled until the stream is up.
  state.timer = setInterval(refresh, REFRESH_MS);
  if (state.stream) state.stream.abort();
  if (!state.pollOnly) listen();
}

async function start() {
  applyLanguage();
  $("#language").addEventListener("click", () => {
    state.language = state.language === "fr" ? "en" : "fr";
    localStorage.setItem("etape-language", state.language);
    applyLanguage();
    renderFleet();
    renderOperations();
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("#key").value.trim());
  });
  $("#status-filter").addEventListener("change", renderFleet);
  $("#all-columns").addEventListener("click", () => {
    const shown = $("#fleet-table").classList.toggle("all-columns");
    $("#all-columns").setAttribute("aria-pressed", String(shown));
  });
  $("#search").addEventListener("input", renderFleet);
  $("#close-detail").addEventListener("click", () => {
    state.selected = null;
    $("#detail").hidden = true;
    renderFleet();
    renderMap();
  });
  document.querySelectorAll("[data-sort]").forEach((button) => button.addEventListener("click", () => {
    const field = button.dataset.sort;
    state.sort = { field, descending: state.sort.field === field ? !state.sort.descending : false };
    renderFleet();
  }));
  state.outline = await fetch("/assets/outline.json").then((r) => r.json()).catch(() => null);
  state.settings = await fetch("/dashboard/settings").then((r) => r.json()).catch(() => ({ tile_url: "" }));
  const demo = await fetch("/dashboard/demo-login").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (demo) {
    $("#demo-login").hidden = false;
    $("#demo-login").addEventListener("click", () => signIn(demo.key));
    // `/?demo` signs straight in: a wall screen showing the demo fleet needs no click.
    if (!state.key && new URLSearchParams(location.search).has("demo")) state.key = demo.key;
  }
  if (state.key) signIn(state.key);
  else signOut();
}

start();
