//! Human-readable reasons for a decision (one sentence each).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::catalog::Catalog;
use crate::constraints::Constraint;
use crate::decide::{cache_loss_usd, Scored};
use crate::request::Request;

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
            by.entry(c).or_default().push(&catalog.models[r.idx].id);
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

pub fn pick_reason(
    catalog: &Catalog,
    req: &Request,
    rows: &[Scored],
    pick: usize,
    best: usize,
    greedy: usize,
    sticky: Option<usize>,
) -> String {
    let eligible = rows.iter().filter(|r| r.excluded.is_none()).count();
    let id = |i: usize| catalog.models[i].id.as_str();
    if sticky == Some(pick) && pick != best {
        return format!(
            "kept sticky model {}: switching to {} would save ${:.6} per success, less than the ${:.6} \
             cache loss of re-reading {} context tokens",
            id(pick),
            id(best),
            rows[pick].score - rows[best].score,
            cache_loss_usd(&catalog.models[best], req.context_tokens),
            req.context_tokens
        );
    }
    if pick != greedy {
        return format!(
            "exploration: sampled success {:.3} made {} (${:.6} per success) beat the greedy pick {}",
            rows[pick].sampled,
            id(pick),
            rows[pick].score,
            id(greedy)
        );
    }
    let excluded = rows.len() - eligible;
    format!(
        "{} has the lowest expected cost per success (${:.6}) among {eligible} eligible models \
         ({excluded} excluded){}",
        id(pick),
        rows[pick].score,
        if sticky == Some(pick) {
            "; it is also the sticky model"
        } else {
            ""
        }
    )
}
