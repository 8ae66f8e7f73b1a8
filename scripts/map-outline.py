#!/usr/bin/env python3
"""Writes src/http/dashboard/assets/outline.json: France and its neighbours as simplified polygons,
from Natural Earth's 1:50m countries (public domain) as packaged by the npm package
world-atlas 2.0.2 (ISC). Reproduce:

    curl -sO https://registry.npmjs.org/world-atlas/-/world-atlas-2.0.2.tgz
    tar xzf world-atlas-2.0.2.tgz && python3 scripts/map-outline.py package/countries-50m.json
"""
import json
import sys

# ISO 3166 numeric codes: France and the countries a French carrier drives through.
KEEP = {"250": "FR", "056": "BE", "442": "LU", "276": "DE", "756": "CH", "380": "IT",
        "724": "ES", "020": "AD", "492": "MC", "528": "NL", "826": "GB", "040": "AT",
        "620": "PT", "438": "LI", "674": "SM"}
BOX = (-10.0, 35.0, 17.0, 56.0)  # lon min, lat min, lon max, lat max


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

    def ring(indices):
        points = []
        for index in indices:
            arc = arcs[index] if index >= 0 else list(reversed(arcs[~index]))
            points.extend(arc if not points else arc[1:])
        return points

    countries = []
    for geometry in topo["objects"]["countries"]["geometries"]:
        code = KEEP.get(str(geometry.get("id")))
        if code is None:
            continue
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        rings = []
        for polygon in polygons:
            outer = ring(polygon[0])
            inside = [p for p in outer if BOX[0] <= p[0] <= BOX[2] and BOX[1] <= p[1] <= BOX[3]]
            if len(inside) < 3:
                continue  # overseas territories and far-off islands
            # Two decimals (about 1 km) and no repeated points: small enough to embed.
            simplified = []
            for lon, lat in outer:
                point = [round(lon, 2), round(lat, 2)]
                if not simplified or simplified[-1] != point:
                    simplified.append(point)
            if len(simplified) >= 4:
                rings.append(simplified)
        countries.append({"code": code, "rings": rings})
    countries.sort(key=lambda country: country["code"] != "FR")
    out = {
        "source": "Natural Earth 1:50m countries (public domain), via world-atlas 2.0.2 (ISC)",
        "box": BOX,
        "countries": countries,
    }
    json.dump(out, open("src/http/dashboard/assets/outline.json", "w"), separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1])
