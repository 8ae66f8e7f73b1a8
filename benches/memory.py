"""Memory at scale: the release build holding SHIPMENTS live shipments, each with a day of
pings at one a minute (10,000 and 14.4 million by default), posted the way telematics do:
every minute, one ping per truck. Reports the service's resident memory (now and peak) after
the pings are in and every shipment's estimate has been recomputed, and writes
target/load/memory.json.

    python3 benches/memory.py                 # after: cargo build --release
    SHIPMENTS=1000 MINUTES=60 python3 benches/memory.py
"""
import concurrent.futures
import datetime
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

SHIPMENTS = int(os.environ.get("SHIPMENTS", "10000"))
MINUTES = int(os.environ.get("MINUTES", "1440"))
BIN = os.environ.get("BIN", "target/release/etape")
OUT = os.environ.get("OUT", "target/load")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


class Client:
    def __init__(self, port, key):
        self.port, self.key = port, key
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None, content_type="application/json"):
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": content_type}
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The service closes idle keep-alive connections: open a new one.
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None


def stamp(instant):
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def route(i):
    """Lille area to Marseille area, each truck a little apart."""
    return (50.0 + (i % 100) * 0.01, 2.5 + (i // 100) * 0.01), (43.3 + (i % 50) * 0.01, 5.0 + (i % 70) * 0.01)


def main():
    work = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, ETAPE__MODEL__DIR="data/models/bundled", RUST_LOG="warn",
               ETAPE__API__RATE_LIMIT_PER_SECOND="0")
    service = subprocess.Popen(
        [BIN, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", f"{work}/data", "--no-demo"],
        stdout=open(f"{work}/service.log", "w"), stderr=subprocess.STDOUT, env=env)
    try:
        keys_file = f"{work}/data/demo-keys.env"
        for _ in range(300):
            if os.path.exists(keys_file) and os.path.getsize(keys_file) > 0:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        keys = dict(line.strip().split("=", 1) for line in open(keys_file) if "=" in line)
        key = keys["ETAPE_CARRIER_KEY"]
        start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) \
            - datetime.timedelta(minutes=MINUTES)
        began = time.time()

        def create(chunk):
            client = Client(port, key)
            for i in chunk:
                (olat, olon), (dlat, dlon) = route(i)
                client.call("POST", "/v1/shipments", json.dumps({
                    "reference": f"MEM-{i}", "vehicle_id": f"TRUCK-{i:05}",
                    "vehicle_class": "articulated", "origin": {"lat": olat, "lon": olon},
                    "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84, "planned_dwell_minutes": 30},
                              {"id": "end", "lat": dlat, "lon": dlon}],
                    "planned_departure": stamp(start)}))

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(create, [range(n, SHIPMENTS, 4) for n in range(4)]))
        created = time.time() - began
        print(f"{SHIPMENTS} shipments created in {created:.0f} s", flush=True)

        client = Client(port, key)
        began = time.time()
        for minute in range(MINUTES):
            at = stamp(start + datetime.timedelta(minutes=minute))
            share = minute / max(MINUTES, 1) * 0.6
            lines = []
            for i in range(SHIPMENTS):
                (olat, olon), _ = route(i)
                lines.append(
                    f'{{"vehicle_id":"TRUCK-{i:05}","timestamp":"{at}",'
                    f'"lat":{olat + (45.76 - olat) * share:.5f},"lon":{olon + (4.84 - olon) * share:.5f},'
                    f'"speed_kmh":78}}')
            answer = client.call("POST", "/v1/positions", "\n".join(lines), "application/x-ndjson")
            if answer["accepted"] != SHIPMENTS:
                raise RuntimeError(f"minute {minute}: {answer}")
            if minute % 120 == 0:
                rss, peak = memory(service.pid)
                print(f"minute {minute}: {rss:.0f} MiB resident, peak {peak:.0f}", flush=True)
        ingested = time.time() - began
        pings = SHIPMENTS * MINUTES
        print(f"{pings:,} pings in {ingested:.0f} s ({pings / ingested:,.0f} a second)", flush=True)
        # Let the tracker recompute every shipment from its day of pings.
        time.sleep(float(os.environ.get("SETTLE", "60")))
        if service.poll() is not None:
            raise RuntimeError(f"the service stopped: {open(f'{work}/service.log').read()[-2000:]}")
        rss, peak = memory(service.pid)
        page = client.call("GET", "/v1/operations")
        result = {"shipments": SHIPMENTS, "pings": pings, "rss_mib": round(rss), "peak_rss_mib": round(peak),
                  "create_seconds": round(created, 1), "ingest_seconds": round(ingested, 1),
                  "operations": page, "cores": os.cpu_count()}
        os.makedirs(OUT, exist_ok=True)
        with open(f"{OUT}/memory.json", "w") as out:
            json.dump(result, out, indent=2)
        print(f"resident {rss:.0f} MiB, peak {peak:.0f} MiB for {SHIPMENTS} shipments and {pings:,} pings")
        return 0 if peak < 2048 else 1
    finally:
        service.kill()


if __name__ == "__main__":
    sys.exit(main())
