//! Human-readable reasons for a decision (one sentence each).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::catalog::Catalog;
use crate::constraints::Constraint;
use crate::decide::Scored;
use crate::decision::Reason;

/// Names shown per constraint before eliding the rest.
const NAMES_SHOWN: usize = 3;

/// "no model satisfies the constraints: provenance excluded 9 (a, b, c, …), max_cost excluded 2 (x, y)"
pub fn no_model_reason(catalog: &Catalog, rows: &[Scored]) -> String {
    if rows.is_empty() {
        return "no model satisfies the constraints: the catalog has no models".to_owned();
    }
    let mut by: BTreeMap<Constraint, Vec<&str>> = BTreeMap::new();
    for r in rows {
        if let Some(c) = r.excluded {
            by.entry(c)
                .or_default()
                .push(&catalog.models[r.idx as usize].id);
        }
    }
    let mut out = String::from("no model satisfies the constraints: ");
    for (n, (c, names)) in by.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        let shown = names
            .iter()
            .take(NAMES_SHOWN)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if names.len() > NAMES_SHOWN {
            ", …"
        } else {
            ""
        };
        let _ = write!(out, "{} excluded {} ({shown}{more})", c.name(), names.len());
    }
    out
}

/// The sentence for a pick (see `Reason`); `ids` are the catalog's model ids.
pub fn render(reason: &Reason, ids: &[String]) -> String {
    let id = |i: u32| ids.get(i as usize).map_or("?", String::as_str);
    match *reason {
        Reason::Text(ref s) => s.clone(),
        Reason::Sticky {
            pick,
            best,
            saving,
            cache_loss,
            context_tokens,
        } => format!(
            "kept sticky model {}: switching to {} would save ${saving:.6} per success, less than \
             the ${cache_loss:.6} cache loss of re-reading {context_tokens} context tokens",
            id(pick),
            id(best),
        ),
        Reason::Explore {
            pick,
            greedy,
            sampled,
            score,
        } => format!(
            "exploration: sampled success {sampled:.3} made {} (score ${score:.6} per success) \
             beat the greedy pick {}",
            id(pick),
            id(greedy)
        ),
        Reason::Lowest {
            pick,
            score,
            eligible,
            excluded,
            also_sticky,
        } => format!(
            "{} has the lowest score, expected cost plus waiting time per success (${score:.6}), \
             among {eligible} eligible models ({excluded} excluded){}",
            id(pick),
            if also_sticky {
                "; it is also the sticky model"
            } else {
                ""
            }
        ),
    }
}
