//! Percentiles of recorded samples (nearest rank on the sorted samples).

use std::time::Duration;

/// Latency samples in milliseconds.
#[derive(Debug, Default)]
pub struct Samples {
    ms: Vec<f64>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.ms.push(d.as_secs_f64() * 1000.0);
    }

    pub fn len(&self) -> usize {
        self.ms.len()
    }

    /// The `p`th percentile (0..=100) in ms; 0 when empty.
    pub fn percentile(&mut self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return 0.0;
        }
        self.ms.sort_by(f64::total_cmp);
        let rank = (p / 100.0 * self.ms.len() as f64).ceil() as usize;
        self.ms[rank.clamp(1, self.ms.len()) - 1]
    }

    pub fn max(&mut self) -> f64 {
        self.percentile(100.0)
    }

    /// `p50_ms=.. p99_ms=.. max_ms=..` for the summary line.
    pub fn summary(&mut self, prefix: &str) -> String {
        format!(
            "{prefix}p50_ms={:.2} {prefix}p99_ms={:.2} {prefix}max_ms={:.2}",
            self.percentile(50.0),
            self.percentile(99.0),
            self.max()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert!((s.percentile(50.0) - 50.0).abs() < 1e-9);
        assert!((s.percentile(99.0) - 99.0).abs() < 1e-9);
        assert!((s.max() - 100.0).abs() < 1e-9);
        assert_eq!(Samples::default().percentile(99.0), 0.0);
    }
}
