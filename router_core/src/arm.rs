//! Arms and the table holding them. An arm is one (model, role, task_class); pooled parents use
//! role 0 ("all roles") and class `ALL_CLASSES`, and live in the same table.

use rustc_hash::FxHashMap;

use crate::drift::DriftState;
use crate::intern::Interner;
use crate::stats::{epoch_start, Sums};

/// Class id of the pooled (model) and (model, role) levels.
pub const ALL_CLASSES: u32 = u32::MAX;
/// Role number of the pooled model level.
pub const ALL_ROLES: u8 = 0;
/// Role bit of the retry arms: (model, role | RETRY, class) learns outcomes of attempts > 1, and
/// (model, role | RETRY, ALL_CLASSES) pools them per (model, role). See prior.rs.
pub const RETRY: u8 = 0x80;
/// Role bits of the retry arms split by how the job's failed attempts ran (see prior.rs
/// `effort_bit`): a retry after a failure that ran longer than its model typically does
/// (`EFFORT_HIGH`) is a harder task than one after a failure that stopped early (`EFFORT_LOW`).
/// Set only together with `RETRY`; roles are 1..=6, so the bits are free.
pub const EFFORT_HIGH: u8 = 0x40;
pub const EFFORT_LOW: u8 = 0x20;
/// Model name of the per-role hardness arms (model `HARDNESS`, role | RETRY, ALL_CLASSES): its
/// `successes` are the retries' observed successes and its `failures` the successes the normal
/// arms predicted for them, so successes / failures estimates how much harder a retry is. A
/// report's model is never empty, so the name cannot clash with a real model.
pub const HARDNESS: &str = "";
const NO_ARM: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArmKey {
    pub model: u32,
    pub role: u8,
    pub class: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Arm {
    pub sums: Sums,
    /// Per-process fast estimate for drift detection; not snapshotted (see drift.rs).
    pub drift: DriftState,
}

/// A log-ratio as a decision reads it: weight (decays) and the scale-invariant moments of ln r.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RatioHot {
    pub w: f64,
    pub mean: f64,
    pub var: f64,
}

/// What a decision reads of one arm, derived from its sums whenever they change and kept
/// contiguous per row (104 bytes), so scoring a row of 64 models streams through ~7 KB instead
/// of chasing 64 full arms. A missing arm reads as `Hot::default()`, which is "no evidence".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hot {
    pub successes: f64,
    pub failures: f64,
    pub latency_w: f64,
    pub latency_mean: f64,
    /// Input tokens, output tokens, cost (see `RATIO_IN`, `RATIO_OUT`, `RATIO_COST`).
    pub ratios: [RatioHot; 3],
}

pub const RATIO_IN: usize = 0;
pub const RATIO_OUT: usize = 1;
pub const RATIO_COST: usize = 2;

impl Hot {
    pub const EMPTY: Hot = Hot {
        successes: 0.0,
        failures: 0.0,
        latency_w: 0.0,
        latency_mean: 0.0,
        ratios: [RatioHot {
            w: 0.0,
            mean: 0.0,
            var: 0.0,
        }; 3],
    };

    pub fn of(s: &Sums) -> Self {
        let r = |l: &crate::stats::LogNormalSums| {
            let (mean, var) = l.moments();
            RatioHot {
                w: l.w.max(0.0),
                mean,
                var,
            }
        };
        Self {
            successes: s.successes.max(0.0),
            failures: s.failures.max(0.0),
            latency_w: s.latency.w.max(0.0),
            latency_mean: s.latency.mean().unwrap_or(0.0),
            ratios: [r(&s.ratio_in), r(&s.ratio_out), r(&s.cost_ratio)],
        }
    }
}

/// One (role, class) row: arm slot and hot view per model key.
#[derive(Debug, Clone, Default)]
pub struct Row {
    slots: Vec<u32>,
    hot: Vec<Hot>,
}

impl Row {
    /// The hot view of `model`'s arm in this row (`Hot::EMPTY` when it has none).
    #[inline]
    pub fn hot(&self, model: u32) -> &Hot {
        self.hot.get(model as usize).unwrap_or(&Hot::EMPTY)
    }
}

/// All arms, with rows keyed by (role, class) holding one slot per model key, so a decision
/// over N models does one hash lookup per pooling level instead of N.
#[derive(Debug, Clone, Default)]
pub struct ArmTable {
    pub models: Interner,
    pub classes: Interner,
    /// Start of the current weighting epoch; `None` until the first observation.
    pub t0: Option<f64>,
    arms: Vec<(ArmKey, Arm)>,
    rows: FxHashMap<(u8, u32), Row>,
}

static EMPTY_ROW: Row = Row {
    slots: Vec::new(),
    hot: Vec::new(),
};

impl ArmTable {
    /// A row with no arms (every model reads as "no evidence").
    pub fn empty_row() -> &'static Row {
        &EMPTY_ROW
    }

    /// The row of (role, class); an empty row when nothing was learned there.
    pub fn row(&self, role: u8, class: u32) -> &Row {
        self.rows.get(&(role, class)).unwrap_or(&EMPTY_ROW)
    }

    pub fn get(&self, key: ArmKey) -> Option<&Arm> {
        let row = self.rows.get(&(key.role, key.class))?;
        let slot = *row.slots.get(key.model as usize)?;
        (slot != NO_ARM).then(|| &self.arms[slot as usize].1)
    }

    /// Applies `f` to the arm of `key` (created empty if missing) and refreshes its hot view.
    pub fn with_arm<R>(&mut self, key: ArmKey, f: impl FnOnce(&mut Arm) -> R) -> R {
        let row = self.rows.entry((key.role, key.class)).or_default();
        let m = key.model as usize;
        if row.slots.len() <= m {
            row.slots.resize(m + 1, NO_ARM);
            row.hot.resize(m + 1, Hot::EMPTY);
        }
        if row.slots[m] == NO_ARM {
            row.slots[m] = self.arms.len() as u32;
            self.arms.push((key, Arm::default()));
        }
        let arm = &mut self.arms[row.slots[m] as usize].1;
        let out = f(arm);
        row.hot[m] = Hot::of(&arm.sums);
        out
    }

    /// Applies `f` to `model`'s arm in every class row of `role` (pooled levels excluded).
    pub fn for_each_class_arm(&mut self, model: u32, role: u8, mut f: impl FnMut(&mut Arm)) {
        for (&(r, class), row) in &mut self.rows {
            if r != role || class == ALL_CLASSES {
                continue;
            }
            let m = model as usize;
            if let Some(&slot) = row.slots.get(m).filter(|&&s| s != NO_ARM) {
                let arm = &mut self.arms[slot as usize].1;
                f(arm);
                row.hot[m] = Hot::of(&arm.sums);
            }
        }
    }

    /// Recomputes every hot view (after sums changed in bulk).
    fn refresh_all(&mut self) {
        for row in self.rows.values_mut() {
            for (m, &slot) in row.slots.iter().enumerate() {
                if slot != NO_ARM {
                    row.hot[m] = Hot::of(&self.arms[slot as usize].1.sums);
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ArmKey, Arm)> {
        self.arms.iter()
    }

    /// Number of (model, role, task_class) arms; pooled levels and retry arms not counted.
    pub fn leaf_count(&self) -> usize {
        self.arms
            .iter()
            .filter(|(k, _)| k.class != ALL_CLASSES && k.role & RETRY == 0)
            .count()
    }

    /// Drops learned sums but keeps interned names (the catalog's keys point into them).
    pub fn clear(&mut self) {
        self.arms.clear();
        self.rows.clear();
        self.t0 = None;
    }

    /// Moves to the epoch of `now` if it has started, shrinking all sums to the new t0, and
    /// returns the weight exp(λ·(now − t0)) of an observation made at `now`.
    pub fn weight_at(&mut self, now: f64, half_life_s: f64, lambda: f64) -> f64 {
        let start = epoch_start(now, half_life_s);
        match self.t0 {
            None => self.t0 = Some(start),
            Some(t0) if start > t0 => self.rebase(start, lambda),
            Some(_) => {}
        }
        let t0 = self.t0.unwrap_or(start);
        (lambda * (now - t0)).exp()
    }

    /// Multiplies all sums by exp(−λ·(t0_new − t0)); a no-op when t0_new is not later.
    pub fn rebase(&mut self, t0_new: f64, lambda: f64) {
        match self.t0 {
            Some(t0) if t0_new > t0 => {
                let f = (-lambda * (t0_new - t0)).exp();
                self.arms.iter_mut().for_each(|(_, a)| a.sums.scale(f));
                self.refresh_all();
                self.t0 = Some(t0_new);
            }
            Some(_) => {}
            None => self.t0 = Some(t0_new),
        }
    }

    /// Factor turning stored sums into evidence as seen at `now`: exp(λ·(t0 − now)), capped at 1
    /// so a caller with a lagging clock never sees more evidence than was observed.
    pub fn read_scale(&self, now: f64, lambda: f64) -> f64 {
        self.t0
            .map_or(1.0, |t0| (lambda * (t0 - now)).exp().min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_find_arms_by_model_key() {
        let mut t = ArmTable::default();
        let k = ArmKey {
            model: 3,
            role: 2,
            class: 7,
        };
        t.with_arm(k, |a| a.sums.successes = 1.0);
        assert_eq!(t.get(k).unwrap().sums.successes, 1.0);
        assert_eq!(t.row(2, 7).hot(3).successes, 1.0);
        assert_eq!(t.row(2, 7).hot(2), &Hot::EMPTY);
        assert!(t.get(ArmKey { model: 2, ..k }).is_none());
        assert!(t.get(ArmKey { model: 9, ..k }).is_none());
        assert_eq!(t.leaf_count(), 1);
    }

    #[test]
    fn rebase_keeps_decayed_evidence_equal() {
        let lambda = std::f64::consts::LN_2 / 100.0;
        let mut t = ArmTable::default();
        let w = t.weight_at(50.0, 100.0, lambda);
        let k = ArmKey {
            model: 0,
            role: 1,
            class: 0,
        };
        t.with_arm(k, |a| a.sums.successes += w);
        let before = t.iter().next().unwrap().1.sums.successes * t.read_scale(250.0, lambda);
        t.weight_at(250.0, 100.0, lambda);
        assert_eq!(t.t0, Some(200.0));
        let after = t.iter().next().unwrap().1.sums.successes * t.read_scale(250.0, lambda);
        assert!((before - after).abs() < 1e-12);
        assert!((before - 0.5f64.powi(2)).abs() < 1e-9, "{before}");
        assert_eq!(
            t.row(1, 0).hot(0).successes,
            t.get(k).unwrap().sums.successes
        );
    }
}
