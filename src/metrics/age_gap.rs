//! Age-gap analysis: any pair-based result whose images carry ages, broken down by the age gap
//! of the pair, at one operating threshold chosen on all pairs (docs/protocols.md §5.2).

use super::bootstrap::{interval, over_resamples, BootstrapSpec, CellCounts, Interval};
use serde::{Deserialize, Serialize};

/// Inclusive range of age gaps in years; `hi = None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapBin {
    pub lo: u32,
    pub hi: Option<u32>,
}

impl GapBin {
    pub fn contains(&self, gap: u32) -> bool {
        gap >= self.lo && self.hi.is_none_or(|hi| gap <= hi)
    }

    pub fn label(&self) -> String {
        match self.hi {
            Some(hi) => format!("{}–{}", self.lo, hi),
            None => format!("{}+", self.lo),
        }
    }
}

/// 0–4, 5–9, 10–19, 20–29, 30+ years.
pub fn default_bins() -> Vec<GapBin> {
    [(0, Some(4)), (5, Some(9)), (10, Some(19)), (20, Some(29)), (30, None)]
        .into_iter()
        .map(|(lo, hi)| GapBin { lo, hi })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapBinResult {
    #[serde(flatten)]
    pub bin: GapBin,
    pub n_genuine: usize,
    pub n_impostor: usize,
    /// Genuine pairs accepted at the threshold (null without genuine pairs).
    pub tar: Option<f64>,
    /// Impostor pairs accepted at the threshold (null without impostor pairs).
    pub far: Option<f64>,
    /// (accepted genuine + rejected impostors) / pairs in the bin.
    pub accuracy: Option<f64>,
    pub mean_genuine_score: Option<f64>,
    /// Bootstrap interval of `tar` (clusters as in the run's bootstrap).
    pub tar_interval: Option<Interval>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgeGapBreakdown {
    /// Accept iff score >= threshold; chosen on all pairs by the strict rule at `operating_far`.
    pub threshold: f64,
    pub operating_far: f64,
    pub bins: Vec<GapBinResult>,
    /// Pairs whose gap falls in no bin.
    pub unbinned: usize,
}

fn rate(hits: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| hits as f64 / n as f64)
}

/// Breakdown of `scores` by `gaps` at `threshold`. `clusters` (with `n_clusters`) drive the
/// bootstrap of each bin's TAR.
#[allow(clippy::too_many_arguments)]
pub fn age_gap_breakdown(
    scores: &[f64],
    genuine: &[bool],
    gaps: &[u32],
    bins: &[GapBin],
    threshold: f64,
    operating_far: f64,
    clusters: &[u32],
    n_clusters: usize,
    spec: &BootstrapSpec,
) -> AgeGapBreakdown {
    let bin_of: Vec<Option<usize>> = gaps.iter().map(|&g| bins.iter().position(|b| b.contains(g))).collect();
    let mut cells = CellCounts::new(bins.len());
    for i in 0..scores.len() {
        if let Some(b) = bin_of[i] {
            cells.add(clusters[i], b, genuine[i], scores[i] >= threshold);
        }
    }
    let counts = |w: Option<&[u32]>| cells.totals(w);
    let full = counts(None);
    let identity: Vec<u32> = (0..n_clusters as u32).collect();
    let samples = over_resamples(&identity, n_clusters, spec, |w| {
        counts(Some(w)).iter().map(|c| rate(c[1], c[0]).unwrap_or(f64::NAN)).collect::<Vec<f64>>()
    });
    let results = bins
        .iter()
        .enumerate()
        .map(|(b, bin)| {
            let [g, ga, i, ia] = full[b];
            let sum: f64 = (0..scores.len()).filter(|&k| bin_of[k] == Some(b) && genuine[k]).map(|k| scores[k]).sum();
            let tar = rate(ga, g);
            GapBinResult {
                bin: *bin,
                n_genuine: g as usize,
                n_impostor: i as usize,
                tar,
                far: rate(ia, i),
                accuracy: rate(ga + (i - ia), g + i),
                mean_genuine_score: (g > 0).then(|| sum / g as f64),
                tar_interval: tar.map(|t| interval(t, samples.iter().map(|s| s[b]).collect(), spec.confidence)),
            }
        })
        .collect();
    AgeGapBreakdown { threshold, operating_far, bins: results, unbinned: bin_of.iter().filter(|b| b.is_none()).count() }
}

/// Age from a file name in the AgeDB (`<id>_<name>_<age>_<gender>.jpg`) or FG-NET
/// (`001A02.JPG`, `001A02a.JPG`) convention; the directory part is ignored.
pub fn age_from_name(key: &str) -> Option<u32> {
    let name = key.rsplit('/').next()?;
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    // FG-NET: three digits, 'A' or 'a', two digits, optional letter.
    let b = stem.as_bytes();
    if b.len() >= 6 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b'A' || b[3] == b'a') {
        let rest = &stem[4..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let tail = &rest[digits.len()..];
        if digits.len() == 2 && (tail.is_empty() || (tail.len() == 1 && tail.chars().all(|c| c.is_ascii_alphabetic())))
        {
            return digits.parse().ok();
        }
    }
    // AgeDB: the second-to-last '_' field is the age, the last is the gender (m/f).
    let mut parts = stem.rsplit('_');
    let gender = parts.next()?;
    let age = parts.next()?;
    if matches!(gender, "m" | "f" | "M" | "F") && parts.next().is_some() {
        return age.parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_from_real_naming_conventions() {
        assert_eq!(age_from_name("FGNET/images/001A02.JPG"), Some(2));
        assert_eq!(age_from_name("078A11a.JPG"), Some(11));
        assert_eq!(age_from_name("0_MariaCallas_35_f.jpg"), Some(35));
        assert_eq!(age_from_name("12013_SophiaLoren_71_f.jpg"), Some(71));
        assert_eq!(age_from_name("Aaron_Peirsol/Aaron_Peirsol_0001.jpg"), None);
        assert_eq!(age_from_name("17"), None);
    }

    #[test]
    fn bins_are_inclusive_and_open_ended() {
        let b = default_bins();
        let idx = |g| b.iter().position(|x| x.contains(g));
        assert_eq!(
            (idx(0), idx(4), idx(5), idx(29), idx(30), idx(90)),
            (Some(0), Some(0), Some(1), Some(3), Some(4), Some(4))
        );
        assert_eq!(b[4].label(), "30+");
    }
}
