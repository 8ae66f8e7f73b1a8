//! LightGBM's trees, read from its text format and walked here: a prediction and its SHAP
//! values without a call into the C library.
//!
//! Serving asks three boosters for every ETA and the median's SHAP values for every answer
//! that lists its factors. Through the C API each prediction is a locked call with its own
//! buffers, and LightGBM's TreeSHAP walks every path of every tree once per feature on it
//! (O(leaves x depth^2) a tree): 4.3 ms for the factors of one answer. Here the trees are
//! plain arrays and the SHAP values are computed in one pass over each tree (O(nodes x depth)).
//!
//! The SHAP value of feature `i` for one leaf `l` whose path tests the features `F` is, by
//! the Shapley weights written as a Beta integral,
//! `v_l (o_i - p_i) ∫_0^1 Π_{j in F, j != i} (o_j t + p_j (1 - t)) dt`,
//! where `o_j` is 1 when the row follows the path's branches on `j` (0 otherwise) and `p_j`
//! the share of the training rows that did (both multiplied over the path's splits on `j`).
//! The integrand is a polynomial of degree below the tree's depth, so a Gauss-Legendre rule of
//! `depth / 2` points integrates it exactly. Walking down, each node carries the product at
//! those points; walking back up, each node returns the sum over its leaves of the leaf value
//! times that product, and each edge adds its feature's share (Linear TreeSHAP, Yu et al.,
//! NeurIPS 2022, with the polynomials held as their values at the quadrature points). The
//! answers equal LightGBM's `predict_contrib` to rounding: a test holds them to 1e-9.

use super::gbm::GbmError;

/// LightGBM's zero threshold for missing-as-zero splits (`kZeroThreshold`, a float).
const ZERO: f64 = 1e-35_f32 as f64;

/// The quadrature rules kept, by their number of points: SHAP values are given for trees up to
/// twice the last deep (deeper forests are left to LightGBM).
const POINTS: [usize; 5] = [2, 4, 6, 8, 16];
const MAX_POINTS: usize = POINTS[POINTS.len() - 1];

/// One booster's trees.
#[derive(Debug, Clone)]
pub struct Forest {
    trees: Vec<Tree>,
    n_features: usize,
    /// Gauss-Legendre points and weights on [0, 1], as many as the deepest tree needs.
    points: Vec<f64>,
    weights: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
    leaves: Vec<f64>,
    /// The training rows' average of the tree's output (its leaves weighed by their counts).
    expected: f64,
    /// Categorical splits' category sets, 32 categories a word.
    bitsets: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    feature: usize,
    threshold: f64,
    split: Split,
    /// A child: a node's index, or `!leaf` for a leaf (LightGBM's own encoding).
    left: i32,
    right: i32,
    /// Shares of the node's training rows that went left and right.
    cover_left: f64,
    cover_right: f64,
}

#[derive(Debug, Clone, Copy)]
enum Split {
    Numeric {
        missing: Missing,
        default_left: bool,
    },
    /// The categories that go left: `bitsets[start..start + words]`.
    Categorical { start: usize, words: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    None,
    Zero,
    NaN,
}

impl Node {
    /// The child a value goes to, as LightGBM decides (`Tree::Decision` in `tree.h`).
    fn next(&self, value: f64, bitsets: &[u32]) -> i32 {
        // LightGBM's C API reads a row as its non-zero values: one within its zero threshold
        // is zero, and compares as zero with a threshold of -1e-35.
        let value = if value.abs() <= ZERO { 0.0 } else { value };
        match self.split {
            Split::Numeric {
                missing,
                default_left,
            } => {
                let value = if value.is_nan() && missing != Missing::NaN {
                    0.0
                } else {
                    value
                };
                let is_missing = match missing {
                    Missing::None => false,
                    Missing::Zero => (-ZERO..=ZERO).contains(&value),
                    Missing::NaN => value.is_nan(),
                };
                let left = if is_missing {
                    default_left
                } else {
                    value <= self.threshold
                };
                if left {
                    self.left
                } else {
                    self.right
                }
            }
            Split::Categorical { start, words } => {
                // LightGBM truncates the value to an integer category (-0.5 is category 0).
                let category = value as i64;
                if value.is_nan() || category < 0 {
                    return self.right;
                }
                let category = category as usize;
                let word = category / 32;
                if word < words && (bitsets[start + word] >> (category % 32)) & 1 == 1 {
                    self.left
                } else {
                    self.right
                }
            }
        }
    }
}

impl Tree {
    fn leaf(&self, row: &[f64]) -> f64 {
        if self.nodes.is_empty() {
            return self.leaves[0];
        }
        let mut node = 0;
        loop {
            let split = &self.nodes[node as usize];
            node = split.next(row[split.feature], &self.bitsets);
            if node < 0 {
                return self.leaves[!node as usize];
            }
        }
    }

    fn depth(&self) -> usize {
        fn below(tree: &Tree, node: i32) -> usize {
            if node < 0 {
                return 0;
            }
            let split = &tree.nodes[node as usize];
            1 + below(tree, split.left).max(below(tree, split.right))
        }
        if self.nodes.is_empty() {
            0
        } else {
            below(self, 0)
        }
    }
}

impl Forest {
    /// Reads a model in LightGBM's text format. Refuses what it does not walk the way LightGBM
    /// would: several classes or trees a round, averaged outputs (random forests), linear
    /// trees, objectives that transform the raw score.
    pub fn from_text(text: &str) -> Result<Self, GbmError> {
        let unsupported = |what: &str| GbmError(format!("not read in Rust: {what}"));
        let (header, body) = text
            .split_once("\nTree=")
            .ok_or_else(|| GbmError("a model without trees".into()))?;
        let header_value = |key: &str| {
            header
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        };
        for key in ["num_class", "num_tree_per_iteration"] {
            if header_value(key).is_some_and(|value| value.trim() != "1") {
                return Err(unsupported(key));
            }
        }
        if header.lines().any(|line| line.trim() == "average_output") {
            return Err(unsupported("average_output"));
        }
        let objective = header_value("objective")
            .and_then(|value| value.split_whitespace().next())
            .unwrap_or_default();
        if !matches!(
            objective,
            "regression" | "regression_l1" | "quantile" | "huber" | "fair"
        ) {
            return Err(unsupported(&format!("objective {objective:?}")));
        }
        let n_features = header_value("max_feature_idx")
            .and_then(|value| value.trim().parse::<usize>().ok())
            .ok_or_else(|| GbmError("no max_feature_idx".into()))?
            + 1;
        let body = body.split("\nend of trees").next().unwrap_or_default();
        let trees = body
            .split("\nTree=")
            .map(|block| parse_tree(block, n_features))
            .collect::<Result<Vec<_>, _>>()?;
        let depth = trees.iter().map(Tree::depth).max().unwrap_or(0);
        // The integrand's degree is below the number of distinct features on a path, at most
        // the depth; n points integrate degree 2n - 1 exactly, and so does any rule with more.
        let (points, weights) = match POINTS.iter().find(|&&k| 2 * k >= depth) {
            Some(&k) => gauss_legendre(k),
            None => (Vec::new(), Vec::new()),
        };
        Ok(Self {
            trees,
            n_features,
            points,
            weights,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The raw score of one row: the sum of its leaves, in the trees' order as LightGBM adds
    /// them.
    pub fn predict(&self, row: &[f64]) -> f64 {
        debug_assert_eq!(row.len(), self.n_features);
        self.trees.iter().map(|tree| tree.leaf(row)).sum()
    }

    /// Each feature's SHAP value for one row, then the expected value: `n_features + 1`
    /// numbers, as LightGBM's `predict_contrib` gives them. `None` for a forest too deep for
    /// the quadrature kept here.
    pub fn contributions(&self, row: &[f64]) -> Option<Vec<f64>> {
        let mut out = vec![0.0; self.n_features + 1];
        match self.points.len() {
            2 => self.shap::<2>(row, &mut out),
            4 => self.shap::<4>(row, &mut out),
            6 => self.shap::<6>(row, &mut out),
            8 => self.shap::<8>(row, &mut out),
            MAX_POINTS => self.shap::<MAX_POINTS>(row, &mut out),
            _ => return None,
        }
        Some(out)
    }

    /// SHAP values with the forest's `K` quadrature points.
    fn shap<const K: usize>(&self, row: &[f64], out: &mut [f64]) {
        let mut walk = Walk::<K> {
            row,
            phi: out,
            points: std::array::from_fn(|k| self.points[k]),
            weights: std::array::from_fn(|k| self.weights[k]),
            path: Vec::with_capacity(32),
        };
        for tree in &self.trees {
            walk.phi[self.n_features] += tree.expected;
            if !tree.nodes.is_empty() {
                walk.visit(tree, 0, [1.0; K]);
            }
        }
    }
}

/// One row's walk through a tree: the features seen on the way down, with the merged
/// indicator `o` and cover `p` of their splits so far.
struct Walk<'a, const K: usize> {
    row: &'a [f64],
    phi: &'a mut [f64],
    points: [f64; K],
    weights: [f64; K],
    path: Vec<(usize, f64, f64)>,
}

impl<const K: usize> Walk<'_, K> {
    /// Walks below `node`, whose path's product at the quadrature points is `product`, adds
    /// each edge's share to its feature, and returns the sum of the leaves below, each leaf's
    /// value times its path's product.
    fn visit(&mut self, tree: &Tree, node: i32, product: [f64; K]) -> [f64; K] {
        if node < 0 {
            let value = tree.leaves[!node as usize];
            return product.map(|weight| weight * value);
        }
        let split = tree.nodes[node as usize];
        let feature = split.feature;
        let hot = split.next(self.row[feature], &tree.bitsets);
        // A feature split on higher up: its factor is replaced by the merged one below, and
        // the share the upper edge gave the leaves below is taken back.
        let earlier = self.path.iter().position(|entry| entry.0 == feature);
        let (one_before, cover_before) = earlier.map_or((1.0, 1.0), |at| {
            let (_, one, cover) = self.path[at];
            (one, cover)
        });
        let points = self.points;
        let factor = |one: f64, cover: f64| -> [f64; K] {
            std::array::from_fn(|k| one * points[k] + cover * (1.0 - points[k]))
        };
        let before = factor(one_before, cover_before);
        let mut total = [0.0; K];
        for (child, cover) in [
            (split.left, split.cover_left),
            (split.right, split.cover_right),
        ] {
            let one = if child == hot { one_before } else { 0.0 };
            let cover = cover_before * cover;
            if one == 0.0 && cover == 0.0 {
                // No training row and not the row's way: nothing below counts.
                continue;
            }
            let after = factor(one, cover);
            let below_product: [f64; K] =
                std::array::from_fn(|k| product[k] * after[k] / before[k]);
            match earlier {
                Some(at) => self.path[at] = (feature, one, cover),
                None => self.path.push((feature, one, cover)),
            }
            let below = self.visit(tree, child, below_product);
            match earlier {
                Some(at) => self.path[at] = (feature, one_before, cover_before),
                None => {
                    self.path.pop();
                }
            }
            let mut share = 0.0;
            for k in 0..K {
                share += self.weights[k]
                    * below[k]
                    * ((one - cover) / after[k] - (one_before - cover_before) / before[k]);
            }
            self.phi[feature] += share;
            for k in 0..K {
                total[k] += below[k];
            }
        }
        total
    }
}

/// Gauss-Legendre points and weights on [0, 1], by Newton's method on the Legendre polynomial.
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut points = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 0.0;
        for _ in 0..100 {
            let (mut previous, mut current) = (1.0, x);
            for k in 2..=n {
                let k = k as f64;
                let next = ((2.0 * k - 1.0) * x * current - (k - 1.0) * previous) / k;
                previous = current;
                current = next;
            }
            derivative = n as f64 * (x * current - previous) / (x * x - 1.0);
            let step = current / derivative;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        points.push((1.0 - x) / 2.0);
        weights.push(1.0 / ((1.0 - x * x) * derivative * derivative));
    }
    (points, weights)
}

/// One `Tree=` block of the text format (its number first).
fn parse_tree(block: &str, n_features: usize) -> Result<Tree, GbmError> {
    let number = block.lines().next().unwrap_or_default().trim().to_owned();
    let bad = |what: &str| GbmError(format!("tree {number}: {what}"));
    let value = |key: &str| {
        block
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
    };
    fn list<T: std::str::FromStr>(text: Option<&str>) -> Option<Vec<T>> {
        text.unwrap_or_default()
            .split_whitespace()
            .map(|item| item.parse().ok())
            .collect()
    }
    if value("is_linear").is_some_and(|linear| linear.trim() != "0") {
        return Err(bad("a linear tree"));
    }
    let n_leaves: usize = value("num_leaves")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| bad("no num_leaves"))?;
    let leaves: Vec<f64> = list(value("leaf_value")).ok_or_else(|| bad("leaf_value"))?;
    if leaves.len() != n_leaves || n_leaves == 0 {
        return Err(bad("leaf_value does not give every leaf"));
    }
    if n_leaves == 1 {
        return Ok(Tree {
            nodes: Vec::new(),
            expected: leaves[0],
            leaves,
            bitsets: Vec::new(),
        });
    }
    let n_nodes = n_leaves - 1;
    let features: Vec<usize> = list(value("split_feature")).ok_or_else(|| bad("split_feature"))?;
    let thresholds: Vec<f64> = list(value("threshold")).ok_or_else(|| bad("threshold"))?;
    let decisions: Vec<u8> = list(value("decision_type")).ok_or_else(|| bad("decision_type"))?;
    let lefts: Vec<i32> = list(value("left_child")).ok_or_else(|| bad("left_child"))?;
    let rights: Vec<i32> = list(value("right_child")).ok_or_else(|| bad("right_child"))?;
    let leaf_counts: Vec<f64> = list(value("leaf_count")).ok_or_else(|| bad("leaf_count"))?;
    let node_counts: Vec<f64> =
        list(value("internal_count")).ok_or_else(|| bad("internal_count"))?;
    let boundaries: Vec<usize> = list(value("cat_boundaries")).unwrap_or_default();
    let bitsets: Vec<u32> = list(value("cat_threshold")).unwrap_or_default();
    let lengths = [
        features.len(),
        thresholds.len(),
        decisions.len(),
        lefts.len(),
        rights.len(),
        node_counts.len(),
    ];
    if lengths.iter().any(|&length| length != n_nodes) || leaf_counts.len() != n_leaves {
        return Err(bad("arrays of unequal lengths"));
    }
    let count = |child: i32| -> Option<f64> {
        if child < 0 {
            leaf_counts.get(!child as usize).copied()
        } else {
            node_counts.get(child as usize).copied()
        }
    };
    let mut nodes = Vec::with_capacity(n_nodes);
    for index in 0..n_nodes {
        let (left, right) = (lefts[index], rights[index]);
        let valid = |child: i32| {
            if child < 0 {
                (!child as usize) < n_leaves
            } else {
                (child as usize) < n_nodes && child as usize > index
            }
        };
        if !valid(left) || !valid(right) || features[index] >= n_features {
            return Err(bad("a child or feature out of range"));
        }
        let decision = decisions[index];
        let split = if decision & 1 == 1 {
            let set = thresholds[index] as usize;
            let (start, end) = match (boundaries.get(set), boundaries.get(set + 1)) {
                (Some(&start), Some(&end)) if start <= end && end <= bitsets.len() => (start, end),
                _ => return Err(bad("a category set out of range")),
            };
            Split::Categorical {
                start,
                words: end - start,
            }
        } else {
            Split::Numeric {
                missing: match (decision >> 2) & 3 {
                    0 => Missing::None,
                    1 => Missing::Zero,
                    _ => Missing::NaN,
                },
                default_left: decision & 2 == 2,
            }
        };
        let total = node_counts[index];
        let share = |child: i32| count(child).unwrap_or(0.0) / total;
        nodes.push(Node {
            feature: features[index],
            threshold: thresholds[index],
            split,
            left,
            right,
            cover_left: share(left),
            cover_right: share(right),
        });
    }
    let total = node_counts[0];
    let expected = leaves
        .iter()
        .zip(&leaf_counts)
        .map(|(value, count)| count / total * value)
        .sum();
    Ok(Tree {
        nodes,
        leaves,
        expected,
        bitsets,
    })
}

#[cfg(test)]
mod tests {
    use super::super::gbm::{self, Gbm, TrainingSet};
    use super::*;

    /// Rows that reach every branch: each feature at one of its thresholds, just past it,
    /// missing, zero, a negative or an out-of-range category.
    fn probing_rows(text: &str, n_features: usize, n_rows: usize, seed: u64) -> Vec<f64> {
        let mut thresholds = vec![Vec::new(); n_features];
        for (features, values) in text
            .lines()
            .filter(|line| line.starts_with("split_feature="))
            .zip(text.lines().filter(|line| line.starts_with("threshold=")))
        {
            let features = features.trim_start_matches("split_feature=").split(' ');
            let values = values.trim_start_matches("threshold=").split(' ');
            for (feature, value) in features.zip(values) {
                if let (Ok(feature), Ok(value)) = (feature.parse::<usize>(), value.parse::<f64>()) {
                    thresholds[feature].push(value);
                }
            }
        }
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut rows = Vec::with_capacity(n_rows * n_features);
        for _ in 0..n_rows {
            for known in &thresholds {
                let pick = known
                    .get(next() % known.len().max(1))
                    .copied()
                    .unwrap_or(1.0);
                rows.push(match next() % 10 {
                    0 => f64::NAN,
                    1 => 0.0,
                    2 => -1.0,
                    3 => pick,
                    4 => (next() % 40) as f64,
                    _ => pick + (next() % 3) as f64 * 1e-7 - 1e-7,
                });
            }
        }
        rows
    }

    fn held_equal(text: &str, n_rows: usize) {
        let lightgbm = Gbm::from_text(text).unwrap();
        assert!(lightgbm.walks_in_rust(), "the forest reads the model");
        let forest = Forest::from_text(text).unwrap();
        let n = forest.n_features();
        assert_eq!(n, lightgbm.n_features());
        let rows = probing_rows(text, n, n_rows, 7);
        let expected = lightgbm.predict_lightgbm(&rows).unwrap();
        let contributions = lightgbm.contributions_lightgbm(&rows).unwrap();
        for (index, row) in rows.chunks(n).enumerate() {
            let predicted = forest.predict(row);
            assert!(
                (predicted - expected[index]).abs() <= 1e-9 * expected[index].abs().max(1.0),
                "row {index}: {predicted} against LightGBM's {}",
                expected[index]
            );
            let ours = forest.contributions(row).unwrap();
            let theirs = &contributions[index * (n + 1)..(index + 1) * (n + 1)];
            for (slot, (a, b)) in ours.iter().zip(theirs).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "row {index}, feature {slot}: {a} against LightGBM's {b}"
                );
            }
        }
    }

    #[test]
    fn the_bundled_boosters_predict_and_explain_as_lightgbm_does() {
        for text in [
            include_str!("../../../data/models/bundled/p50.txt"),
            include_str!("../../../data/models/bundled/p90.txt"),
        ] {
            held_equal(text, 300);
        }
    }

    /// Categories, missing values by NaN and by zero, repeated splits on one feature in deep
    /// trees, and a one-leaf tree at the end.
    #[test]
    fn categories_missing_values_and_repeated_features_are_walked_as_lightgbm_does() {
        let n_rows = 3_000;
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for row in 0..n_rows {
            let code = (row % 7) as f64;
            let x = (row % 113) as f64 / 113.0;
            let y = if row % 5 == 0 {
                f64::NAN
            } else {
                (row % 31) as f64
            };
            let z = if row % 3 == 0 { 0.0 } else { (row % 17) as f64 };
            features.extend([x, code, y, z]);
            let effect = [0.0, 4.0, -2.0, 4.0, 9.0, -6.0, 1.0][row % 7];
            labels.push((10.0 * effect + 30.0 * (x * 6.0).sin() + y.max(0.0) + z) as f32);
        }
        let set = TrainingSet {
            features: &features,
            labels: &labels,
            weights: None,
            feature_names: &["x", "code", "y", "z"],
        };
        for booster in [
            "objective=regression num_leaves=31 max_depth=9",
            "objective=quantile alpha=0.9 num_leaves=15",
            "objective=regression_l1 num_leaves=63 zero_as_missing=true",
        ] {
            let text = gbm::train(
                &set,
                "max_bin=63 categorical_feature=1 verbosity=-1",
                &format!(
                    "{booster} learning_rate=0.2 num_threads=1 verbosity=-1 min_data_in_leaf=5 \
                     deterministic=true"
                ),
                60,
                |_| {},
            )
            .unwrap();
            assert!(text.contains("num_cat=1"), "{booster}: categorical splits");
            held_equal(&text, 400);
        }
    }

    #[test]
    fn what_is_not_walked_here_is_refused() {
        let text = include_str!("../../../data/models/bundled/p50.txt");
        let binary = text.replacen("objective=regression_l1", "objective=binary", 1);
        assert!(Forest::from_text(&binary).is_err());
        let linear = text.replacen("is_linear=0", "is_linear=1", 1);
        assert!(Forest::from_text(&linear).is_err());
        assert!(Forest::from_text("tree\nversion=v4\n").is_err());
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for n in (1..=MAX_POINTS).chain(POINTS) {
            let (points, weights) = gauss_legendre(n);
            for degree in 0..2 * n {
                let integral: f64 = points
                    .iter()
                    .zip(&weights)
                    .map(|(t, w)| w * t.powi(degree as i32))
                    .sum();
                let exact = 1.0 / (degree as f64 + 1.0);
                assert!(
                    (integral - exact).abs() < 1e-13,
                    "{n} points, degree {degree}"
                );
            }
        }
    }
}
