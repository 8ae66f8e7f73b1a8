#!/usr/bin/env python3
"""An independent European road-freight world, as a shipper's TMS would record it.

Written from a plain-language description (issue 20, item 4), not from etape's simulator:
12 carriers of 20 to 150 vehicles based in France, Benelux, Germany, Spain, Italy and Poland,
lanes between real logistics hubs, trip time built from road distance (crow distance times a
terrain-dependent circuity), speeds by road type / vehicle / hour (rush hours around big
cities), heavy-tailed dwell at intermediate stops per site, drivers' own pause habits,
weekend effects by country, rare lognormal incident delays, carriers that differ in speed and
in how early they log departure, three years with a slow secular slowdown and a seasonal cycle.

Standard library only. Deterministic given --seed.

    python3 independent.py --seed 11 --trips 40000 --out /tmp/worlds/independent
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

# ---------------------------------------------------------------------------------------------
# Hubs: real cities / logistics sites. (name, country, lat, lon, terrain, metro size 0-3)
# terrain: plain, hilly, coast, mountain. metro size drives rush-hour congestion.
# ---------------------------------------------------------------------------------------------
HUBS = [
    # France
    ("Paris-Rungis", "FR", 48.7530, 2.3510, "plain", 3),
    ("Paris-Gennevilliers", "FR", 48.9330, 2.2960, "plain", 3),
    ("Lyon", "FR", 45.7640, 4.8357, "hilly", 2),
    ("Fos-sur-Mer", "FR", 43.4380, 4.9450, "coast", 1),
    ("Marseille", "FR", 43.2965, 5.3698, "coast", 2),
    ("Lille", "FR", 50.6292, 3.0573, "plain", 2),
    ("Toulouse", "FR", 43.6047, 1.4442, "plain", 2),
    ("Bordeaux", "FR", 44.8378, -0.5792, "plain", 2),
    ("Nantes", "FR", 47.2184, -1.5536, "plain", 1),
    ("Strasbourg", "FR", 48.5734, 7.7521, "plain", 1),
    ("Le Havre", "FR", 49.4944, 0.1079, "coast", 1),
    ("Rouen", "FR", 49.4432, 1.0999, "hilly", 1),
    ("Orleans", "FR", 47.9030, 1.9093, "plain", 1),
    ("Dijon", "FR", 47.3220, 5.0415, "hilly", 1),
    ("Grenoble", "FR", 45.1885, 5.7245, "mountain", 1),
    ("Nice", "FR", 43.7102, 7.2620, "coast", 1),
    ("Montpellier", "FR", 43.6108, 3.8767, "coast", 1),
    ("Rennes", "FR", 48.1173, -1.6778, "plain", 1),
    ("Metz", "FR", 49.1193, 6.1757, "plain", 1),
    ("Clermont-Ferrand", "FR", 45.7772, 3.0870, "mountain", 1),
    ("Perpignan", "FR", 42.6887, 2.8948, "coast", 0),
    ("Reims", "FR", 49.2583, 4.0317, "plain", 1),
    # Benelux
    ("Rotterdam-Maasvlakte", "NL", 51.9500, 4.0300, "coast", 2),
    ("Amsterdam", "NL", 52.3676, 4.9041, "plain", 2),
    ("Venlo", "NL", 51.3704, 6.1724, "plain", 0),
    ("Eindhoven", "NL", 51.4416, 5.4697, "plain", 1),
    ("Tilburg", "NL", 51.5555, 5.0913, "plain", 1),
    ("Antwerp", "BE", 51.2194, 4.4025, "coast", 2),
    ("Brussels", "BE", 50.8503, 4.3517, "plain", 2),
    ("Liege", "BE", 50.6326, 5.5797, "hilly", 1),
    ("Ghent", "BE", 51.0543, 3.7174, "plain", 1),
    ("Zeebrugge", "BE", 51.3300, 3.2000, "coast", 0),
    ("Bettembourg", "LU", 49.5180, 6.1020, "hilly", 0),
    # Germany
    ("Hamburg", "DE", 53.5511, 9.9937, "coast", 3),
    ("Bremen", "DE", 53.0793, 8.8017, "plain", 1),
    ("Duisburg", "DE", 51.4344, 6.7623, "plain", 2),
    ("Cologne", "DE", 50.9375, 6.9603, "plain", 2),
    ("Frankfurt", "DE", 50.1109, 8.6821, "hilly", 2),
    ("Munich", "DE", 48.1351, 11.5820, "plain", 2),
    ("Stuttgart", "DE", 48.7758, 9.1829, "hilly", 2),
    ("Nuremberg", "DE", 49.4521, 11.0767, "hilly", 1),
    ("Berlin", "DE", 52.5200, 13.4050, "plain", 3),
    ("Leipzig", "DE", 51.3397, 12.3731, "plain", 1),
    ("Hannover", "DE", 52.3759, 9.7320, "plain", 1),
    ("Dortmund", "DE", 51.5136, 7.4653, "plain", 2),
    ("Mannheim", "DE", 49.4875, 8.4660, "plain", 1),
    ("Kassel", "DE", 51.3127, 9.4797, "hilly", 0),
    ("Dresden", "DE", 51.0504, 13.7373, "hilly", 1),
    # Spain
    ("Madrid-Coslada", "ES", 40.4250, -3.5600, "plain", 3),
    ("Barcelona-ZAL", "ES", 41.3400, 2.1400, "coast", 3),
    ("Valencia", "ES", 39.4699, -0.3763, "coast", 2),
    ("Zaragoza-PLAZA", "ES", 41.6300, -0.9600, "plain", 1),
    ("Bilbao", "ES", 43.2630, -2.9350, "mountain", 1),
    ("Seville", "ES", 37.3891, -5.9845, "plain", 2),
    ("Algeciras", "ES", 36.1408, -5.4562, "coast", 0),
    ("Murcia", "ES", 37.9922, -1.1307, "hilly", 1),
    ("Irun", "ES", 43.3390, -1.7890, "mountain", 0),
    ("Valladolid", "ES", 41.6523, -4.7245, "plain", 1),
    ("Tarragona", "ES", 41.1189, 1.2445, "coast", 0),
    # Italy
    ("Milan", "IT", 45.4642, 9.1900, "plain", 3),
    ("Turin", "IT", 45.0703, 7.6869, "hilly", 2),
    ("Genoa", "IT", 44.4056, 8.9463, "coast", 1),
    ("Verona", "IT", 45.4384, 10.9916, "plain", 1),
    ("Bologna-Interporto", "IT", 44.5900, 11.3800, "plain", 1),
    ("Rome", "IT", 41.9028, 12.4964, "hilly", 3),
    ("Naples-Nola", "IT", 40.9260, 14.5300, "hilly", 2),
    ("Padua", "IT", 45.4064, 11.8768, "plain", 1),
    ("Piacenza", "IT", 45.0526, 9.6930, "plain", 0),
    ("Florence", "IT", 43.7696, 11.2558, "mountain", 1),
    ("Bari", "IT", 41.1171, 16.8719, "coast", 1),
    ("Trieste", "IT", 45.6495, 13.7768, "coast", 0),
    ("La Spezia", "IT", 44.1025, 9.8241, "coast", 0),
    # Poland
    ("Warsaw", "PL", 52.2297, 21.0122, "plain", 3),
    ("Lodz", "PL", 51.7592, 19.4560, "plain", 1),
    ("Poznan", "PL", 52.4064, 16.9252, "plain", 1),
    ("Wroclaw", "PL", 51.1079, 17.0385, "plain", 1),
    ("Katowice", "PL", 50.2649, 19.0238, "hilly", 2),
    ("Gdansk", "PL", 54.3520, 18.6466, "coast", 1),
    ("Krakow", "PL", 50.0647, 19.9450, "hilly", 1),
    ("Szczecin", "PL", 53.4285, 14.5528, "coast", 0),
]

TZ = {
    "FR": ZoneInfo("Europe/Paris"), "NL": ZoneInfo("Europe/Amsterdam"),
    "BE": ZoneInfo("Europe/Brussels"), "LU": ZoneInfo("Europe/Luxembourg"),
    "DE": ZoneInfo("Europe/Berlin"), "ES": ZoneInfo("Europe/Madrid"),
    "IT": ZoneInfo("Europe/Rome"), "PL": ZoneInfo("Europe/Warsaw"),
}

# Share of motorway on a long trip, by country.
MOTORWAY = {"FR": 0.78, "NL": 0.88, "BE": 0.85, "LU": 0.8, "DE": 0.82, "ES": 0.8,
            "IT": 0.72, "PL": 0.55}

# Weekend behaviour of heavy vehicles by country: chance that a heavy truck on the road stops
# for Sunday daytime, and the usual local hours of that stop (start, end). A custom, not law.
SUNDAY_HOLD = {"FR": (0.85, 0, 22), "DE": (0.92, 0, 22), "IT": (0.75, 8, 22),
               "ES": (0.25, 8, 22), "PL": (0.7, 8, 22), "NL": (0.1, 0, 0),
               "BE": (0.15, 0, 0), "LU": (0.6, 0, 21)}
# Sites in these countries rarely load or unload on a Sunday.
SUNDAY_CLOSED = {"FR": 0.8, "DE": 0.9, "IT": 0.7, "ES": 0.5, "PL": 0.8, "NL": 0.4,
                 "BE": 0.5, "LU": 0.8}

TERRAIN_CIRCUITY = {"plain": 0.0, "hilly": 0.05, "coast": 0.08, "mountain": 0.15}

# Base speeds (km/h): (motorway, trunk, urban), by vehicle class.
SPEEDS = {"van": (108.0, 76.0, 31.0), "rigid": (86.0, 66.0, 26.0),
          "articulated": (81.0, 63.0, 23.0)}

# Carriers: name, base hub, fleet size, class mix (van, rigid, articulated), scope,
# systematic speed factor, mean minutes logged before really leaving, missing-field rate.
CARRIERS = [
    ("rhone-alpes-fret", "Lyon", 85, (0.15, 0.35, 0.50), "international", 1.00, 10, 0.05),
    ("nord-express", "Lille", 40, (0.50, 0.40, 0.10), "regional", 0.97, 25, 0.20),
    ("aquitaine-transports", "Bordeaux", 120, (0.05, 0.25, 0.70), "international", 1.03, 5, 0.02),
    ("rijnmond-logistics", "Rotterdam-Maasvlakte", 150, (0.10, 0.20, 0.70), "international", 1.04, 15, 0.10),
    ("ardennes-log", "Liege", 25, (0.30, 0.50, 0.20), "regional", 0.95, 35, 0.30),
    ("ruhr-spedition", "Duisburg", 110, (0.05, 0.30, 0.65), "international", 1.02, 8, 0.04),
    ("bayern-kurier", "Munich", 20, (0.85, 0.15, 0.00), "regional", 0.99, 2, 0.15),
    ("iberia-trans", "Zaragoza-PLAZA", 130, (0.00, 0.20, 0.80), "international", 1.05, 12, 0.08),
    ("levante-distribucion", "Valencia", 45, (0.40, 0.45, 0.15), "national", 0.96, 20, 0.25),
    ("padana-trasporti", "Piacenza", 95, (0.10, 0.30, 0.60), "international", 1.00, 18, 0.06),
    ("mezzogiorno-cargo", "Naples-Nola", 30, (0.20, 0.50, 0.30), "national", 0.93, 40, 0.35),
    ("wisla-cargo", "Poznan", 140, (0.05, 0.15, 0.80), "international", 1.01, 6, 0.03),
]

START = datetime(2023, 1, 2, tzinfo=timezone.utc)
YEARS = 3
SPAN_DAYS = 365 * YEARS
CLASSES = ("van", "rigid", "articulated")


def haversine_km(lat1, lon1, lat2, lon2):
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def jitter(rng, lat, lon, km):
    """A site a few km from a hub's reference point."""
    d = km * math.sqrt(rng.random())
    b = rng.uniform(0, 2 * math.pi)
    return (lat + d * math.cos(b) / 111.2,
            lon + d * math.sin(b) / (111.2 * math.cos(math.radians(lat))))


class Site:
    """A loading or unloading site with its own heavy-tailed dwell."""

    def __init__(self, rng, hub):
        self.hub = hub
        self.country = hub[1]
        self.lat, self.lon = jitter(rng, hub[2], hub[3], 9.0)
        self.terrain = hub[4]
        self.size = hub[5]
        self.dwell_median = rng.uniform(18, 75)      # minutes
        self.dwell_sigma = rng.uniform(0.35, 0.95)   # lognormal spread
        self.tail_p = rng.uniform(0.01, 0.08)        # chance of a long wait
        self.tail_alpha = rng.uniform(1.2, 2.2)      # Pareto shape of that wait

    def dwell(self, rng):
        m = rng.lognormvariate(math.log(self.dwell_median), self.dwell_sigma)
        if rng.random() < self.tail_p:
            m += min(720.0, 45.0 * rng.paretovariate(self.tail_alpha))
        return min(m, 900.0)


class Driver:
    """A driver's own pause habit (not any regulation's arithmetic)."""

    def __init__(self, rng):
        kind = rng.choices(["3h30", "4h60", "2h20", "4h45"], weights=[0.3, 0.25, 0.2, 0.25])[0]
        block, pause = {"3h30": (3.0, 30), "4h60": (4.0, 60), "2h20": (2.1, 20),
                        "4h45": (4.3, 45)}[kind]
        self.block_h = block * rng.uniform(0.9, 1.1)
        self.pause_min = pause * rng.uniform(0.8, 1.25)
        self.end_hour = rng.uniform(17.5, 23.5)     # preferred local hour to stop for the night
        self.start_hour = rng.uniform(3.5, 7.5)     # preferred local hour to set off again
        self.max_day_h = rng.uniform(8.0, 10.5)     # driving beyond this, he stops wherever
        self.min_day_h = rng.uniform(4.0, 7.0)      # before this, he does not stop for the night
        self.speed = rng.lognormvariate(0.0, 0.035)  # a lead foot or a careful one


class Vehicle:
    def __init__(self, rng, vclass):
        self.vclass = vclass
        self.speed = rng.lognormvariate(0.0, 0.02)
        self.drivers = [Driver(rng) for _ in range(rng.choice([1, 1, 1, 2]))]


def local(t, country):
    return t.astimezone(TZ[country])


def hours(local_dt):
    return local_dt.hour + local_dt.minute / 60.0


def rush_factor(ldt, size):
    """Urban speed factor around a city of this size at this local time."""
    if size <= 0:
        return 1.0
    h = hours(ldt)
    wd = ldt.weekday()
    if wd >= 5:
        return 1.05 if h < 10 else 0.95
    f = 1.0
    if 6.75 <= h <= 9.75:
        f = 1.0 - 0.17 * size * math.exp(-((h - 8.1) / 0.9) ** 2)
    elif 16.0 <= h <= 19.75:
        f = 1.0 - 0.19 * size * math.exp(-((h - 17.7) / 1.0) ** 2)
    elif h >= 21.5 or h < 5.5:
        f = 1.18
    else:
        f = 0.93
    if ldt.month == 8:
        f = min(1.2, f * 1.12)   # holiday month: lighter city traffic
    return max(0.35, f)


def road_factor(ldt, country, southbound):
    """Open-road speed factor by local hour, weekday and season."""
    h = hours(ldt)
    wd = ldt.weekday()
    f = 1.03 if (h >= 22 or h < 5) else 0.98
    if wd == 4 and 14.5 <= h <= 19.5 and country in ("DE", "NL", "BE", "FR"):
        f *= 0.9
    if wd == 5:
        f *= 1.03
        if ldt.month in (7, 8) and southbound and country in ("FR", "ES", "IT"):
            f *= 0.82   # holiday exodus Saturdays
    return f


def season_factor(t, terrain_score):
    """Slower in winter (more so in the mountains), faster in summer. A multiplier on speed."""
    doy = t.timetuple().tm_yday
    c = math.cos(2 * math.pi * (doy - 20) / 365.25)   # 1 in mid-January, -1 in mid-July
    return 1.0 - 0.035 * c - (0.06 * terrain_score * max(0.0, c))


def trend_factor(t, growth):
    """Growing congestion: the last months run `growth` slower than the first."""
    frac = (t - START).total_seconds() / (SPAN_DAYS * 86400.0)
    return 1.0 / (1.0 + growth * max(0.0, min(1.0, frac)))


def circuity(rng, a, b, d):
    """Road km per crow km: higher in the mountains, on the coast, across the Alps/Pyrenees."""
    c = 1.17 + TERRAIN_CIRCUITY[a.terrain] + TERRAIN_CIRCUITY[b.terrain]
    countries = {a.country, b.country}
    if "IT" in countries and len(countries) > 1:
        c += 0.12   # Alpine crossing
    if "ES" in countries and len(countries) > 1:
        c += 0.06   # Pyrenees
    c += 0.25 * math.exp(-d / 50.0)   # short urban trips wind more
    return c * rng.lognormvariate(0.0, 0.035)


class Lane:
    def __init__(self, rng, origin, dest):
        self.origin, self.dest = origin, dest
        self.crow = haversine_km(origin.lat, origin.lon, dest.lat, dest.lon)
        self.circuity = circuity(rng, origin, dest, self.crow)
        self.popularity = rng.paretovariate(1.1)
        self.southbound = dest.lat < origin.lat - 1.0


def pick_weighted(rng, items, weights):
    return rng.choices(items, weights=weights)[0]


class CarrierWorld:
    def __init__(self, spec, seed, sites_by_hub):
        (self.name, base, self.fleet, mix, self.scope, self.speed, self.log_early,
         self.missing) = spec
        rng = random.Random(f"{seed}/carrier/{self.name}")
        self.rng = rng
        self.base = next(h for h in HUBS if h[0] == base)
        # Growth of congestion on the road over the 3 years. Overnight stops (which end at the
        # driver's wake-up hour whatever the road did) dilute it, so the road slows by 8-11%
        # for the whole trip to come out 5-8% slower in the last months than in the first.
        self.growth = rng.uniform(0.08, 0.11)
        self.arrival_lag = rng.uniform(0, 8)
        self.vehicles = [Vehicle(rng, rng.choices(CLASSES, weights=mix)[0])
                         for _ in range(self.fleet)]
        # Sites this carrier serves: hubs weighted by nearness to its base and by scope.
        scale = {"regional": 180.0, "national": 450.0, "international": 900.0}[self.scope]
        hub_w = []
        for h in HUBS:
            d = haversine_km(self.base[2], self.base[3], h[2], h[3])
            w = math.exp(-d / scale) * (1 + h[5])
            if self.scope == "national" and h[1] != self.base[1]:
                w *= 0.08
            if self.scope == "regional" and d > 350:
                w = 0.0
            hub_w.append(w)
        home_sites = sites_by_hub[self.base[0]]
        self.lanes = []
        n_lanes = int(rng.uniform(25, 45) + self.fleet * rng.uniform(0.4, 0.8))
        while len(self.lanes) < n_lanes:
            home = rng.choice(home_sites) if rng.random() < 0.55 else rng.choice(
                sites_by_hub[pick_weighted(rng, HUBS, hub_w)[0]])
            other = rng.choice(sites_by_hub[pick_weighted(rng, HUBS, hub_w)[0]])
            if haversine_km(home.lat, home.lon, other.lat, other.lon) < 25:
                continue
            self.lanes.append(Lane(rng, home, other))
            self.lanes.append(Lane(rng, other, home))   # the return leg
        self.lane_w = [lane.popularity for lane in self.lanes]
        self.all_sites = [s for h in HUBS for s in sites_by_hub[h[0]]]
        self.hub_w = hub_w

    # --- departure schedule ------------------------------------------------------------------
    def departure(self, rng, vclass, origin):
        while True:
            day = rng.randrange(SPAN_DAYS)
            d = START + timedelta(days=day)
            ld = d.astimezone(TZ[origin.country])
            wd = ld.weekday()
            w = (1.0, 1.0, 1.0, 1.0, 0.95, 0.3, 0.1)[wd]
            if ld.month == 8:
                w *= 0.75
            if ld.month == 12 and ld.day >= 23 or (ld.month == 1 and ld.day == 1):
                w *= 0.3
            if rng.random() < w:
                break
        if vclass == "van":
            h = rng.gauss(7.0, 1.6) if rng.random() < 0.8 else rng.uniform(9, 17)
        else:
            h = pick_weighted(rng, [rng.gauss(5.0, 1.5), rng.gauss(13.5, 2.0),
                                    rng.gauss(20.5, 1.5)], [0.55, 0.3, 0.15])
            if wd == 6:
                h = rng.gauss(21.0, 1.5)   # Sunday-evening departures for the week
        h = max(0.0, min(23.98, h))
        naive = datetime(ld.year, ld.month, ld.day) + timedelta(hours=h)
        return naive.replace(tzinfo=TZ[origin.country]).astimezone(timezone.utc)

    # --- the drive ---------------------------------------------------------------------------
    def simulate(self, idx, seed):
        rng = random.Random(f"{seed}/trip/{self.name}/{idx}")
        veh = rng.choice(self.vehicles)
        drv = rng.choice(veh.drivers)
        vclass = veh.vclass
        # Vans run shorter lanes; prefer lanes by popularity, reject lanes unfit for the class.
        while True:
            lane = pick_weighted(rng, self.lanes, self.lane_w)
            if vclass == "van" and lane.crow > 450 and rng.random() < 0.9:
                continue
            if vclass == "articulated" and lane.crow < 60 and rng.random() < 0.7:
                continue
            break
        o, dst = lane.origin, lane.dest
        # Intermediate stops: sites roughly on the way.
        max_stops = {"van": 5, "rigid": 3, "articulated": 2}[vclass]
        p_stop = {"van": 0.65, "rigid": 0.45, "articulated": 0.25}[vclass]
        stops = []
        if rng.random() < p_stop:
            k = 1 + min(max_stops - 1, int(rng.expovariate(1.2)))
            cands = []
            for s in rng.sample(self.all_sites, min(60, len(self.all_sites))):
                via = (haversine_km(o.lat, o.lon, s.lat, s.lon)
                       + haversine_km(s.lat, s.lon, dst.lat, dst.lon))
                if s is not o and s is not dst and via < 1.3 * lane.crow + 15:
                    cands.append((haversine_km(o.lat, o.lon, s.lat, s.lon), s))
            cands.sort(key=lambda x: x[0])
            if len(cands) > k:
                cands = sorted(rng.sample(cands, k), key=lambda x: x[0])
            stops = [s for _, s in cands]
        points = [o] + stops + [dst]
        t = self.departure(rng, vclass, o)
        actual_start = t
        trip_noise = rng.lognormvariate(0.0, 0.05)
        speed_mult = self.speed * veh.speed * drv.speed * trip_noise
        total_road = 0.0
        total_dwell = 0.0
        drive_since_pause = rng.uniform(0, 0.5)
        drive_today = rng.uniform(0, 1.0)
        held_sunday_on = None
        incident_at = None
        winter = math.cos(2 * math.pi * (t.timetuple().tm_yday - 20) / 365.25) > 0.4
        terr = (TERRAIN_CIRCUITY[o.terrain] + TERRAIN_CIRCUITY[dst.terrain]) / 0.3
        p_inc = 0.02 + 0.00003 * lane.crow + (0.02 if winter and terr > 0.3 else 0.0)
        if rng.random() < p_inc:
            incident_at = rng.random()
        heavy = vclass != "van"
        road_legs = []
        for a, b in zip(points, points[1:]):
            d = haversine_km(a.lat, a.lon, b.lat, b.lon)
            road = d * (lane.circuity if (a is o and b is dst) else circuity(rng, a, b, d))
            road_legs.append(road)
        route_total = sum(road_legs)
        done_road = 0.0
        for li, (a, b) in enumerate(zip(points, points[1:])):
            road = road_legs[li]
            urban_a = min(0.3 * road, 4.0 + 4.0 * a.size)
            urban_b = min(0.3 * road, 4.0 + 4.0 * b.size)
            mw = MOTORWAY[a.country] * 0.5 + MOTORWAY[b.country] * 0.5
            mw *= min(1.0, road / 90.0)
            if "mountain" in (a.terrain, b.terrain):
                mw *= 0.85
            v_mw, v_tr, v_ur = SPEEDS[vclass]
            terr_score = (TERRAIN_CIRCUITY[a.terrain] + TERRAIN_CIRCUITY[b.terrain]) / 0.3
            pos = 0.0
            while pos < road - 1e-6:
                country = a.country if pos < road / 2 else b.country
                ldt = local(t, country)
                # Sunday custom for heavy vehicles.
                if heavy and ldt.weekday() == 6:
                    p_hold, h0, h1 = SUNDAY_HOLD[country]
                    key = (ldt.date(), country)
                    if held_sunday_on != key and h0 <= hours(ldt) < h1 and rng.random() < p_hold:
                        held_sunday_on = key
                        end = ldt.replace(hour=0, minute=0, second=0) + timedelta(
                            hours=h1 + rng.uniform(-0.5, 1.5))
                        t = max(t, end.astimezone(timezone.utc))
                        drive_since_pause = 0.0
                        drive_today = 0.0
                        continue
                # Overnight stop, by the driver's habit.
                h = hours(ldt)
                late = h >= drv.end_hour + rng.uniform(-0.3, 0.3) or h < 2.5
                if drive_today >= drv.max_day_h or (late and drive_today >= drv.min_day_h):
                    base_day = ldt if h >= 12 else ldt - timedelta(days=1)
                    wake = (base_day.replace(hour=0, minute=0, second=0) + timedelta(
                        days=1, hours=drv.start_hour + rng.gauss(0, 0.6)))
                    wake_utc = wake.astimezone(timezone.utc)
                    t = max(t + timedelta(hours=rng.uniform(7.5, 9.0)), wake_utc)
                    drive_since_pause = 0.0
                    drive_today = 0.0
                    continue
                if drive_since_pause >= drv.block_h:
                    t += timedelta(minutes=drv.pause_min * rng.lognormvariate(0, 0.25))
                    drive_since_pause = 0.0
                    continue
                # Speed here and now.
                if pos < urban_a:
                    v = v_ur * rush_factor(ldt, a.size)
                    seg_end = urban_a
                elif pos >= road - urban_b:
                    v = v_ur * rush_factor(local(t, b.country), b.size)
                    seg_end = road
                else:
                    v = 1.0 / (mw / v_mw + (1 - mw) / v_tr)
                    v *= road_factor(ldt, country, lane.southbound)
                    seg_end = road - urban_b
                v *= speed_mult * season_factor(t, terr_score) * trend_factor(t, self.growth)
                v *= rng.lognormvariate(0.0, 0.04)
                v = max(8.0, min(v, 112.0))
                step_h = min(0.25, (seg_end - pos) / v, drv.block_h - drive_since_pause + 0.01)
                step_h = max(step_h, 1e-4)
                km = v * step_h
                if pos + km > seg_end:
                    km = seg_end - pos
                    step_h = km / v
                pos += km
                done_road += km
                t += timedelta(hours=step_h)
                drive_since_pause += step_h
                drive_today += step_h
                if incident_at is not None and done_road / route_total >= incident_at:
                    incident_at = None
                    delay = min(20 * 60.0, rng.lognormvariate(math.log(40.0), 1.1))
                    t += timedelta(minutes=delay)
            total_road += road
            if b is not dst:
                # Dwell at an intermediate site (Sunday closures wait for Monday morning).
                lb = local(t, b.country)
                if lb.weekday() == 6 and rng.random() < SUNDAY_CLOSED[b.country]:
                    mon = (lb.replace(hour=0, minute=0, second=0)
                           + timedelta(days=1, hours=rng.uniform(5.5, 8)))
                    wait = (mon.astimezone(timezone.utc) - t).total_seconds() / 60.0
                else:
                    wait = 0.0
                dw = b.dwell(rng) / trend_factor(t, 0.5 * self.growth)   # busier docks too
                total_dwell += dw
                t += timedelta(minutes=dw + wait)
                if dw + wait >= 20:
                    drive_since_pause = 0.0
                if wait > 300:
                    drive_today = 0.0
        early = self.log_early * rng.gammavariate(1.5, 1 / 1.5) if self.log_early else 0.0
        logged_dep = actual_start - timedelta(minutes=early)
        logged_arr = t + timedelta(minutes=rng.uniform(0, self.arrival_lag))
        odometer = total_road * rng.lognormvariate(0.0, 0.01)
        if vclass == "van":
            load = rng.uniform(0.15, 1.2)
        elif vclass == "rigid":
            load = rng.uniform(1.5, 11.5)
        else:
            load = 0.0 if rng.random() < 0.06 else min(26.0, rng.uniform(6, 26))

        def maybe(value, fmt):
            return "" if rng.random() < self.missing else fmt.format(value)

        return {
            "trip_id": f"{self.name[:3].upper()}-{idx:06d}",
            "vehicle_class": vclass,
            "origin_lat": f"{o.lat:.5f}", "origin_lon": f"{o.lon:.5f}",
            "destination_lat": f"{dst.lat:.5f}", "destination_lon": f"{dst.lon:.5f}",
            "departure_time": rfc3339(logged_dep, o.country),
            "arrival_time": rfc3339(logged_arr, dst.country),
            "distance_km": maybe(odometer, "{:.1f}"),
            "stops": maybe(len(stops), "{}"),
            "dwell_minutes": maybe(total_dwell, "{:.0f}"),
            "load_tonnes": maybe(load, "{:.1f}"),
        }


def rfc3339(t, country):
    ldt = t.astimezone(TZ[country]).replace(microsecond=0)
    ldt = ldt.replace(second=0) if ldt.second < 30 else (ldt.replace(second=0) + timedelta(minutes=1))
    return ldt.isoformat(timespec="seconds")


COLUMNS = ["trip_id", "vehicle_class", "origin_lat", "origin_lon", "destination_lat",
           "destination_lon", "departure_time", "arrival_time", "distance_km", "stops",
           "dwell_minutes", "load_tonnes"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--trips", type=int, default=40000, help="total trips over all carriers")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    site_rng = random.Random(f"{args.seed}/sites")
    sites_by_hub = {h[0]: [Site(site_rng, h) for _ in range(1 + h[5] + site_rng.randrange(2))]
                    for h in HUBS}
    carriers = [CarrierWorld(spec, args.seed, sites_by_hub) for spec in CARRIERS]
    # Trips per carrier: fleet size times a per-class trip rate, with some spread.
    alloc_rng = random.Random(f"{args.seed}/alloc")
    weights = []
    for c in carriers:
        rate = sum({"van": 2.2, "rigid": 1.4, "articulated": 1.0}[v.vclass] for v in c.vehicles)
        weights.append(rate * alloc_rng.uniform(0.6, 1.4))
    total_w = sum(weights)
    counts = [int(args.trips * w / total_w) for w in weights]
    for i in range(args.trips - sum(counts)):
        counts[i % len(counts)] += 1
    for c, n in zip(carriers, counts):
        path = os.path.join(args.out, c.name)
        os.makedirs(path, exist_ok=True)
        rows = [c.simulate(i, args.seed) for i in range(n)]
        rows.sort(key=lambda r: (datetime.fromisoformat(r["departure_time"]), r["trip_id"]))
        with open(os.path.join(path, "trips.csv"), "w", newline="", encoding="utf-8") as f:
            wr = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            wr.writeheader()
            wr.writerows(rows)
        print(f"{c.name}: {n} trips, {c.fleet} vehicles -> {path}/trips.csv")


if __name__ == "__main__":
    main()
