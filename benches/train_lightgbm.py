"""Python's LightGBM (PyPI) trains the three boosters on what `etape train --boosters-input DIR`
wrote: the same rows, labels, weights and parameters as etape's own three. Prints one JSON line:
the seconds from the arrays in memory to the third booster trained (the Dataset built once, as
a data scientist would), and the process's peak resident memory, arrays included.

    python benches/train_lightgbm.py DIR
"""

import json
import resource
import sys
import time

import lightgbm
import numpy


def parameters(text):
    """LightGBM's `key=value key=value` string as the dict Python's LightGBM takes."""
    return dict(item.split("=", 1) for item in text.split())


def main(directory):
    with open(f"{directory}/input.json") as file:
        described = json.load(file)
    rows, names = described["rows"], described["features"]
    features = numpy.fromfile(f"{directory}/features.f64", dtype="<f8").reshape(rows, len(names))
    labels = numpy.fromfile(f"{directory}/labels.f32", dtype="<f4")
    weights = numpy.fromfile(f"{directory}/weights.f32", dtype="<f4")
    dataset_params = parameters(described["dataset_params"])
    dataset_params.pop("categorical_feature")
    started = time.perf_counter()
    dataset = lightgbm.Dataset(
        features,
        label=labels,
        weight=weights,
        feature_name=names,
        categorical_feature=described["categorical"],
        params=dataset_params,
        free_raw_data=False,
    )
    for booster in described["boosters"]:
        lightgbm.train(
            {**dataset_params, **parameters(booster["params"])},
            dataset,
            num_boost_round=described["rounds"],
        )
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "lightgbm": lightgbm.__version__,
                "rows": rows,
                "seconds": round(seconds, 1),
                "peak_mib": round(peak_mib),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
