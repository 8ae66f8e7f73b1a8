// The consignee's tracking page: rendered by the server, reloaded when its estimate moves.
// A link that expired or was revoked meanwhile reloads into the page saying so.
"use strict";

const REFRESH_MS = 60000;

async function check() {
  try {
    const response = await fetch(`${location.pathname.replace(/\/$/, "")}/eta.json`, { cache: "no-store" });
    if (response.status === 404 || response.status === 410) {
      location.reload();
      return;
    }
    if (!response.ok) return;
    const tracking = await response.json();
    const shown = document.body.dataset.updated || "";
    const latest = tracking.updated_at ? new Date(tracking.updated_at).getTime() : 0;
    if (latest !== (shown ? new Date(shown).getTime() : 0)) location.reload();
  } catch (_) {
    // Offline for a moment: the next check tries again.
  }
}

if (document.body.dataset.updated !== undefined) setInterval(check, REFRESH_MS);
