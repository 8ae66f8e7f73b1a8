#!/usr/bin/env python3
"""Writes src/domain/geo/outlines.rs: coarse outlines of France and the countries a French
carrier drives through, compiled into the binary for `Territory::of`.

Source: Natural Earth 1:50m Admin 0 countries (public domain, naturalearthdata.com), as packaged
in TopoJSON by the npm package world-atlas 2.0.2 (ISC licence, Michael Bostock). Reproduce:

    npm pack world-atlas@2.0.2          # or curl -sO https://registry.npmjs.org/world-atlas/-/world-atlas-2.0.2.tgz
    tar xzf world-atlas-2.0.2.tgz
    python3 scripts/country-outlines.py package/countries-50m.json > src/domain/geo/outlines.rs
    rustfmt --edition 2021 src/domain/geo/outlines.rs

The simplification works on TopoJSON's shared arcs (Douglas-Peucker on each arc, its ends
kept), so two neighbours keep exactly the same border line and no gap or overlap opens between
them. Land borders are kept to about 3 km, coasts to about 5 km; `Territory::of` falls back to
the nearest outline within a few kilometres for points the simplified coast cuts off.
"""
import json
import math
import sys

# ISO 3166 numeric code -> (alpha-2, Rust variant).
KEEP = {
    "250": ("FR", "France"), "276": ("DE", "Germany"), "380": ("IT", "Italy"),
    "756": ("CH", "Switzerland"), "040": ("AT", "Austria"), "724": ("ES", "Spain"),
    "056": ("BE", "Belgium"), "442": ("LU", "Luxembourg"), "528": ("NL", "Netherlands"),
    "620": ("PT", "Portugal"), "826": ("GB", "UnitedKingdom"), "020": ("AD", "Andorra"),
    "492": ("MC", "Monaco"), "438": ("LI", "Liechtenstein"), "674": ("SM", "SanMarino"),
    "208": ("DK", "Denmark"), "616": ("PL", "Poland"), "203": ("CZ", "Czechia"),
    "705": ("SI", "Slovenia"), "372": ("IE", "Ireland"),
}
BOX = (-12.0, 34.0, 32.0, 72.0)  # lon min, lat min, lon max, lat max: Europe, no overseas land
LAND_TOLERANCE_DEG = 0.03
COAST_TOLERANCE_DEG = 0.05
MIN_ISLAND_AREA_DEG2 = 0.02  # keeps Corsica, Sardinia, Sicily, Mallorca; drops islets


def douglas_peucker(points, tolerance):
    if len(points) < 3:
        return points
    (x1, y1), (x2, y2) = points[0], points[-1]
    dx, dy = x2 - x1, y2 - y1
    norm = math.hypot(dx, dy)
    best, best_idx = -1.0, 0
    for idx in range(1, len(points) - 1):
        x, y = points[idx]
        if norm == 0:
            distance = math.hypot(x - x1, y - y1)
        else:
            distance = abs(dy * (x - x1) - dx * (y - y1)) / norm
        if distance > best:
            best, best_idx = distance, idx
    if best <= tolerance:
        return [points[0], points[-1]]
    left = douglas_peucker(points[: best_idx + 1], tolerance)
    right = douglas_peucker(points[best_idx:], tolerance)
    return left[:-1] + right


def area(ring):
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]))) / 2


def main(path):
    topo = json.load(open(path))
    scale, translate = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * scale[0] + translate[0], y * scale[1] + translate[1]))
        arcs.append(points)
    # An arc that two countries share is a land border; one used once is a coast.
    uses = [0] * len(arcs)
    for geometry in topo["objects"]["countries"]["geometries"]:
        polygons = geometry.get("arcs", [])
        if geometry.get("type") == "Polygon":
            polygons = [polygons]
        for polygon in polygons:
            for ring in polygon:
                for index in ring:
                    uses[index if index >= 0 else ~index] += 1
    simplified = [
        douglas_peucker(arc, LAND_TOLERANCE_DEG if uses[i] > 1 else COAST_TOLERANCE_DEG)
        for i, arc in enumerate(arcs)
    ]

    def ring(indices, source=None):
        source = source or simplified
        points = []
        for index in indices:
            arc = source[index] if index >= 0 else list(reversed(source[~index]))
            points.extend(arc if not points else arc[1:])
        if len(points) > 1 and points[0] == points[-1]:
            points.pop()
        return [(round(lon, 3), round(lat, 3)) for lon, lat in points]

    countries = []
    for geometry in topo["objects"]["countries"]["geometries"]:
        keep = KEEP.get(str(geometry.get("id")))
        if keep is None:
            continue
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        rings = []
        for polygon in polygons:
            outer = ring(polygon[0])  # holes (San Marino in Italy...) are separate countries
            if len(outer) < 4:
                outer = ring(polygon[0], arcs)  # a microstate the tolerance would erase
            inside = all(BOX[0] <= p[0] <= BOX[2] and BOX[1] <= p[1] <= BOX[3] for p in outer)
            if not inside or len(outer) < 3:
                continue  # overseas territories
            if area(outer) < MIN_ISLAND_AREA_DEG2 and len(polygons) > 1:
                continue
            rings.append(outer)
        countries.append((keep, rings))
    # Microstates first: they lie inside (or against) a bigger neighbour's outline.
    countries.sort(key=lambda c: sum(area(r) for r in c[1]))

    out = sys.stdout
    out.write("//! Generated by scripts/country-outlines.py from Natural Earth 1:50m countries\n")
    out.write("//! (public domain) via the npm package world-atlas 2.0.2 (ISC). Do not edit.\n\n")
    out.write("use super::{Outline, Territory};\n\n")
    out.write("/// Smallest first, so that a microstate wins over the neighbour around it.\n")
    out.write(f"pub(super) const OUTLINES: [Outline; {len(countries)}] = [\n")
    for (code, variant), rings in countries:
        xs = [p[0] for r in rings for p in r]
        ys = [p[1] for r in rings for p in r]
        out.write(f"    // {code}: {sum(len(r) for r in rings)} vertices\n")
        out.write("    Outline {\n")
        out.write(f"        territory: Territory::{variant},\n")
        out.write(f"        bbox: ({min(xs)!r}, {min(ys)!r}, {max(xs)!r}, {max(ys)!r}),\n")
        out.write("        rings: &[\n")
        for r in rings:
            out.write("            &[" + ", ".join(f"({x!r}, {y!r})" for x, y in r) + "],\n")
        out.write("        ],\n    },\n")
    out.write("];\n")
    for (code, _), rings in countries:
        print(code, sum(len(r) for r in rings), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
