//! Differential flame graphs: how a node changed from the baseline (side A).

use super::tree::Node;

/// Relative change of `node` from its baseline: `(total - baseline) / |baseline|`, so
/// `0.5` is +50%. With a zero baseline: `+∞` for a positive total, `-∞` for a negative
/// one, `0` when both are zero.
pub fn diff_ratio(node: &Node) -> f64 {
    let (value, baseline) = (node.total as f64, node.baseline_total as f64);
    if node.baseline_total == 0 {
        return match node.total.signum() {
            1 => f64::INFINITY,
            -1 => f64::NEG_INFINITY,
            _ => 0.0,
        };
    }
    (value - baseline) / baseline.abs()
}

/// Absolute change of `node` from its baseline (`total - baseline_total`), saturating.
pub fn diff_delta(node: &Node) -> i64 {
    node.total.saturating_sub(node.baseline_total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(total: i64, baseline_total: i64) -> Node {
        Node {
            total,
            baseline_total,
            ..Node::default()
        }
    }

    #[test]
    fn relative_and_absolute_change() {
        assert_eq!(diff_ratio(&node(150, 100)), 0.5);
        assert_eq!(diff_ratio(&node(50, 100)), -0.5);
        assert_eq!(diff_ratio(&node(0, 100)), -1.0);
        assert_eq!(diff_ratio(&node(100, 100)), 0.0);
        assert_eq!(diff_delta(&node(150, 100)), 50);
        assert_eq!(diff_delta(&node(0, 7)), -7);
        assert_eq!(diff_delta(&node(i64::MIN, 1)), i64::MIN);
    }

    #[test]
    fn zero_baseline() {
        assert_eq!(diff_ratio(&node(5, 0)), f64::INFINITY);
        assert_eq!(diff_ratio(&node(-5, 0)), f64::NEG_INFINITY);
        assert_eq!(diff_ratio(&node(0, 0)), 0.0);
    }
}
