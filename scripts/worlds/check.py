#!/usr/bin/env python3
"""Check trip histories against every rule of docs/history.md, in plain Python.

    python3 check.py /tmp/worlds/independent/*          # each a carrier directory
    python3 check.py --summary /tmp/worlds/public/*     # plus per-carrier statistics

A PATH is a directory holding trips.csv or trips.csv.gz (and optionally pings.csv[.gz]) or a
trips file itself. Parquet is not read here (the worlds are written as CSV). Every problem is
counted by rule; the first ones are printed with table, row (records from 1), column and
reason. Exit status 1 when any history has a problem. Rows within 2% of the speed, duration
or distance bounds are counted as "near a bound" (the service's own great-circle formula may
differ from this one in the last digits).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import os
import re
import statistics
import sys
import unicodedata
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

REQUIRED = ["trip_id", "vehicle_class", "origin_lat", "origin_lon", "destination_lat",
            "destination_lon", "departure_time", "arrival_time"]
OPTIONAL = ["distance_km", "stops", "dwell_minutes", "load_tonnes"]
PING_REQUIRED = ["trip_id", "timestamp", "lat", "lon"]
CLASSES = {"van", "rigid", "articulated"}
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
LOW = datetime(1990, 1, 1, tzinfo=timezone.utc)
HIGH = datetime(2100, 1, 1, tzinfo=timezone.utc)
BIDI = {chr(c) for c in list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A))} | {
    "\u200e", "\u200f", "\u061c"}


def haversine_km(lat1, lon1, lat2, lon2):
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def open_table(directory, stem):
    for name in (stem + ".csv", stem + ".csv.gz"):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            return p
    if os.path.exists(os.path.join(directory, stem + ".parquet")):
        raise SystemExit(f"{directory}: Parquet is not read by this checker")
    return None


def reader(path):
    f = gzip.open(path, "rt", encoding="utf-8", newline="") if path.endswith(".gz") else open(
        path, encoding="utf-8", newline="")
    return f, csv.DictReader(f)


def parse_ts(text):
    if not TS_RE.match(text):
        return None
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return None


def parse_num(text):
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class Report:
    def __init__(self, name):
        self.name = name
        self.problems = Counter()
        self.examples = []
        self.near = Counter()

    def add(self, table, row, column, reason):
        self.problems[reason] += 1
        if len(self.examples) < 100:
            self.examples.append(f"{table} row {row} {column}: {reason}")


def check_trips(path, rep, summary):
    f, rd = reader(path)
    with f:
        cols = rd.fieldnames or []
        for c in REQUIRED:
            if c not in cols:
                rep.add("trips", 0, c, "required column missing")
        if any(c not in cols for c in REQUIRED):
            return {}
        seen = set()
        spans = {}
        for i, r in enumerate(rd, start=1):
            ok = True
            for c in REQUIRED:
                if (r.get(c) or "") == "":
                    rep.add("trips", i, c, "required value empty")
                    ok = False
            if not ok:
                continue
            tid = r["trip_id"]
            if len(tid) > 128:
                rep.add("trips", i, "trip_id", "trip_id over 128 characters")
            if any(unicodedata.category(ch) == "Cc" for ch in tid):
                rep.add("trips", i, "trip_id", "control character in trip_id")
            if any(ch in BIDI for ch in tid):
                rep.add("trips", i, "trip_id", "bidi control in trip_id")
            if tid in seen:
                rep.add("trips", i, "trip_id", "trip_id seen twice")
            seen.add(tid)
            if r["vehicle_class"] not in CLASSES:
                rep.add("trips", i, "vehicle_class", "unknown vehicle class")
            coords = {}
            for c in ("origin_lat", "origin_lon", "destination_lat", "destination_lon"):
                v = parse_num(r[c])
                if v is None:
                    rep.add("trips", i, c, "not a number")
                    ok = False
                    continue
                lim = 90 if c.endswith("lat") else 180
                if not -lim <= v <= lim:
                    rep.add("trips", i, c, "coordinate out of range")
                    ok = False
                coords[c] = v
            times = {}
            for c in ("departure_time", "arrival_time"):
                t = parse_ts(r[c])
                if t is None:
                    rep.add("trips", i, c, "not an RFC 3339 timestamp with offset")
                    ok = False
                    continue
                if not LOW <= t <= HIGH:
                    rep.add("trips", i, c, "timestamp before 1990 or after 2100")
                times[c] = t
            opt = {}
            for c in OPTIONAL:
                text = r.get(c) or ""
                if text == "":
                    continue
                v = parse_num(text)
                if v is None:
                    rep.add("trips", i, c, "not a number")
                    continue
                if v < 0:
                    rep.add("trips", i, c, "negative quantity")
                opt[c] = v
            if "stops" in opt and (opt["stops"] != int(opt["stops"]) or opt["stops"] > 100):
                rep.add("trips", i, "stops", "stops not a whole number or above 100")
            if opt.get("load_tonnes", 0) > 44:
                rep.add("trips", i, "load_tonnes", "load_tonnes above 44")
            if not ok or len(times) < 2:
                continue
            dep, arr = times["departure_time"], times["arrival_time"]
            hours = (arr - dep).total_seconds() / 3600.0
            if hours <= 0:
                rep.add("trips", i, "arrival_time", "arrival not after departure")
                continue
            if hours > 14 * 24:
                rep.add("trips", i, "arrival_time", "arrival more than 14 days after departure")
            gc = haversine_km(coords["origin_lat"], coords["origin_lon"],
                              coords["destination_lat"], coords["destination_lon"])
            speed = gc / hours
            if speed > 110:
                rep.add("trips", i, "arrival_time", "implausible speed above 110 km/h")
            elif speed > 110 * 0.98:
                rep.near["speed"] += 1
            bound = 72 + gc / 5
            if hours > bound:
                rep.add("trips", i, "arrival_time", "longer than 72 h plus 1 h per 5 km")
            elif hours > bound * 0.98:
                rep.near["duration"] += 1
            if "distance_km" in opt:
                if opt["distance_km"] < 0.9 * gc:
                    rep.add("trips", i, "distance_km", "distance_km under 90% of great circle")
                elif opt["distance_km"] < 0.92 * gc:
                    rep.near["distance"] += 1
            if "dwell_minutes" in opt and opt["dwell_minutes"] >= hours * 60:
                rep.add("trips", i, "dwell_minutes", "dwell as long as the whole trip")
            spans[tid] = (dep, arr)
            summary.append((r["vehicle_class"], dep, hours, gc, speed,
                            {c: (r.get(c) or "") == "" for c in OPTIONAL}))
        return spans


def check_pings(path, rep, spans):
    f, rd = reader(path)
    with f:
        cols = rd.fieldnames or []
        missing = [c for c in PING_REQUIRED if c not in cols]
        for c in missing:
            rep.add("pings", 0, c, "required column missing")
        if missing:
            return
        seen = set()
        for i, r in enumerate(rd, start=1):
            if any((r.get(c) or "") == "" for c in PING_REQUIRED):
                rep.add("pings", i, "", "required value empty")
                continue
            t = parse_ts(r["timestamp"])
            if t is None:
                rep.add("pings", i, "timestamp", "not an RFC 3339 timestamp with offset")
                continue
            lat, lon = parse_num(r["lat"]), parse_num(r["lon"])
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                rep.add("pings", i, "lat/lon", "bad coordinate")
            sp = r.get("speed_kmh") or ""
            if sp:
                v = parse_num(sp)
                if v is None or v < 0 or v > 160:
                    rep.add("pings", i, "speed_kmh", "speed not a number, negative or above 160")
            span = spans.get(r["trip_id"])
            if span is None:
                rep.add("pings", i, "trip_id", "ping of an unknown trip")
            elif not span[0] <= t <= span[1]:
                rep.add("pings", i, "timestamp", "ping outside its trip")
            key = (r["trip_id"], t)
            if key in seen:
                rep.add("pings", i, "timestamp", "ping repeats another at the same time")
            seen.add(key)


def describe(name, rows, nbytes):
    n = len(rows)
    if not n:
        return f"{name}: no rows"
    classes = Counter(r[0] for r in rows)
    hours = sorted(r[2] for r in rows)
    gcs = sorted(r[3] for r in rows)
    speeds = sorted(r[4] for r in rows)
    first = min(r[1] for r in rows)
    last = max(r[1] for r in rows)
    miss = {c: sum(r[5][c] for r in rows) / n for c in OPTIONAL}
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return (f"{name}: {n} trips, {nbytes / 1e6:.2f} MB, {first:%Y-%m-%d}..{last:%Y-%m-%d}, "
            f"classes {dict(classes)}, crow km p50 {q(gcs, .5):.0f} p90 {q(gcs, .9):.0f}, "
            f"hours p50 {q(hours, .5):.1f} p90 {q(hours, .9):.1f} max {hours[-1]:.1f}, "
            f"crow km/h p50 {q(speeds, .5):.0f} max {speeds[-1]:.0f}, empty "
            + ", ".join(f"{c} {v:.0%}" for c, v in miss.items()))


def trend(all_rows):
    """Median crow-km/h by half-year: shows a secular slowdown or seasonality at a glance."""
    by = defaultdict(list)
    for r in all_rows:
        if r[3] >= 100:
            by[(r[1].year, 1 + (r[1].month - 1) // 6)].append(r[4])
    return "median crow km/h (trips >= 100 km) by half-year: " + ", ".join(
        f"{y}H{h} {statistics.median(v):.1f}" for (y, h), v in sorted(by.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    failed = 0
    total = 0
    everything = []
    for p in args.paths:
        if os.path.isdir(p):
            trips, pings = open_table(p, "trips"), open_table(p, "pings")
        else:
            trips, pings = p, None
        name = os.path.basename(os.path.normpath(p))
        if trips is None:
            print(f"{name}: REFUSED: no trips.csv or trips.csv.gz")
            failed += 1
            continue
        rep = Report(name)
        rows = []
        spans = check_trips(trips, rep, rows)
        if pings:
            check_pings(pings, rep, spans)
        total += len(rows)
        everything += rows
        n = sum(rep.problems.values())
        status = "accepted" if n == 0 else f"REFUSED ({n} problems)"
        near = ", ".join(f"{k} {v}" for k, v in rep.near.items()) or "none"
        print(f"{name}: {status}; {len(rows)} rows; near a bound: {near}")
        if n:
            failed += 1
            for reason, k in rep.problems.most_common():
                print(f"    {k} x {reason}")
            for e in rep.examples[:10]:
                print(f"    {e}")
        if args.summary:
            print("    " + describe(name, rows, os.path.getsize(trips)))
    if args.summary and everything:
        print(trend(everything))
    print(f"{len(args.paths) - failed} of {len(args.paths)} histories accepted, {total} rows")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
