"""Memory at scale: the release build holding SHIPMENTS live shipments, each with a day of
pings at one a minute (10,000 and 14.4 million by default), posted the way telematics do:
every minute, one ping per truck. Waits past the first ping compaction and congestion
learning (ten and eleven minutes after start), then restarts the service on the same data
directory. Reports the resident memory, now and at its peak, of the running service and of
the restarted one (which reloads the window's pings), samples it every second
(memory-timeline.csv), and writes target/load/memory.json. Fails when a peak reaches 2 GiB.

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
import threading
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
    env = dict(os.environ, ETAPE__MODEL__DIR="data/models/bundled",
               RUST_LOG=os.environ.get("RUST_LOG", "info"),
               ETAPE__API__RATE_LIMIT_PER_SECOND="0")

    def launch(log):
        return subprocess.Popen(
            [BIN, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", f"{work}/data", "--no-demo"],
            stdout=open(f"{work}/{log}", "w"), stderr=subprocess.STDOUT, env=env)

    def listening():
        for _ in range(6000):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the service did not listen")

    service = launch("service.log")
    service_started = time.time()
    try:
        keys_file = f"{work}/data/demo-keys.env"
        listening()
        while not (os.path.exists(keys_file) and os.path.getsize(keys_file) > 0):
            time.sleep(0.1)
        keys = dict(line.strip().split("=", 1) for line in open(keys_file) if "=" in line)
        key = keys["ETAPE_CARRIER_KEY"]
        start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) \
            - datetime.timedelta(minutes=MINUTES)
        began = started = time.time()
        timeline = []
        sampled = threading.Event()

        def sample():
            # Every second, so that a short-lived peak is placed in time and in the service's log;
            # across the restart too.
            while not sampled.is_set():
                try:
                    rss, _ = memory(service.pid)
                except (OSError, KeyError):
                    time.sleep(0.2)
                    continue
                timeline.append((round(time.time() - started, 1), round(rss)))
                time.sleep(1)

        threading.Thread(target=sample, daemon=True).start()

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
        # The tracker recomputes every shipment from its day of pings; the pings are compacted
        # ten minutes after start and congestion learnt from them a minute later.
        settle = float(os.environ.get("SETTLE", max(60.0, 12 * 60 - (time.time() - service_started))))
        time.sleep(settle)
        if service.poll() is not None:
            raise RuntimeError(f"the service stopped: {open(f'{work}/service.log').read()[-2000:]}")
        rss, peak = memory(service.pid)
        page = client.call("GET", "/v1/operations")

        # A restart reloads the window's pings from the segments.
        service.terminate()
        service.wait(timeout=120)
        began = time.time()
        service = launch("restart.log")
        listening()
        restart_seconds = time.time() - began
        time.sleep(float(os.environ.get("RESTART_SETTLE", "60")))
        restart_rss, restart_peak = memory(service.pid)
        restored = Client(port, key).call("GET", "/v1/operations")
        result = {"shipments": SHIPMENTS, "pings": pings, "rss_mib": round(rss), "peak_rss_mib": round(peak),
                  "restart_rss_mib": round(restart_rss), "restart_peak_rss_mib": round(restart_peak),
                  "restart_seconds": round(restart_seconds, 1),
                  "create_seconds": round(created, 1), "ingest_seconds": round(ingested, 1),
                  "settle_seconds": round(settle), "operations": page,
                  "operations_after_restart": restored, "cores": os.cpu_count()}
        os.makedirs(OUT, exist_ok=True)
        with open(f"{OUT}/memory-timeline.csv", "w") as out:
            out.write("seconds,rss_mib\n")
            out.writelines(f"{at},{mib}\n" for at, mib in timeline)
        highest = max(timeline, key=lambda point: point[1])
        print(f"highest sampled resident: {highest[1]} MiB {highest[0]} s after the first request "
              f"(timeline in {OUT}/memory-timeline.csv, log in {work}/service.log)")
        with open(f"{OUT}/memory.json", "w") as out:
            json.dump(result, out, indent=2)
        print(f"resident {rss:.0f} MiB, peak {peak:.0f} MiB for {SHIPMENTS} shipments and {pings:,} pings")
        print(f"restarted in {restart_seconds:.0f} s: resident {restart_rss:.0f} MiB, peak {restart_peak:.0f} MiB")
        return 0 if max(peak, restart_peak) < 2048 else 1
    finally:
        service.kill()
        if "sampled" in locals():
            sampled.set()


if __name__ == "__main__":
    sys.exit(main())
