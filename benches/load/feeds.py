"""Local stand-ins for the weather and traffic feeds during the load benchmark, in their real
formats (Open-Meteo's hourly forecast, TomTom's flow segment).

    python3 benches/load/feeds.py healthy PORT   # both answer at once
    python3 benches/load/feeds.py faulty PORT    # weather answers 503, traffic never answers
"""
import datetime
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, PORT = sys.argv[1], int(sys.argv[2])
START = datetime.datetime.now(datetime.timezone.utc).replace(
    hour=0, minute=0, second=0, microsecond=0) - datetime.timedelta(days=1)
HOURS = 192
WEATHER = json.dumps({"hourly": {
    "time": [(START + datetime.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(HOURS)],
    "temperature_2m": [2.0] * HOURS, "precipitation": [1.0] * HOURS, "snowfall": [0.5] * HOURS,
    "wind_speed_10m": [20.0] * HOURS, "visibility": [5000.0] * HOURS}}).encode()
TRAFFIC = json.dumps({"flowSegmentData": {
    "currentSpeed": 50, "freeFlowSpeed": 90, "currentTravelTime": 72, "freeFlowTravelTime": 40,
    "confidence": 0.9, "roadClosure": False}}).encode()
NEVER = threading.Event()


class Feed(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if MODE == "faulty":
            if self.path.startswith("/traffic"):
                NEVER.wait()
            self.answer(503, b'{"error": true, "reason": "overloaded"}')
        elif self.path.startswith("/weather"):
            self.answer(200, WEATHER)
        else:
            self.answer(200, TRAFFIC)

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Feed).serve_forever()
