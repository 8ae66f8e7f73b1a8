// Redoc starts by itself only from a `<redoc spec-url>` element, with its telemetry on: this
// page may reach this service alone, so it starts Redoc here, with the telemetry off.
import { init } from "/docs/redoc.js";

init("/openapi.json", { disableTelemetry: true }, document.getElementById("reference"));
