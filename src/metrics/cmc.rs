//! Cumulative match characteristic from exact ranks (MegaFace, docs/protocols.md §4.2).
//!
//! A rank is the number of gallery items scoring strictly higher than the mate (0 = first place;
//! ties go to the mate). CMC(k) = fraction of searches whose rank is < k.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmcPoint {
    /// 1-based rank k.
    pub rank: u64,
    pub identification_rate: f64,
}

/// Ranks sorted ascending, with CMC queries in O(log n).
#[derive(Debug, Clone)]
pub struct Cmc {
    ranks: Vec<u64>,
}

impl Cmc {
    pub fn new(mut ranks: Vec<u64>) -> Self {
        ranks.sort_unstable();
        Cmc { ranks }
    }

    pub fn searches(&self) -> usize {
        self.ranks.len()
    }

    /// CMC(k) for 1-based k; `None` without searches.
    pub fn at(&self, k: u64) -> Option<f64> {
        (!self.ranks.is_empty()).then(|| self.ranks.partition_point(|&r| r < k) as f64 / self.ranks.len() as f64)
    }

    pub fn points(&self, ks: &[u64]) -> Vec<CmcPoint> {
        ks.iter().filter_map(|&k| self.at(k).map(|v| CmcPoint { rank: k, identification_rate: v })).collect()
    }

    /// The whole curve: one point per distinct rank r, at k = r + 1 (where CMC steps up), up to
    /// the worst rank, where it reaches 1.
    pub fn curve(&self) -> Vec<CmcPoint> {
        let n = self.ranks.len() as f64;
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.ranks.len() {
            let r = self.ranks[i];
            i += self.ranks[i..].partition_point(|&x| x == r);
            out.push(CmcPoint { rank: r + 1, identification_rate: i as f64 / n });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        let c = Cmc::new(vec![0, 3, 0, 1, 9]);
        assert_eq!(c.at(1), Some(0.4));
        assert_eq!(c.at(2), Some(0.6));
        assert_eq!(c.at(4), Some(0.8));
        assert_eq!(c.at(10), Some(1.0));
        let curve: Vec<(u64, f64)> = c.curve().iter().map(|p| (p.rank, p.identification_rate)).collect();
        assert_eq!(curve, vec![(1, 0.4), (2, 0.6), (4, 0.8), (10, 1.0)]);
        assert_eq!(Cmc::new(vec![]).at(1), None);
    }
}
