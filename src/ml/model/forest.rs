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
//! The integrand is a polynomial of degree below the number of distinct features on the path,
//! so a Gauss-Legendre rule of half that many points integrates it exactly; each tree is
//! walked with the fewest points its widest path needs. Walking down, each node carries the product at
//! those points; walking back up, each node returns the sum over its leaves of the leaf value
//! times that product, and each edge adds its feature's share (Linear TreeSHAP, Yu et al.,
//! NeurIPS 2022, with the polynomials held as their values at the quadrature points). The
//! answers equal LightGBM's `predict_contrib` to rounding: a test holds them to 1e-9.

use super::gbm::GbmError;

/// LightGBM's zero threshold for missing-as-zero splits (`kZeroThreshold`, a float).
const ZERO: f64 = 1e-35_f32 as f64;

/// The most quadrature points a walk takes: SHAP values are given for trees whose paths test
/// up to twice as many distinct features (wider forests are left to LightGBM).
const MAX_POINTS: usize = 8;

/// One booster's trees.
#[derive(Debug, Clone)]
pub struct Forest {
    trees: Vec<Tree>,
    n_features: usize,
    /// The trees by the number of quadrature points they need; `None` when one needs more
    /// than `MAX_POINTS`.
    rules: Option<Vec<Rule>>,
}

/// A Gauss-Legendre rule on [0, 1] and the trees it integrates exactly.
#[derive(Debug, Clone)]
struct Rule {
    points: Vec<f64>,
    weights: Vec<f64>,
    trees: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
    /// Shares of each node's training rows that went left and right: the SHAP values' alone,
    /// kept apart so that a prediction's walk reads two nodes a cache line.
    covers: Vec<[f64; 2]>,
    leaves: Vec<f64>,
    /// The training rows' average of the tree's output (its leaves weighed by their counts).
    expected: f64,
    /// Categorical splits' category sets, 32 categories a word.
    bitsets: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    /// A child: a node's index, or `!leaf` for a leaf (LightGBM's own encoding).
    left: i32,
    right: i32,
    split: Split,
}

#[derive(Debug, Clone, Copy)]
enum Split {
    Numeric {
        missing: Missing,
        default_left: bool,
    },
    /// The categories that go left: `bitsets[start..start + words]`.
    Categorical { start: u32, words: u32 },
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
                // Written without branches: which way a row goes is data, and a mispredicted
                // branch at every node cost more than the walk (the three boosters took as
                // long as LightGBM's fast path with them, on rows that vary).
                let nan = value.is_nan();
                let is_missing = (missing == Missing::NaN && nan)
                    | (missing == Missing::Zero && (value == 0.0 || nan));
                // NaN compares false: without a missing type it goes where 0 would.
                let value = if nan { 0.0 } else { value };
                let left = (is_missing && default_left) | (!is_missing && value <= self.threshold);
                [self.right, self.left][usize::from(left)]
            }
            Split::Categorical { start, words } => {
                // LightGBM truncates the value to an integer category (-0.5 is category 0).
                let category = value as i64;
                if value.is_nan() || category < 0 {
                    return self.right;
                }
                let category = category as usize;
                let word = category / 32;
                if word < words as usize
                    && (bitsets[start as usize + word] >> (category % 32)) & 1 == 1
                {
                    self.left
                } else {
                    self.right
                }
            }
        }
    }
}

impl Tree {
    /// A tree of one leaf worth nothing: it pads a forest to whole groups of `LANES`, and adds
    /// 0.0 to a sum, which changes none.
    fn nothing() -> Self {
        Self {
            nodes: Vec::new(),
            covers: Vec::new(),
            leaves: vec![0.0],
            expected: 0.0,
            bitsets: Vec::new(),
        }
    }

    /// The most distinct features a path of the tree tests.
    fn widest_path(&self) -> usize {
        fn below(tree: &Tree, node: i32, path: &mut Vec<u32>) -> usize {
            if node < 0 {
                return path.len();
            }
            let split = &tree.nodes[node as usize];
            let new = !path.contains(&split.feature);
            if new {
                path.push(split.feature);
            }
            let widest = below(tree, split.left, path).max(below(tree, split.right, path));
            if new {
                path.pop();
            }
            widest
        }
        if self.nodes.is_empty() {
            0
        } else {
            below(self, 0, &mut Vec::new())
        }
    }
}

/// How many trees a prediction walks at once: each step down a tree waits for the node it
/// reads, and the walks of other trees fill that wait.
const LANES: usize = 6;

/// The leaf value each of `trees` gives `row`, their walks taken a level at a time together.
fn leaves_of(trees: &[Tree; LANES], row: &[f64]) -> [f64; LANES] {
    // A one-leaf tree starts at its leaf (`!0`); a walk at its leaf waits for the others.
    let mut nodes: [i32; LANES] =
        std::array::from_fn(|lane| -i32::from(trees[lane].nodes.is_empty()));
    while nodes.iter().any(|&node| node >= 0) {
        for (node, tree) in nodes.iter_mut().zip(trees) {
            if *node >= 0 {
                let split = &tree.nodes[*node as usize];
                *node = split.next(row[split.feature as usize], &tree.bitsets);
            }
        }
    }
    std::array::from_fn(|lane| trees[lane].leaves[!nodes[lane] as usize])
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
        let mut trees = body
            .split("\nTree=")
            .map(|block| parse_tree(block, n_features))
            .collect::<Result<Vec<_>, _>>()?;
        // The integrand's degree is below the number of distinct features on a path; n points
        // integrate degree 2n - 1 exactly.
        let mut by_points: Vec<Vec<usize>> = vec![Vec::new(); MAX_POINTS + 1];
        let mut too_wide = false;
        for (index, tree) in trees.iter().enumerate() {
            let needed = tree.widest_path().div_ceil(2).max(1);
            match by_points.get_mut(needed) {
                Some(group) => group.push(index),
                None => too_wide = true,
            }
        }
        let rules = (!too_wide).then(|| {
            by_points
                .into_iter()
                .enumerate()
                .filter(|(_, trees)| !trees.is_empty())
                .map(|(n, trees)| {
                    let (points, weights) = gauss_legendre(n);
                    Rule {
                        points,
                        weights,
                        trees,
                    }
                })
                .collect()
        });
        // After the rules: SHAP values never walk the padding.
        trees.resize_with(trees.len().next_multiple_of(LANES), Tree::nothing);
        Ok(Self {
            trees,
            n_features,
            rules,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The raw score of one row: the sum of its leaves, added six trees at a time rather than
    /// in LightGBM's order, so equal to its score to within rounding.
    pub fn predict(&self, row: &[f64]) -> f64 {
        debug_assert_eq!(row.len(), self.n_features);
        self.trees
            .chunks_exact(LANES)
            .map(|group| {
                let group: &[Tree; LANES] = group.try_into().expect("trees padded to LANES");
                leaves_of(group, row).iter().sum::<f64>()
            })
            .sum()
    }

    /// Each feature's SHAP value for one row, then the expected value: `n_features + 1`
    /// numbers, as LightGBM's `predict_contrib` gives them. `None` for a forest too wide for
    /// the quadrature kept here.
    pub fn contributions(&self, row: &[f64]) -> Option<Vec<f64>> {
        let rules = self.rules.as_ref()?;
        let mut out = vec![0.0; self.n_features + 1];
        out[self.n_features] = self.trees.iter().map(|tree| tree.expected).sum();
        for rule in rules {
            match rule.points.len() {
                1 => self.shap::<1>(rule, row, &mut out),
                2 => self.shap::<2>(rule, row, &mut out),
                3 => self.shap::<3>(rule, row, &mut out),
                4 => self.shap::<4>(rule, row, &mut out),
                5 => self.shap::<5>(rule, row, &mut out),
                6 => self.shap::<6>(rule, row, &mut out),
                7 => self.shap::<7>(rule, row, &mut out),
                MAX_POINTS => self.shap::<MAX_POINTS>(rule, row, &mut out),
                _ => unreachable!("rules have 1 to {MAX_POINTS} points"),
            }
        }
        Some(out)
    }

    /// The SHAP values of `rule`'s trees, with its `K` quadrature points.
    fn shap<const K: usize>(&self, rule: &Rule, row: &[f64], out: &mut [f64]) {
        let points: [f64; K] = std::array::from_fn(|k| rule.points[k]);
        let mut walk = Walk::<K> {
            row,
            integrands: vec![[0.0; K]; self.n_features],
            points,
            path: vec![None; self.n_features],
        };
        for &index in &rule.trees {
            let tree = &self.trees[index];
            if !tree.nodes.is_empty() {
                walk.visit(tree, 0, [1.0; K]);
            }
        }
        for (phi, integrand) in out.iter_mut().zip(&walk.integrands) {
            *phi += (0..K).map(|k| rule.weights[k] * integrand[k]).sum::<f64>();
        }
    }
}

/// One row's walk through a tree: the features seen on the way down, each with whether the
/// row has followed all of its splits so far (`o` is 1) and the share of training rows that
/// did (`p`).
struct Walk<'a, const K: usize> {
    row: &'a [f64],
    /// Each feature's integrand at the points, summed over the edges that split on it: the
    /// weighted sum is taken once a walk of every tree is done, not at each edge.
    integrands: Vec<[f64; K]>,
    points: [f64; K],
    /// By feature: how the path above the node being visited has split on it, if it has.
    path: Vec<Option<Seen>>,
}

#[derive(Clone, Copy)]
struct Seen {
    followed: bool,
    cover: f64,
}

impl<const K: usize> Walk<'_, K> {
    /// Walks below the split `node`, whose path's product at the quadrature points is `product`, adds
    /// each edge's share to its feature's integrand, and returns the sum of the leaves below,
    /// each leaf's value times its path's product.
    ///
    /// An edge replaces its feature's factor `o t + p (1 - t)` by the merged one below and
    /// gives the feature `∫ leaves below x ((o - p) / factor after - (o - p) / factor before)`.
    /// A feature the row has left needs no division (its ratio is the child's cover, its share
    /// nothing); the time goes to the walk itself more than to the points (one point instead
    /// of five saved 8%), so leaves are read without a call and the path is kept by
    /// feature.
    fn visit(&mut self, tree: &Tree, node: i32, product: [f64; K]) -> [f64; K] {
        let split = tree.nodes[node as usize];
        let feature = split.feature;
        let [cover_left, cover_right] = tree.covers[node as usize];
        let children = [(split.left, cover_left), (split.right, cover_right)];
        let earlier = self.path[feature as usize];
        let before = earlier.unwrap_or(Seen {
            followed: true,
            cover: 1.0,
        });
        let mut total = [0.0; K];
        if !before.followed {
            // Left on both sides: each child scales the product by its share of the node's
            // rows, and the share of a left feature does not depend on its cover.
            for (child, share) in children {
                let cover = before.cover * share;
                if cover == 0.0 {
                    continue;
                }
                let below = self.below(tree, child, feature, Seen { cover, ..before }, |k| {
                    product[k] * share
                });
                (0..K).for_each(|k| total[k] += below[k]);
            }
            return total;
        }
        let t = self.points;
        // 1 / factor before, and the share the upper edge gave (nothing above: factor 1, o = p).
        let (inverse_before, share_before) = if earlier.is_some() {
            let inverse: [f64; K] =
                std::array::from_fn(|k| 1.0 / (t[k] + before.cover * (1.0 - t[k])));
            (
                inverse,
                inverse.map(|inverse| (1.0 - before.cover) * inverse),
            )
        } else {
            ([1.0; K], [0.0; K])
        };
        let hot = split.next(self.row[feature as usize], &tree.bitsets);
        for (child, cover) in children {
            let cover = before.cover * cover;
            let followed = child == hot;
            if !followed && cover == 0.0 {
                // No training row and not the row's way: nothing below counts.
                continue;
            }
            // One formula for both children (`o` is 1 or 0): which is the row's way is a coin
            // toss to the branch predictor.
            let one = f64::from(u8::from(followed));
            let after: [f64; K] = std::array::from_fn(|k| one * t[k] + cover * (1.0 - t[k]));
            let seen = Seen { followed, cover };
            let below = self.below(tree, child, feature, seen, |k| {
                product[k] * after[k] * inverse_before[k]
            });
            let integrand = &mut self.integrands[feature as usize];
            for k in 0..K {
                integrand[k] += below[k] * ((one - cover) / after[k] - share_before[k]);
                total[k] += below[k];
            }
        }
        total
    }

    /// Visits `child` with `seen` on the path for `feature`, in place of what was there, and
    /// the product `product(k)` at each point.
    fn below(
        &mut self,
        tree: &Tree,
        child: i32,
        feature: u32,
        seen: Seen,
        product: impl Fn(usize) -> f64,
    ) -> [f64; K] {
        let product: [f64; K] = std::array::from_fn(product);
        if child < 0 {
            // A leaf: its value times its path's product, without a call.
            let value = tree.leaves[!child as usize];
            return product.map(|weight| weight * value);
        }
        let previous = self.path[feature as usize].replace(seen);
        let below = self.visit(tree, child, product);
        self.path[feature as usize] = previous;
        below
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
            covers: Vec::new(),
            expected: leaves[0],
            leaves,
            bitsets: Vec::new(),
        });
    }
    let arrays = Arrays {
        features: list(value("split_feature")).ok_or_else(|| bad("split_feature"))?,
        thresholds: list(value("threshold")).ok_or_else(|| bad("threshold"))?,
        decisions: list(value("decision_type")).ok_or_else(|| bad("decision_type"))?,
        lefts: list(value("left_child")).ok_or_else(|| bad("left_child"))?,
        rights: list(value("right_child")).ok_or_else(|| bad("right_child"))?,
        leaf_counts: list(value("leaf_count")).ok_or_else(|| bad("leaf_count"))?,
        node_counts: list(value("internal_count")).ok_or_else(|| bad("internal_count"))?,
        boundaries: list(value("cat_boundaries")).unwrap_or_default(),
    };
    let bitsets: Vec<u32> = list(value("cat_threshold")).unwrap_or_default();
    let (nodes, covers) = arrays
        .nodes(n_leaves, n_features, bitsets.len())
        .map_err(bad)?;
    let total = arrays.node_counts[0];
    let expected = leaves
        .iter()
        .zip(&arrays.leaf_counts)
        .map(|(value, count)| count / total * value)
        .sum();
    Ok(Tree {
        nodes,
        covers,
        leaves,
        expected,
        bitsets,
    })
}

/// A tree's arrays as the text format lists them, a value a node (or a leaf).
struct Arrays {
    features: Vec<usize>,
    thresholds: Vec<f64>,
    decisions: Vec<u8>,
    lefts: Vec<i32>,
    rights: Vec<i32>,
    leaf_counts: Vec<f64>,
    node_counts: Vec<f64>,
    boundaries: Vec<usize>,
}

impl Arrays {
    /// The nodes and their covers, each child and category set checked to be in range.
    fn nodes(
        &self,
        n_leaves: usize,
        n_features: usize,
        n_words: usize,
    ) -> Result<(Vec<Node>, Vec<[f64; 2]>), &'static str> {
        let n_nodes = n_leaves - 1;
        let lengths = [
            self.features.len(),
            self.thresholds.len(),
            self.decisions.len(),
            self.lefts.len(),
            self.rights.len(),
            self.node_counts.len(),
        ];
        if lengths.iter().any(|&length| length != n_nodes) || self.leaf_counts.len() != n_leaves {
            return Err("arrays of unequal lengths");
        }
        let count = |child: i32| -> f64 {
            if child < 0 {
                self.leaf_counts[!child as usize]
            } else {
                self.node_counts[child as usize]
            }
        };
        let mut nodes = Vec::with_capacity(n_nodes);
        let mut covers = Vec::with_capacity(n_nodes);
        for index in 0..n_nodes {
            let (left, right) = (self.lefts[index], self.rights[index]);
            let valid = |child: i32| {
                if child < 0 {
                    (!child as usize) < n_leaves
                } else {
                    (child as usize) < n_nodes && child as usize > index
                }
            };
            if !valid(left) || !valid(right) || self.features[index] >= n_features {
                return Err("a child or feature out of range");
            }
            let total = self.node_counts[index];
            covers.push([count(left) / total, count(right) / total]);
            nodes.push(Node {
                threshold: self.thresholds[index],
                feature: self.features[index] as u32,
                left,
                right,
                split: self.split(index, n_words)?,
            });
        }
        Ok((nodes, covers))
    }

    /// Node `index`'s test, from its decision type's bits (`tree.h`: categorical, default
    /// left, the missing type).
    fn split(&self, index: usize, n_words: usize) -> Result<Split, &'static str> {
        let decision = self.decisions[index];
        if decision & 1 == 0 {
            return Ok(Split::Numeric {
                missing: match (decision >> 2) & 3 {
                    0 => Missing::None,
                    1 => Missing::Zero,
                    _ => Missing::NaN,
                },
                default_left: decision & 2 == 2,
            });
        }
        // A categorical split's threshold is the index of its category set.
        let set = self.thresholds[index] as usize;
        match (self.boundaries.get(set), self.boundaries.get(set + 1)) {
            (Some(&start), Some(&end)) if start <= end && end <= n_words => {
                Ok(Split::Categorical {
                    start: start as u32,
                    words: (end - start) as u32,
                })
            }
            _ => Err("a category set out of range"),
        }
    }
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
        for n in 1..=MAX_POINTS {
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
