//! Scenario tests of the planner: one behaviour each, by hand. This file
//! holds the helpers; the tests are grouped by topic.

mod ordering;
mod recorded;
mod resources;
mod retries;
mod stops;
mod waiting;

use std::time::Duration;

use super::sim::{AttemptScript, Scenario, Scripted, SimEventKind, simulate};
use super::*;
use crate::layer::{CategoryPlan, LayerPlan, LayerSettings, Quantities, Strategy};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn cat(name: &str, deps: &[usize]) -> CategoryPlan {
    let mut c = CategoryPlan::new(name, s(100));
    c.dependencies = deps.to_vec();
    c
}

fn layer(strategy: Strategy, limit: Option<u32>, cats: Vec<CategoryPlan>) -> LayerPlan {
    LayerPlan::new(LayerSettings::new("t", strategy, limit), cats).unwrap()
}

fn pass(secs: u64) -> Vec<AttemptScript> {
    vec![AttemptScript {
        duration: s(secs),
        end: Scripted::Pass,
    }]
}

fn script(list: &[(u64, Scripted)]) -> Vec<AttemptScript> {
    list.iter()
        .map(|&(d, end)| AttemptScript {
            duration: s(d),
            end,
        })
        .collect()
}

fn starts(r: &sim::SimResult) -> Vec<(u64, usize, u32)> {
    r.trace
        .iter()
        .filter_map(|e| match e.kind {
            SimEventKind::Started(a) => Some((e.at.as_secs(), e.category, a)),
            _ => None,
        })
        .collect()
}

fn terminal(r: &sim::SimResult, i: usize) -> Terminal {
    r.categories[i].terminal.unwrap()
}
