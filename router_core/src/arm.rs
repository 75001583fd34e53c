//! Arms and the table holding them. An arm is one (model, role, task_class); pooled parents use
//! role 0 ("all roles") and class `ALL_CLASSES`, and live in the same table.

use rustc_hash::FxHashMap;

use crate::drift::DriftState;
use crate::intern::Interner;
use crate::stats::{epoch_start, LatencySums, RatioSums, Sums};

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

/// One arm as callers see and change it; the table stores it split (see `Row`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Arm {
    pub sums: Sums,
    /// Per-process fast estimate for drift detection; not snapshotted (see drift.rs).
    pub drift: DriftState,
}

/// A ratio as a decision reads it: weight (decays) and the scale-invariant means of ln r and r.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RatioHot {
    pub w: f64,
    /// Mean of ln r (the typical ratio is its exp).
    pub ln_mean: f64,
    /// Mean of r.
    pub mean: f64,
}

/// What a decision reads of one arm. Computed from the row's `HotSums` on every read (a handful
/// of divisions), so the table keeps each number once. A missing arm reads as `Hot::EMPTY`,
/// which is "no evidence".
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
            ln_mean: 0.0,
            mean: 0.0,
        }; 3],
    };

    pub fn of(s: &Sums) -> Self {
        HotSums::of(s).view()
    }
}

/// The sums a decision reads, stored contiguously per row (104 bytes), so scoring a row of 64
/// models streams through ~7 KB instead of chasing 64 whole arms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct HotSums {
    successes: f64,
    failures: f64,
    latency_w: f64,
    latency_wx: f64,
    ratios: [RatioSums; 3],
}

impl HotSums {
    fn of(s: &Sums) -> Self {
        Self {
            successes: s.successes,
            failures: s.failures,
            latency_w: s.latency.w,
            latency_wx: s.latency.wx,
            ratios: [s.ratio_in, s.ratio_out, s.cost_ratio],
        }
    }

    fn view(&self) -> Hot {
        let r = |l: &RatioSums| {
            let (ln_mean, mean) = l.means();
            RatioHot {
                w: l.w.max(0.0),
                ln_mean,
                mean,
            }
        };
        let latency = LatencySums {
            w: self.latency_w,
            wx: self.latency_wx,
            ..LatencySums::default()
        };
        Hot {
            successes: self.successes.max(0.0),
            failures: self.failures.max(0.0),
            latency_w: self.latency_w.max(0.0),
            latency_mean: latency.mean().unwrap_or(0.0),
            ratios: [r(&self.ratios[0]), r(&self.ratios[1]), r(&self.ratios[2])],
        }
    }
}

/// The rest of an arm: what the leaderboard, snapshots and the drift test read.
#[derive(Debug, Clone, Copy, Default)]
struct Cold {
    model: u32,
    /// tokens_w, input_plain, cached_plain, output_plain, cost_w, cost_plain: read only by the
    /// leaderboard's mean cost (a ratio of two of them), so stored in f32. Each is rounded to a
    /// relative 6e-8 when stored, so they add up across replicas to that precision rather than
    /// exactly; what decisions read stays f64.
    shown: [f32; 6],
    /// The latency log-sums stay f64: the p90's σ² is wl2/w − (wl/w)², which f32 would cancel
    /// to ±3e-6, a p90 off by ~0.3 % for an arm whose latency never varied.
    latency_wl: f64,
    latency_wl2: f64,
    drift: DriftStored,
}

/// f64 → f32 for storage; beyond f32's range it saturates rather than becoming infinite (a
/// snapshot must stay restorable).
fn narrow(x: f64) -> f32 {
    (x as f32).clamp(f32::MIN, f32::MAX)
}

/// `DriftState` as stored: its running estimates in f32 (36 bytes instead of 72). The test's
/// arithmetic stays in f64; only what carries over between outcomes is rounded, to a relative
/// 6e-8, far inside the noise of a window of ~`window` outcomes.
#[derive(Debug, Clone, Copy, Default)]
struct DriftStored {
    fast: [f32; 2],
    cusum: [f32; 2],
    run_down: [f32; 2],
    run_up: [f32; 2],
    flagged: bool,
}

impl From<DriftState> for DriftStored {
    fn from(d: DriftState) -> Self {
        let f = |x: f64| x as f32;
        Self {
            fast: [f(d.fast_successes), f(d.fast_failures)],
            cusum: [f(d.cusum_down), f(d.cusum_up)],
            run_down: [f(d.run_down.0), f(d.run_down.1)],
            run_up: [f(d.run_up.0), f(d.run_up.1)],
            flagged: d.flagged,
        }
    }
}

impl From<DriftStored> for DriftState {
    fn from(d: DriftStored) -> Self {
        let f = f64::from;
        Self {
            fast_successes: f(d.fast[0]),
            fast_failures: f(d.fast[1]),
            flagged: d.flagged,
            cusum_down: f(d.cusum[0]),
            cusum_up: f(d.cusum[1]),
            run_down: (f(d.run_down[0]), f(d.run_down[1])),
            run_up: (f(d.run_up[0]), f(d.run_up[1])),
        }
    }
}

/// One (role, class) row. Arms are stored densely in the order they were created, `hot` and
/// `cold` side by side. A row holds only the models learned in it (most classes see a few of the
/// catalog's models, and a journal row usually one), so an arm costs its 104 + 80 bytes, plus:
/// - in a row of at most `SMALL_ROW` arms, 4 bytes: `slots` lists the arms' model keys in order
///   and a lookup scans them (one cache line);
/// - in a larger row, 4 bytes per model key up to the highest one in the row: `slots` maps a
///   model key to its arm's index (`NO_ARM` where the model has none).
///
/// A dense table in every row cost a journal that forgot one model in 10,000 classes ~750
/// bytes per changed arm with 100 models (memory_bench's drift storm; see bench/README.md).
#[derive(Debug, Clone, Default)]
pub struct Row {
    slots: Vec<u32>,
    hot: Vec<HotSums>,
    cold: Vec<Cold>,
}

/// Rows with at most this many arms find a model by scanning their model keys.
const SMALL_ROW: usize = 8;

impl Row {
    /// The hot view of `model`'s arm in this row (`Hot::EMPTY` when it has none).
    #[inline]
    pub fn hot(&self, model: u32) -> Hot {
        self.index(model).map_or(Hot::EMPTY, |i| self.hot[i].view())
    }

    /// Appends the mean ln r of ratio `which` of every arm in this row that has evidence of it.
    pub fn ratio_means(&self, which: usize, out: &mut Vec<f64>) {
        out.extend(
            self.hot
                .iter()
                .map(|h| &h.ratios[which])
                .filter(|l| l.w > 0.0)
                .map(|l| l.means().0),
        );
    }

    #[inline]
    fn index(&self, model: u32) -> Option<usize> {
        if self.hot.len() <= SMALL_ROW {
            return self.slots.iter().position(|&m| m == model);
        }
        self.slots
            .get(model as usize)
            .filter(|&&i| i != NO_ARM)
            .map(|&i| i as usize)
    }

    /// The index of `model`'s arm, created empty if missing. A new row takes room for one arm
    /// (most rows of a journal never get a second) and doubles up to `SMALL_ROW`; larger rows
    /// grow by an eighth at a time rather than doubling: a million arms would otherwise leave up
    /// to half their memory unused (arms are created far more rarely than read, so the extra
    /// reallocations cost nothing).
    fn index_or_insert(&mut self, model: u32) -> usize {
        if let Some(i) = self.index(model) {
            return i;
        }
        let len = self.hot.len();
        if len == self.hot.capacity() {
            self.reserve(if len < SMALL_ROW {
                len.max(1)
            } else {
                (len / 8).max(2)
            });
        }
        let i = self.hot.len();
        self.hot.push(HotSums::default());
        self.cold.push(Cold {
            model,
            ..Cold::default()
        });
        if i < SMALL_ROW {
            self.slots.push(model);
            self.slots.shrink_to_fit();
            return i;
        }
        if i == SMALL_ROW {
            // The row outgrows its list of keys: from now on a table indexed by model key.
            for (j, m) in std::mem::take(&mut self.slots).into_iter().enumerate() {
                self.put_slot(m, j);
            }
        }
        self.put_slot(model, i);
        i
    }

    /// Points the slot table's entry for `model` at arm `i` (rows past `SMALL_ROW` arms).
    fn put_slot(&mut self, model: u32, i: usize) {
        let m = model as usize;
        if self.slots.len() <= m {
            self.slots.resize(m + 1, NO_ARM);
            self.slots.shrink_to_fit();
        }
        self.slots[m] = i as u32;
    }

    fn arm(&self, i: usize) -> Arm {
        let (h, c) = (&self.hot[i], &self.cold[i]);
        Arm {
            sums: Sums {
                successes: h.successes,
                failures: h.failures,
                ratio_in: h.ratios[0],
                ratio_out: h.ratios[1],
                cost_ratio: h.ratios[2],
                tokens_w: f64::from(c.shown[0]),
                input_plain: f64::from(c.shown[1]),
                cached_plain: f64::from(c.shown[2]),
                output_plain: f64::from(c.shown[3]),
                cost_w: f64::from(c.shown[4]),
                cost_plain: f64::from(c.shown[5]),
                latency: LatencySums {
                    w: h.latency_w,
                    wx: h.latency_wx,
                    wl: c.latency_wl,
                    wl2: c.latency_wl2,
                },
            },
            drift: c.drift.into(),
        }
    }

    fn set(&mut self, i: usize, a: &Arm) {
        let s = &a.sums;
        self.hot[i] = HotSums::of(s);
        let c = &mut self.cold[i];
        c.shown = [
            s.tokens_w,
            s.input_plain,
            s.cached_plain,
            s.output_plain,
            s.cost_w,
            s.cost_plain,
        ]
        .map(narrow);
        c.latency_wl = s.latency.wl;
        c.latency_wl2 = s.latency.wl2;
        c.drift = a.drift.into();
    }

    /// Applies `f` to the arm at `i` and stores it back.
    fn update<R>(&mut self, i: usize, f: impl FnOnce(&mut Arm) -> R) -> R {
        let mut arm = self.arm(i);
        let out = f(&mut arm);
        self.set(i, &arm);
        out
    }

    fn len(&self) -> usize {
        self.hot.len()
    }

    /// Model key of every arm in the row, in creation order.
    pub fn models(&self) -> impl Iterator<Item = u32> + '_ {
        self.cold.iter().map(|c| c.model)
    }

    /// Model key and arm of every arm in the row, in creation order.
    pub fn arms(&self) -> impl Iterator<Item = (u32, Arm)> + '_ {
        (0..self.len()).map(|i| (self.cold[i].model, self.arm(i)))
    }

    /// Room for `n` more arms, exactly.
    fn reserve(&mut self, n: usize) {
        self.hot.reserve_exact(n);
        self.cold.reserve_exact(n);
    }
}

/// All arms, in rows keyed by (role, class), so a decision over N models does one hash lookup
/// per pooling level instead of N.
#[derive(Debug, Clone, Default)]
pub struct ArmTable {
    pub models: Interner,
    pub classes: Interner,
    /// Start of the current weighting epoch; `None` until the first observation.
    pub t0: Option<f64>,
    rows: FxHashMap<(u8, u32), Row>,
    /// With `track_changes`: what `with_arm` and `for_each_class_arm` changed since the journal
    /// was last taken, as differences of the stored sums, keyed by this table's model and class
    /// ids (its own name tables stay empty; `with_journal` lends it this table's, so it encodes
    /// like a snapshot). Merges (`with_arm_untracked`) are not changes; a rebase scales the
    /// journal with the table. Shared learning sends it to the other replicas.
    journal: Option<Box<ArmTable>>,
}

static EMPTY_ROW: Row = Row {
    slots: Vec::new(),
    hot: Vec::new(),
    cold: Vec::new(),
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

    pub fn get(&self, key: ArmKey) -> Option<Arm> {
        let row = self.rows.get(&(key.role, key.class))?;
        row.index(key.model).map(|i| row.arm(i))
    }

    /// Applies `f` to the arm of `key` (created empty if missing) and stores it back; a change
    /// the journal records when changes are tracked.
    pub fn with_arm<R>(&mut self, key: ArmKey, f: impl FnOnce(&mut Arm) -> R) -> R {
        let row = self.rows.entry((key.role, key.class)).or_default();
        let i = row.index_or_insert(key.model);
        let Some(journal) = self.journal.as_deref_mut() else {
            return row.update(i, f);
        };
        let before = row.arm(i).sums;
        let out = row.update(i, f);
        let diff = row.arm(i).sums.minus(&before);
        journal.record(self.t0, key, &diff);
        out
    }

    /// `with_arm` for merges: never recorded in the journal.
    pub fn with_arm_untracked<R>(&mut self, key: ArmKey, f: impl FnOnce(&mut Arm) -> R) -> R {
        let row = self.rows.entry((key.role, key.class)).or_default();
        let i = row.index_or_insert(key.model);
        row.update(i, f)
    }

    /// Adds `diff` (sums of the owning table at its epoch `t0`) under `key`.
    fn record(&mut self, t0: Option<f64>, key: ArmKey, diff: &Sums) {
        if *diff == Sums::default() {
            return;
        }
        debug_assert!(
            self.t0.is_none() || self.t0 == t0,
            "journal and table epochs differ"
        );
        self.t0 = t0;
        self.with_arm_untracked(key, |a| a.sums.merge(diff));
    }

    /// From now on, every change is recorded in the journal (see `journal`).
    pub fn track_changes(&mut self) {
        if self.journal.is_none() {
            self.journal = Some(Box::default());
        }
    }

    /// Arms the journal holds: changed since it was last taken (every level counts); 0 when not
    /// tracking.
    pub fn journal_arms(&self) -> usize {
        self.journal
            .as_deref()
            .map_or(0, |j| j.rows.values().map(Row::len).sum())
    }

    /// Hands the changes recorded since the last call, with this table's names lent to them, to
    /// `f` (which encodes them), leaving an empty journal; `None` when not tracking.
    pub fn take_journal<R>(&mut self, f: impl FnOnce(&ArmTable) -> R) -> Option<R> {
        let mut out = None;
        self.with_journal(|j| {
            out = Some(f(j));
            j.clear(); // the sums; the lent names go back
        });
        out
    }

    /// Moves the changes recorded since the last call out of the table, with a copy of its names
    /// (so they encode on their own, outside any lock the table is under), leaving an empty
    /// journal; `None` when not tracking.
    pub fn take_journal_owned(&mut self) -> Option<ArmTable> {
        let journal = self.journal.as_deref_mut()?;
        // The journal's own names are always empty (lent only inside `with_journal`): what is
        // left behind is an empty journal, as `clear` leaves it.
        let mut owned = std::mem::take(journal);
        if !owned.rows.is_empty() {
            owned.models = self.models.clone();
            owned.classes = self.classes.clone();
        }
        Some(owned)
    }

    /// Applies `f` to the journal with this table's names lent to it (a merge into the journal
    /// interns through them, so the journal's ids stay this table's); nothing when not tracking.
    pub fn with_journal(&mut self, f: impl FnOnce(&mut ArmTable)) {
        let Some(mut journal) = self.journal.take() else {
            return;
        };
        std::mem::swap(&mut journal.models, &mut self.models);
        std::mem::swap(&mut journal.classes, &mut self.classes);
        f(&mut journal);
        std::mem::swap(&mut journal.models, &mut self.models);
        std::mem::swap(&mut journal.classes, &mut self.classes);
        self.journal = Some(journal);
    }

    /// Brings the table and its journal to the same epoch start, the later of the two (a restore
    /// may move the table's back).
    pub fn align_journal(&mut self, lambda: f64) {
        let Some(journal_t0) = self.journal.as_ref().and_then(|j| j.t0) else {
            return;
        };
        match self.t0 {
            Some(t0) if t0 >= journal_t0 => {
                if let Some(j) = self.journal.as_deref_mut() {
                    j.rebase(t0, lambda);
                }
            }
            _ => self.rebase(journal_t0, lambda),
        }
    }

    /// Records every arm's sums times `sign` as a change (a restore that replaces the state
    /// records −old, then +new).
    pub fn record_all(&mut self, sign: f64) {
        let Some(journal) = self.journal.as_deref_mut() else {
            return;
        };
        for (&(role, class), row) in &self.rows {
            for (model, arm) in row.arms() {
                let mut diff = arm.sums;
                diff.scale(sign);
                journal.record(self.t0, ArmKey { model, role, class }, &diff);
            }
        }
    }

    /// Sizes the row of (role, class) for `n` arms if it has none yet, so a restore allocates
    /// each row once (a row that has arms grows as usual: the merge may bring no new ones).
    pub fn reserve(&mut self, role: u8, class: u32, n: usize) {
        let row = self.rows.entry((role, class)).or_default();
        if row.len() == 0 {
            row.reserve(n);
        }
    }

    /// Applies `f` to `model`'s arm in every class row of `role` (pooled levels excluded).
    pub fn for_each_class_arm(&mut self, model: u32, role: u8, mut f: impl FnMut(&mut Arm)) {
        for (&(r, class), row) in &mut self.rows {
            if r != role || class == ALL_CLASSES {
                continue;
            }
            let Some(i) = row.index(model) else { continue };
            let Some(journal) = self.journal.as_deref_mut() else {
                row.update(i, &mut f);
                continue;
            };
            let before = row.arm(i).sums;
            row.update(i, &mut f);
            let diff = row.arm(i).sums.minus(&before);
            journal.record(self.t0, ArmKey { model, role, class }, &diff);
        }
    }

    /// Every row with its (role, class), in no particular order.
    pub fn rows(&self) -> impl Iterator<Item = (u8, u32, &Row)> + '_ {
        self.rows
            .iter()
            .map(|(&(role, class), row)| (role, class, row))
    }

    /// Every arm with its key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ArmKey, Arm)> + '_ {
        self.rows().flat_map(|(role, class, row)| {
            row.arms()
                .map(move |(model, arm)| (ArmKey { model, role, class }, arm))
        })
    }

    /// Number of (model, role, task_class) arms; pooled levels and retry arms not counted.
    pub fn leaf_count(&self) -> usize {
        self.rows
            .iter()
            .filter(|(&(role, class), _)| class != ALL_CLASSES && role & RETRY == 0)
            .map(|(_, row)| row.len())
            .sum()
    }

    /// Drops learned sums but keeps interned names (the catalog's keys point into them).
    pub fn clear(&mut self) {
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
                for row in self.rows.values_mut() {
                    for i in 0..row.len() {
                        row.update(i, |a| a.sums.scale(f));
                    }
                }
                self.t0 = Some(t0_new);
            }
            Some(_) => {}
            None => self.t0 = Some(t0_new),
        }
        if let Some(journal) = self.journal.as_deref_mut() {
            journal.rebase(t0_new, lambda);
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
    use proptest::prelude::*;

    proptest! {
        /// A row finds every arm by its model key, as a list of keys (up to `SMALL_ROW` arms) and
        /// as a table after it outgrows the list, whatever order the models arrive in.
        #[test]
        fn a_row_finds_each_arm_before_and_after_it_outgrows_its_list_of_keys(
            models in proptest::collection::vec(0u32..40, 1..60),
        ) {
            let mut t = ArmTable::default();
            let mut expected: Vec<(u32, f64)> = Vec::new(); // model, successes; in creation order
            for &m in &models {
                t.with_arm(ArmKey { model: m, role: 1, class: 0 }, |a| a.sums.successes += 1.0);
                match expected.iter_mut().find(|(k, _)| *k == m) {
                    Some((_, n)) => *n += 1.0,
                    None => expected.push((m, 1.0)),
                }
                let row = t.row(1, 0);
                for probe in 0..45 {
                    let want = expected.iter().find(|(k, _)| *k == probe).map_or(0.0, |&(_, n)| n);
                    prop_assert_eq!(row.hot(probe).successes, want, "model {}", probe);
                }
                prop_assert_eq!(row.models().collect::<Vec<_>>(),
                                expected.iter().map(|&(k, _)| k).collect::<Vec<_>>());
            }
        }
    }

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
        assert_eq!(t.row(2, 7).hot(2), Hot::EMPTY);
        assert!(t.get(ArmKey { model: 2, ..k }).is_none());
        assert!(t.get(ArmKey { model: 9, ..k }).is_none());
        assert_eq!(t.leaf_count(), 1);
    }

    #[test]
    fn the_journal_counts_the_arms_changed_since_it_was_taken() {
        let mut t = ArmTable::default();
        let k = ArmKey {
            model: 3,
            role: 2,
            class: 7,
        };
        t.with_arm(k, |a| a.sums.successes = 1.0);
        assert_eq!(t.journal_arms(), 0, "not tracking");
        t.track_changes();
        for (model, class) in [(3, 7), (3, 7), (4, 7), (3, 8)] {
            t.with_arm(ArmKey { model, class, ..k }, |a| a.sums.failures += 1.0);
        }
        assert_eq!(t.journal_arms(), 3, "an arm changed twice counts once");
        t.take_journal(|_| ());
        assert_eq!(t.journal_arms(), 0);
    }

    #[test]
    fn an_arm_stays_compact() {
        assert_eq!(std::mem::size_of::<HotSums>(), 104);
        assert_eq!(std::mem::size_of::<Cold>(), 80);
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
        let before = t.get(k).unwrap().sums.successes * t.read_scale(250.0, lambda);
        t.weight_at(250.0, 100.0, lambda);
        assert_eq!(t.t0, Some(200.0));
        let after = t.get(k).unwrap().sums.successes * t.read_scale(250.0, lambda);
        assert!((before - after).abs() < 1e-12);
        assert!((before - 0.5f64.powi(2)).abs() < 1e-9, "{before}");
        assert_eq!(
            t.row(1, 0).hot(0).successes,
            t.get(k).unwrap().sums.successes
        );
    }
}
