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
    skip_to_fleet: "Skip to the fleet", alerts: "Needs a decision", show_acknowledged: "Show acknowledged",
    acknowledge: "Acknowledge", acknowledged: "Acknowledged", open: "Open", no_alerts: "Nothing needs a decision.",
    warning: "Warning", alert: "Alert", critical: "Critical", trucks: "trucks", cluster_legend: "Several trucks",
    alert_late: "late", alert_at_risk: "at risk of missing its window", alert_slipped: "ETA {n} min later than first estimated",
    alert_silent: "no signal for {age}", alerts_count: "{n} to decide", alerts_count_acked: "{n} to decide, {m} acknowledged",
    zoom_in_on: "zoom in on", map_hint: "Map of the fleet: arrow keys pan, + and − zoom",
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
    skip_to_fleet: "Aller à la flotte", alerts: "À décider", show_acknowledged: "Voir les alertes vues",
    acknowledge: "Vu", acknowledged: "Vue", open: "Ouvrir", no_alerts: "Rien à décider.",
    warning: "Avertissement", alert: "Alerte", critical: "Critique", trucks: "camions", cluster_legend: "Plusieurs camions",
    alert_late: "en retard", alert_at_risk: "risque de manquer son créneau", alert_slipped: "arrivée prévue {n} min plus tard qu'estimé d'abord",
    alert_silent: "sans signal depuis {age}", alerts_count: "{n} à décider", alerts_count_acked: "{n} à décider, {m} vues",
    zoom_in_on: "zoomer sur", map_hint: "Carte de la flotte : les flèches la déplacent, + et − zooment",
  },
};
const SEVERITY_ORDER = { late: 0, at_risk: 1, on_time: 2 };
const SEVERITY_MARK = { late: "✖", at_risk: "▲", on_time: "●" };
// Polling the list is the fallback while the event stream is down; with the stream up, the
// list is read again now and then only, for new shipments and what another replica computed.
const REFRESH_MS = 2000;
const FULL_REFRESH_MS = 30000;
const RECONNECT_MS = 5000;
// A burst of stream events is drawn at most this often, so that an event that comes alone is
// on screen at once and 1,000 that come together cost a few renders, not 1,000.
const RENDER_GAP_MS = 100;
// What each alert weighs: the one place where a condition becomes a level.
const ALERT_LEVELS = { late: "critical", silent: "alert", at_risk: "alert", slipped: "warning" };
const LEVEL_ORDER = { critical: 0, alert: 1, warning: 2 };
const LEVEL_MARK = { critical: "✖", alert: "▲", warning: "◆" };
const SHOWN_ALERTS = 100;

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
  byId: new Map(),
  rowCache: new Map(),
  map: null,
  drawn: new Map(),
  firstEta: new Map(),
  alertSince: new Map(),
  acks: null,
  showAcknowledged: false,
  loaded: false,
  lastRender: 0,
  eventAt: null,
  eventIds: [],
  // `/?poll` reads the list every 2 s instead of the stream: for a proxy that buffers streamed
  // answers, and for headless renderers whose virtual time stands still while a request is open.
  pollOnly: new URLSearchParams(location.search).has("poll"),
};

const $ = (selector) => document.querySelector(selector);
// What the browser tests read: render times after stream events, the map, what it drew.
window.etape = {
  renders: [],
  renderedIn: {},
  map: null,
  onMap: (vehicle) => state.drawn.get(vehicle) || null,
};
const t = (key) => (LABELS[state.language] || LABELS.en)[key] || key;

/// The element matching `selector` that holds the keyboard's focus or holds what does: a
/// redraw gives the focus back to its counterpart.
function focusedIn(selector) {
  const active = document.activeElement;
  return active && active.closest ? active.closest(selector) : null;
}

/// A description list's terms and descriptions, from [term, description] pairs.
function definitions(entries) {
  return entries.flatMap(([term, description]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = description;
    return [dt, dd];
  });
}

function applyLanguage() {
  document.documentElement.lang = state.language;
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  });
  $("#language").textContent = state.language === "fr" ? "English" : "Français";
  $("#language").lang = state.language === "fr" ? "en" : "fr";
  $("#map").setAttribute("aria-label", t("map_hint"));
}

// Formatters made once per language: `toLocaleString` builds one on every call, which a table
// of 1,000 rows redrawn on every update cannot afford.
const formatters = {};
function formatter(kind) {
  const locale = state.language === "fr" ? "fr-FR" : "en-GB";
  const key = `${locale}:${kind}`;
  if (!formatters[key]) {
    const options = kind === "clock" ? { hour: "2-digit", minute: "2-digit" }
      : kind === "seconds" ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
      : { weekday: "short", hour: "2-digit", minute: "2-digit" };
    formatters[key] = new Intl.DateTimeFormat(locale, options);
  }
  return formatters[key];
}

function time(text) {
  if (!text) return "–";
  return formatter("day").format(new Date(text));
}

/// A span (a band, a window), its end as a time of day alone when it falls on its start's day.
function band(start, end) {
  if (!start || !end) return "–";
  const sameDay = new Date(start).toDateString() === new Date(end).toDateString();
  if (!sameDay) return `${time(start)} – ${time(end)}`;
  return `${time(start)} – ${formatter("clock").format(new Date(end))}`;
}

function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name]));
}

function updatedNow() {
  $("#updated").textContent = `${t("updated")} ${formatter("seconds").format(new Date())}`;
}

function age(text) {
  if (!text) return "–";
  const minutes = Math.max(0, Math.round((Date.now() - new Date(text).getTime()) / 60000));
  if (minutes < 60) return `${minutes} ${t("minutes")}`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")}`;
}

/// A key the API refuses is no dispatcher's, or no longer valid: the page signs out.
function signedOutBy(response) {
  if (response.status !== 401 && response.status !== 403) return false;
  signOut(t("bad_key"));
  return true;
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  if (signedOutBy(response)) throw new Error("signed out");
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
    indexRows();
    // The first estimates of shipments no longer active are forgotten.
    for (const key of state.firstEta.keys()) {
      if (!state.byId.has(key.slice(0, key.lastIndexOf(":")))) state.firstEta.delete(key);
    }
    state.loaded = true;
    renderAll();
    await renderOperations();
    if (state.selected) await renderDetail(state.selected);
    updatedNow();
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
    if (signedOutBy(response)) return;
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
  if (name === "estimate" || name === "status") {
    // The render this event brings is timed from here (window.etape.renders).
    if (state.eventAt === null) state.eventAt = performance.now();
    if (state.eventIds.length < 5000) state.eventIds.push(payload.shipment_id);
  }
  if (name === "estimate") onEstimate(payload);
  else if (name === "status") onStatus(payload);
  else if (name === "lagged") refresh();
}

function indexRows() {
  state.byId = new Map(state.rows.map((item, index) => [item.id, index]));
}

function onEstimate({ shipment_id: id, estimate }) {
  const index = state.byId.get(id);
  // A shipment registered since the list was read.
  if (index === undefined) return reloadSoon();
  state.rows[index] = row(state.rows[index].shipment, estimate);
  renderSoon();
}

function onStatus({ shipment_id: id, status }) {
  const index = state.byId.has(id) ? state.byId.get(id) : -1;
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
    indexRows();
  }
  renderSoon();
}

/// Events come in bursts: the page is drawn at once after a quiet spell, and at most every
/// RENDER_GAP_MS during a burst.
function renderSoon() {
  if (state.rendering) return;
  const wait = Math.max(0, state.lastRender + RENDER_GAP_MS - performance.now());
  state.rendering = setTimeout(() => {
    state.rendering = null;
    renderAll();
    if (state.selected) renderDetail(state.selected, false);
    updatedNow();
    measureRender();
  }, wait);
}

/// How long the events drawn by this render waited, from their arrival to the page laid out
/// again: window.etape.renders (the last 200) and, per shipment, window.etape.renderedIn.
function measureRender() {
  if (state.eventAt === null) return;
  void document.body.offsetHeight;
  const milliseconds = performance.now() - state.eventAt;
  const figures = window.etape;
  figures.renders.push(milliseconds);
  if (figures.renders.length > 200) figures.renders.shift();
  for (const id of state.eventIds) figures.renderedIn[id] = milliseconds;
  state.eventAt = null;
  state.eventIds = [];
}

function renderAll() {
  renderFleet();
  renderMap();
  renderAlerts();
  state.lastRender = performance.now();
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
  const focused = focusedIn("tr[data-id]");
  const focusedId = focused && body.contains(focused) ? focused.dataset.id : null;
  if (rows.length === 0) {
    const empty = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 9;
    cell.textContent = t("empty");
    empty.append(cell);
    body.replaceChildren(empty);
    state.rowCache.clear();
    return markSort();
  }
  // A row is built again only when what it shows changed, and rows are moved only where the
  // order changed: laying out a table of 1,000 new rows costs a few hundred milliseconds, one
  // changed row a few.
  const trs = rows.map((item) => {
    const signature = rowSignature(item);
    const cached = state.rowCache.get(item.id);
    if (cached && cached.signature === signature) return cached.tr;
    const tr = buildRow(item);
    state.rowCache.set(item.id, { tr, signature });
    return tr;
  });
  const kept = new Set(trs);
  let cursor = body.firstChild;
  for (const tr of trs) {
    while (cursor && !kept.has(cursor)) {
      const stale = cursor;
      cursor = cursor.nextSibling;
      stale.remove();
    }
    if (cursor === tr) {
      cursor = cursor.nextSibling;
      continue;
    }
    body.insertBefore(tr, cursor);
  }
  while (cursor) {
    const stale = cursor;
    cursor = cursor.nextSibling;
    stale.remove();
  }
  for (const id of state.rowCache.keys()) if (!state.byId.has(id)) state.rowCache.delete(id);
  // The row that had the keyboard's focus keeps it, rebuilt or moved.
  if (focusedId && !(document.activeElement && document.activeElement.dataset && document.activeElement.dataset.id === focusedId)) {
    const again = body.querySelector(`tr[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
  markSort();
}

function rowSignature(item) {
  const window = item.window ? `${item.window.start}/${item.window.end}` : "";
  return [state.language, item.id === state.selected, item.reference, item.vehicle, item.next, item.eta,
    item.severity, item.probability, item.p10, item.p90, window, age(item.ping), item.degraded.join(",")].join("|");
}

function buildRow(item) {
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
  return tr;
}

function markSort() {
  // aria-sort belongs to the column header, not to the button inside it.
  document.querySelectorAll("[data-sort]").forEach((button) => {
    const header = button.closest("th");
    const sorted = button.dataset.sort === state.sort.field;
    if (sorted) header.setAttribute("aria-sort", state.sort.descending ? "descending" : "ascending");
    else header.removeAttribute("aria-sort");
  });
}

// The map: Leaflet, served by the service like every other asset. Web Mercator (Leaflet's
// default CRS, the projection of raster tiles), so that the tiles of `dashboard.tile_url` and
// the compiled-in outline line up, and the outline alone still draws a map offline.
const FRANCE = [[42.3, -4.8], [51.1, 8.3]];
// A truck's marker is one box, its mark and its label (app.css: .truck-marker is 120 x 22 px,
// its content clipped to it), anchored near its mark's centre. Markers whose anchors are at
// least a box apart cannot overlap, nor can their labels: the clustering below keeps every
// pair that far apart.
const MARKER = { width: 120, height: 22, anchorX: 11, anchorY: 11 };
const SPACING = { x: MARKER.width + 4, y: MARKER.height + 4 };

function initMap() {
  if (state.map || !window.L) return state.map;
  const tiles = state.settings && state.settings.tile_url;
  const map = L.map("map", { zoomSnap: 0.25, minZoom: 3, maxZoom: 16, keyboard: true });
  map.fitBounds(FRANCE);
  $("#map").classList.toggle("over-tiles", Boolean(tiles));
  if (tiles) {
    const host = (() => { try { return new URL(tiles.replace(/\{[a-z]\}/g, "a")).host; } catch (_) { return ""; } })();
    L.tileLayer(tiles, { maxZoom: 19, attribution: /openstreetmap/i.test(host) ? "© OpenStreetMap contributors" : host }).addTo(map);
  }
  if (state.outline) {
    for (const country of state.outline.countries) {
      const rings = country.rings.map((ring) => ring.map(([lon, lat]) => [lat, lon]));
      L.polygon(rings, { className: `country ${country.code}`, interactive: false, smoothFactor: 1 }).addTo(map);
    }
  }
  state.stopLayer = L.layerGroup().addTo(map);
  state.truckLayer = L.layerGroup().addTo(map);
  // Clusters depend on the zoom and on what is in view: drawn again when either changes.
  map.on("moveend", () => renderMap());
  state.map = map;
  window.etape.map = map;
  return map;
}

/// Trucks in one cell of a grid over the world (at this zoom, cells the size of a marker's
/// box) start as one cluster, anchored at its most urgent truck; a cell whose anchor would
/// come within a box of one already placed joins that one, the most urgent placed first.
function clusterTrucks(items, zoom) {
  const cells = new Map();
  for (const item of items) {
    const point = state.map.project([item.position.lat, item.position.lon], zoom);
    const key = `${Math.floor(point.x / SPACING.x)}:${Math.floor(point.y / SPACING.y)}`;
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key).push({ item, point });
  }
  const urgency = (member) => (member.item.severity ? SEVERITY_ORDER[member.item.severity] : 3);
  const candidates = [...cells.values()].map((members) => {
    members.sort((a, b) => urgency(a) - urgency(b) || a.item.vehicle.localeCompare(b.item.vehicle));
    return { members, anchor: members[0].point };
  });
  candidates.sort((a, b) => urgency(a.members[0]) - urgency(b.members[0]) || b.members.length - a.members.length);
  const placed = [];
  for (const candidate of candidates) {
    const near = placed.find((other) => Math.abs(other.anchor.x - candidate.anchor.x) < SPACING.x
      && Math.abs(other.anchor.y - candidate.anchor.y) < SPACING.y);
    if (near) near.members.push(...candidate.members);
    else placed.push(candidate);
  }
  return placed;
}

function truckIcon(cluster) {
  const [first] = cluster.members;
  const count = cluster.members.length;
  const severity = first.item.severity || "";
  const box = document.createElement("div");
  box.className = `truck-marker${count > 1 ? " cluster" : ""}${first.item.id === state.selected ? " selected" : ""}`;
  const mark = document.createElement("span");
  mark.className = `truck-mark ${severity || (count > 1 ? "cluster" : "")}`;
  mark.setAttribute("aria-hidden", "true");
  const label = document.createElement("span");
  label.className = "truck-label";
  if (count === 1) {
    // A shape beside the colour: ● on time, ▲ at risk, ✖ late.
    mark.textContent = SEVERITY_MARK[severity] || "●";
    label.textContent = first.item.vehicle;
  } else {
    mark.textContent = count > 99 ? "99+" : String(count);
    label.textContent = `${SEVERITY_MARK[severity] || ""} ${count} ${t("trucks")}`.trim();
  }
  const more = document.createElement("span");
  more.className = "visually-hidden";
  more.textContent = clusterDetail(cluster);
  box.append(mark, label, more);
  return L.divIcon({
    html: box, className: "truck-icon", iconSize: [MARKER.width, MARKER.height],
    iconAnchor: [MARKER.anchorX, MARKER.anchorY],
  });
}

/// What a screen reader hears after the label it sees: the reference and the risk of one
/// truck, or which trucks a cluster holds.
function clusterDetail(cluster) {
  const [first] = cluster.members;
  if (cluster.members.length === 1) {
    const risk = first.item.severity ? `, ${t(first.item.severity)}` : "";
    return `, ${first.item.reference}${risk}`;
  }
  const names = cluster.members.slice(0, 5).map((m) => m.item.vehicle).join(", ");
  return `, ${t("zoom_in_on")} ${names}${cluster.members.length > 5 ? "…" : ""}`;
}

/// A truck opens its detail; a cluster zooms in on its trucks, at least two levels, until they
/// part, or, at the deepest zoom, opens its most urgent one.
function openCluster(cluster) {
  const ids = cluster.members.map((member) => member.item.id);
  const map = state.map;
  if (ids.length === 1 || map.getZoom() >= map.getMaxZoom()) return select(ids[0]);
  const bounds = L.latLngBounds(cluster.members.map((m) => [m.item.position.lat, m.item.position.lon]));
  const zoom = Math.min(map.getMaxZoom(), Math.max(map.getZoom() + 2, map.getBoundsZoom(bounds.pad(0.2))));
  state.focusCluster = ids[0];
  map.setView(bounds.getCenter(), zoom, { animate: false });
}

function renderMap() {
  const map = initMap();
  if (!map) return;
  const shown = state.selected ? state.rows.filter((row) => row.id === state.selected) : state.rows;
  const zoom = map.getZoom();
  const view = map.getBounds().pad(0.2);
  const trucks = shown.filter((item) => item.position && view.contains([item.position.lat, item.position.lon]));
  // A marker redrawn under the keyboard's focus gives it back to the marker of the same truck.
  const focused = focusedIn(".truck-icon");
  const focusedTruck = (focused && focused.dataset.truck) || state.focusCluster || null;
  state.focusCluster = null;
  state.truckLayer.clearLayers();
  state.drawn = new Map();
  let refocus = null;
  for (const cluster of clusterTrucks(trucks, zoom)) {
    const [first] = cluster.members;
    const marker = L.marker(map.unproject(first.point, zoom), {
      // No pan on focus: the focus given back after a redraw would pan, redraw and focus again.
      icon: truckIcon(cluster), keyboard: true, autoPanOnFocus: false, riseOnHover: true,
      zIndexOffset: cluster.members.length > 1 ? 0 : 100,
    });
    marker.on("click", () => openCluster(cluster));
    marker.addTo(state.truckLayer);
    const element = marker.getElement();
    element.dataset.truck = first.item.id;
    element.dataset.count = String(cluster.members.length);
    element.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        event.stopPropagation();
        openCluster(cluster);
      }
    });
    for (const member of cluster.members) {
      state.drawn.set(member.item.vehicle, { lat: member.item.position.lat, lon: member.item.position.lon, count: cluster.members.length });
      if (focusedTruck && member.item.id === focusedTruck) refocus = element;
    }
  }
  if (refocus) refocus.focus({ preventScroll: true });
  document.body.dataset.trucksOnMap = String(trucks.length);
  state.stopLayer.clearLayers();
  if (!state.selected) return;
  for (const item of shown) {
    for (const stop of item.snapshot.stops.filter((stop) => stop.state === "pending")) {
      const plan = item.shipment.stops[stop.index];
      if (!plan) continue;
      L.circleMarker([plan.lat, plan.lon], { radius: 5, className: "stop", interactive: false }).addTo(state.stopLayer);
    }
  }
  if (state.trace && state.trace.length > 1) {
    L.polyline(state.trace.map((ping) => [ping.lat, ping.lon]), { className: "trace", interactive: false }).addTo(state.stopLayer);
  }
}

// Alerts: what needs a decision, from the rows the page already has (no request of its own).
// Acknowledgements are kept in this browser, per key (the dashboard has no user accounts), by
// the key's public id, never the key.
function acksKey() {
  const match = /^etp_([^_]+)_/.exec(state.key || "");
  if (match) return `etape-acks:${match[1]}`;
  let hash = 2166136261;
  for (const char of state.key || "") hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
  return `etape-acks:${hash.toString(16)}`;
}

function loadAcks() {
  try {
    state.acks = new Set(JSON.parse(localStorage.getItem(acksKey()) || "[]"));
  } catch (_) {
    state.acks = new Set();
  }
}

function saveAcks() {
  localStorage.setItem(acksKey(), JSON.stringify([...state.acks]));
}

/// Every alert of the fleet, newest first: a shipment's condition, its level, since when.
function computeAlerts() {
  const settings = state.settings || {};
  const slipLimit = settings.slip_alert_minutes ?? 30;
  const silentLimit = settings.silent_alert_minutes ?? 30;
  const now = Date.now();
  const alerts = [];
  const raised = new Set();
  const raise = (item, kind, key, since, text) => {
    raised.add(key);
    if (!state.alertSince.has(key)) state.alertSince.set(key, since ?? now);
    alerts.push({ item, kind, key, level: ALERT_LEVELS[kind], since: state.alertSince.get(key), text });
  };
  for (const item of state.rows) {
    if (item.severity === "late") raise(item, "late", `${item.id}:late`, null, t("alert_late"));
    else if (item.severity === "at_risk") raise(item, "at_risk", `${item.id}:at_risk`, null, t("alert_at_risk"));
    let slip = 0;
    for (const stop of item.snapshot.stops) {
      if (stop.state !== "pending") continue;
      const stopKey = `${item.id}:${stop.index}`;
      const eta = new Date(stop.eta).getTime();
      if (!state.firstEta.has(stopKey)) state.firstEta.set(stopKey, eta);
      slip = Math.max(slip, (eta - state.firstEta.get(stopKey)) / 60000);
    }
    if (slip > slipLimit) {
      raise(item, "slipped", `${item.id}:slipped`, null, fill(t("alert_slipped"), { n: Math.round(slip) }));
    }
    if (item.status === "in_transit" && item.ping) {
      const last = new Date(item.ping).getTime();
      // Silent since the moment the last ping became too old; a new ping makes a new alert.
      if (now - last > silentLimit * 60000) {
        raise(item, "silent", `${item.id}:silent:${item.ping}`, last + silentLimit * 60000, fill(t("alert_silent"), { age: age(item.ping) }));
      }
    }
  }
  for (const key of state.alertSince.keys()) if (!raised.has(key)) state.alertSince.delete(key);
  // An acknowledgement lasts while its condition does: once over, the next one is new.
  if (state.loaded && state.acks) {
    const before = state.acks.size;
    for (const key of state.acks) if (!raised.has(key)) state.acks.delete(key);
    if (state.acks.size !== before) saveAcks();
  }
  // Alerts first seen together (all of them, at sign-in) go by level, then by reference.
  alerts.sort((a, b) => b.since - a.since || LEVEL_ORDER[a.level] - LEVEL_ORDER[b.level]
    || a.item.reference.localeCompare(b.item.reference));
  return alerts;
}

function renderAlerts() {
  if (!state.acks) loadAcks();
  const alerts = computeAlerts();
  const open = alerts.filter((alert) => !state.acks.has(alert.key));
  const acknowledged = alerts.length - open.length;
  const list = $("#alert-list");
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement : null;
  const focusedKey = focused && focused.closest("li") ? focused.closest("li").dataset.key : null;
  const focusedAction = focused ? focused.dataset.action : null;
  const shown = (state.showAcknowledged ? alerts : open).slice(0, SHOWN_ALERTS);
  const count = acknowledged
    ? fill(t("alerts_count_acked"), { n: open.length, m: acknowledged })
    : fill(t("alerts_count"), { n: open.length });
  if ($("#alert-count").textContent !== count) $("#alert-count").textContent = count;
  // Most updates change no alert: the list is left as it is, and the focus where it is.
  const signature = [state.language, ...shown.map((alert) => `${alert.key}|${state.acks.has(alert.key)}|${alert.text}|${alert.since}`)].join(";");
  if (signature === state.alertSignature) return;
  state.alertSignature = signature;
  list.replaceChildren(...shown.map((alert) => {
    const li = document.createElement("li");
    const acked = state.acks.has(alert.key);
    li.className = `${alert.level}${acked ? " acknowledged" : ""}`;
    li.dataset.key = alert.key;
    li.dataset.level = alert.level;
    const level = document.createElement("span");
    level.className = `level ${alert.level}`;
    level.textContent = `${LEVEL_MARK[alert.level]} ${t(alert.level)}`;
    const text = document.createElement("span");
    text.className = "alert-text";
    text.textContent = `${alert.item.reference} · ${alert.item.vehicle}: ${alert.text} (${time(new Date(alert.since).toISOString())})`;
    text.title = text.textContent;
    const actions = document.createElement("span");
    actions.className = "alert-actions";
    const openButton = alertButton("open", t("open"), `${t("open")} ${alert.item.reference}`,
      () => select(alert.item.id));
    const ackText = acked ? t("acknowledged") : t("acknowledge");
    const ack = alertButton("acknowledge", ackText, `${ackText}: ${alert.item.reference}, ${t(alert.level)}`,
      () => acknowledge(alert.key));
    ack.disabled = acked;
    actions.append(openButton, ack);
    li.append(level, text, actions);
    return li;
  }));
  if (!shown.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = t("no_alerts");
    list.append(li);
  }
  if (focusedKey) {
    const again = list.querySelector(`li[data-key="${CSS.escape(focusedKey)}"] button[data-action="${focusedAction}"]:not([disabled])`)
      || list.querySelector("button:not([disabled])");
    (again || $("#alerts-title")).focus({ preventScroll: true });
  }
}

/// One of an alert's buttons: `action` is what the focus finds it by after a redraw.
function alertButton(action, text, label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.action = action;
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", onClick);
  return button;
}

/// Acknowledged by this browser's key; the keyboard moves on to the next alert's button.
function acknowledge(key) {
  state.acks.add(key);
  saveAcks();
  const item = $("#alert-list").querySelector(`li[data-key="${CSS.escape(key)}"]`);
  const next = item && (item.nextElementSibling || item.previousElementSibling);
  renderAlerts();
  const target = next && $("#alert-list").querySelector(`li[data-key="${CSS.escape(next.dataset.key || "")}"] button[data-action="acknowledge"]`);
  if (target) target.focus();
  else $("#alerts-title").focus();
}

/// Opens a shipment's detail and moves the keyboard's focus into it; closing it gives the
/// focus back to the shipment's row.
async function select(id) {
  state.selected = id;
  state.trace = null;
  state.history = null;
  $("#detail").hidden = false;
  renderFleet();
  const item = state.rows[state.byId.get(id)];
  $("#detail-title").textContent = item ? `${item.reference} · ${item.vehicle}` : "";
  $("#detail-title").focus();
  await renderDetail(id);
  if (state.map && item && item.position && !state.map.getBounds().contains([item.position.lat, item.position.lon])) {
    state.map.panTo([item.position.lat, item.position.lon], { animate: false });
  }
  renderMap();
}

function closeDetail() {
  const id = state.selected;
  state.selected = null;
  $("#detail").hidden = true;
  renderFleet();
  renderMap();
  const row = id && $("#fleet-table tbody").querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  (row || $("#fleet-title")).focus();
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
  $("#breakdown").replaceChildren(...definitions(Object.entries(totals)
    .map(([kind, minutes]) => [t(kind), `${Math.round(minutes)} ${t("minutes")}`])));
  $("#factors").replaceChildren(...item.snapshot.factors.map((factor) => {
    const li = document.createElement("li");
    const sign = factor.minutes >= 0 ? "+" : "−";
    li.textContent = `${factor.feature}${factor.value != null ? ` = ${Math.round(factor.value * 100) / 100}` : ""}: ${sign}${Math.abs(Math.round(factor.minutes))} ${t("minutes")}`;
    return li;
  }));
}

function svg(tag, attributes, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
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
  $("#ops").replaceChildren(...definitions(entries));
}

function signOut(message) {
  sessionStorage.removeItem("etape-key");
  state.key = null;
  state.acks = null;
  state.loaded = false;
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
    renderAll();
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
  // The skip link moves the focus itself: following a fragment alone leaves it where it was
  // in some browsers.
  $(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    ($("#board").hidden ? $("#key") : $("#fleet-title")).focus();
  });
  $("#close-detail").addEventListener("click", closeDetail);
  $("#detail").addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); closeDetail(); }
  });
  // One listener for every row, however often the rows are drawn again.
  const rows = $("#fleet-table tbody");
  const rowOf = (event) => event.target.closest && event.target.closest("tr[data-id]");
  rows.addEventListener("click", (event) => {
    const tr = rowOf(event);
    if (tr) select(tr.dataset.id);
  });
  rows.addEventListener("keydown", (event) => {
    const tr = rowOf(event);
    if (!tr || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    select(tr.dataset.id);
  });
  $("#show-acknowledged").addEventListener("click", () => {
    state.showAcknowledged = !state.showAcknowledged;
    $("#show-acknowledged").setAttribute("aria-pressed", String(state.showAcknowledged));
    renderAlerts();
  });
  document.querySelectorAll("[data-sort]").forEach((button) => button.addEventListener("click", () => {
    const field = button.dataset.sort;
    state.sort = { field, descending: state.sort.field === field ? !state.sort.descending : false };
    renderFleet();
  }));
  state.outline = await fetch("/assets/outline.json").then((r) => r.json()).catch(() => null);
  state.settings = await fetch("/dashboard/settings").then((r) => r.json()).catch(() => ({ tile_url: "" }));
  if (!window.L) $("#map").textContent = "Leaflet did not load.";
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
