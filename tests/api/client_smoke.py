"""A TMS's first hour with etape, through the client openapi-python-client generates from
/openapi.json: register a shipment, post its truck's pings, read the estimate, and receive a
webhook delivery verified by the official Standard Webhooks library and read by the model the
document's `webhooks` section gives. Every call goes through the generated typed functions
and models, so that a schema that lies to a client fails here.

    python client_smoke.py BASE_URL API_KEY NOW

with the generated package `etape_client` on PYTHONPATH (tests/api/contract.rs runs it against
the real server). NOW is the server's fixed clock (RFC 3339). Prints `ok` at the end.
"""

import datetime
import http.server
import json
import queue
import sys
import threading

from standardwebhooks.webhooks import Webhook

from etape_client import AuthenticatedClient
from etape_client.api.positions import post_positions
from etape_client.api.shipments import create_shipment, get_eta, get_eta_history, post_event
from etape_client.api.webhooks import create_webhook
from etape_client.models import (
    ArrivedWebhook,
    EventKindDto,
    EventRequest,
    LatLon,
    LiveEstimate,
    PingBody,
    PositionsResponse,
    ShipmentDto,
    ShipmentRequest,
    ShipmentStopRequest,
    VehicleClassDto,
    WebhookDto,
    WebhookEventSource,
    WebhookRequest,
)


def expect(value, kind, what):
    """The generated functions answer the error model, or None, for what the document says
    is not a success: name the call and the answer."""
    if not isinstance(value, kind):
        raise SystemExit(f"{what}: expected {kind.__name__}, got {value!r}")
    return value


def receiver():
    """A webhook receiver on 127.0.0.1: each delivery's headers and body, on a queue."""
    deliveries = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            deliveries.put((headers, body.decode()))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, deliveries


def main():
    base_url, key, now = sys.argv[1], sys.argv[2], sys.argv[3]
    now = datetime.datetime.fromisoformat(now.replace("Z", "+00:00"))
    client = AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)
    server, deliveries = receiver()

    hook = expect(
        create_webhook.sync(
            client=client,
            body=WebhookRequest(
                url=f"http://127.0.0.1:{server.server_address[1]}/etape",
                events=["arrived"],
            ),
        ),
        WebhookDto,
        "create_webhook",
    )
    assert isinstance(hook.secret, str) and hook.secret.startswith("whsec_"), hook

    shipment = expect(
        create_shipment.sync(
            client=client,
            body=ShipmentRequest(
                reference="CLIENT-1",
                vehicle_id="CLIENT-TRUCK",
                vehicle_class=VehicleClassDto.ARTICULATED,
                origin=LatLon(lat=48.85, lon=2.35),
                stops=[ShipmentStopRequest(id="lyon", lat=45.76, lon=4.84)],
                planned_departure=now,
            ),
        ),
        ShipmentDto,
        "create_shipment",
    )

    # Minutes before NOW, where the server's clock stands still, at about 70 km/h southwards.
    pings = [
        PingBody(
            vehicle_id="CLIENT-TRUCK",
            timestamp=now - datetime.timedelta(minutes=minutes_ago),
            lat=48.85 - 0.01 * (5 - minutes_ago),
            lon=2.35 + 0.005 * (5 - minutes_ago),
            speed_kmh=70.0,
        )
        for minutes_ago in (4, 3, 2)
    ]
    accepted = expect(post_positions.sync(client=client, body=pings), PositionsResponse, "post_positions")
    assert accepted.accepted == len(pings), accepted

    estimate = expect(get_eta.sync(shipment.id, client=client), LiveEstimate, "get_eta")
    assert estimate.shipment_id == shipment.id, estimate
    assert [stop.id for stop in estimate.stops] == ["lyon"], estimate
    assert estimate.stops[0].eta > now, estimate
    history = get_eta_history.sync(shipment.id, client=client)
    assert history is not None and history.shipment_id == shipment.id, history
    assert all(isinstance(snapshot, LiveEstimate) for snapshot in history.snapshots), history

    arrived = post_event.sync(
        shipment.id,
        client=client,
        body=EventRequest(kind=EventKindDto.ARRIVED, stop_id="lyon"),
    )
    expect(arrived, ShipmentDto, "post_event")
    try:
        headers, body = deliveries.get(timeout=20)
    except queue.Empty:
        raise SystemExit("no webhook delivery within 20 s")
    # Raises unless a signature of the webhook's secret covers this id, timestamp and body.
    Webhook(hook.secret).verify(body, headers)
    # The payload as the document's `webhooks` section describes it, read by its model.
    payload = ArrivedWebhook.from_dict(json.loads(body))
    assert payload.shipment.id == shipment.id, payload
    assert payload.data.stop_id == "lyon" and payload.data.stop_index == 0, payload
    assert payload.data.source == WebhookEventSource.MANUAL, payload
    server.shutdown()
    print("ok")


if __name__ == "__main__":
    main()
