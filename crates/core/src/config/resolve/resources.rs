//! Resources and quantities: a category's requests and limits (its own or
//! the layer's), checked against each other and against the layer's budget,
//! and the CPU and memory quantity checks.

use super::bounds::{MAX_CPU_MILLIS, MAX_MEMORY_BYTES};
use super::category::CategoryDefaults;
use super::overrides::Resolver;
use crate::config::error::Collector;
use crate::config::quantity::{format_cpu, format_memory, parse_cpu_millis, parse_memory_bytes};
use crate::config::raw::{RawQuantities, RawResources};
use crate::layer::Resources;

impl Resolver<'_> {
    pub(super) fn resources(
        &self,
        c: &mut Collector,
        cp: &str,
        own: Option<&RawResources>,
        d: &CategoryDefaults<'_>,
    ) -> Resources {
        let field = |pick: fn(&RawResources) -> Option<&RawQuantities>,
                     q: fn(&RawQuantities) -> Option<&String>| {
            if let Some(v) = own.and_then(pick).and_then(q) {
                return Some((v.clone(), cp.to_string()));
            }
            d.resources
                .and_then(pick)
                .and_then(q)
                .map(|v| (v.clone(), self.lp.clone()))
        };
        fn req(r: &RawResources) -> Option<&RawQuantities> {
            r.requests.as_ref()
        }
        fn lim(r: &RawResources) -> Option<&RawQuantities> {
            r.limits.as_ref()
        }
        fn cpu_of(q: &RawQuantities) -> Option<&String> {
            q.cpu.as_ref()
        }
        fn mem_of(q: &RawQuantities) -> Option<&String> {
            q.memory.as_ref()
        }
        let mut out = Resources::default();
        for (slot, which, pick) in [
            (
                &mut out.requests,
                "requests",
                req as fn(&RawResources) -> Option<&RawQuantities>,
            ),
            (&mut out.limits, "limits", lim),
        ] {
            if let Some((v, base)) = field(pick, cpu_of) {
                slot.cpu_millis = cpu(&v, &format!("{base}.resources.{which}.cpu"), c);
            }
            if let Some((v, base)) = field(pick, mem_of) {
                slot.memory_bytes = memory(&v, &format!("{base}.resources.{which}.memory"), c);
            }
        }
        if let (Some(r), Some(l)) = (out.requests.cpu_millis, out.limits.cpu_millis)
            && r > l
        {
            c.push(
                format!("{cp}.resources.requests.cpu"),
                format!(
                    "request {} is more than the limit {}",
                    format_cpu(r),
                    format_cpu(l)
                ),
            );
        }
        if let (Some(r), Some(l)) = (out.requests.memory_bytes, out.limits.memory_bytes)
            && r > l
        {
            c.push(
                format!("{cp}.resources.requests.memory"),
                format!(
                    "request {} is more than the limit {}",
                    format_memory(r),
                    format_memory(l)
                ),
            );
        }
        let size = out.budget_size();
        if let (Some(need), Some(have)) = (size.cpu_millis, d.budget.cpu_millis)
            && need > have
        {
            c.push(
                format!("{cp}.resources"),
                format!(
                    "needs cpu {} but the layer's resource_limits.cpu is {}: it could never start",
                    format_cpu(need),
                    format_cpu(have)
                ),
            );
        }
        if let (Some(need), Some(have)) = (size.memory_bytes, d.budget.memory_bytes)
            && need > have
        {
            c.push(
                    format!("{cp}.resources"),
                    format!(
                        "needs memory {} but the layer's resource_limits.memory is {}: it could never start",
                        format_memory(need),
                        format_memory(have)
                    ),
                );
        }
        out
    }
}

pub(super) fn cpu(q: &str, path: &str, c: &mut Collector) -> Option<u64> {
    match parse_cpu_millis(q) {
        None => {
            c.push(
                path,
                format!("{q:?} is not a CPU quantity (write e.g. 500m, 1 or 2.5)"),
            );
            None
        }
        Some(0) => {
            c.push(path, "must be more than zero");
            None
        }
        Some(m) if m > MAX_CPU_MILLIS => {
            c.push(
                path,
                format!(
                    "{q} is more than any node has (at most {} cores)",
                    MAX_CPU_MILLIS / 1000
                ),
            );
            None
        }
        Some(m) => Some(m),
    }
}

pub(super) fn memory(q: &str, path: &str, c: &mut Collector) -> Option<u64> {
    match parse_memory_bytes(q) {
        None => {
            c.push(
                path,
                format!("{q:?} is not a memory quantity (write e.g. 512Mi or 2Gi)"),
            );
            None
        }
        Some(0) => {
            c.push(path, "must be more than zero");
            None
        }
        Some(b) if b > MAX_MEMORY_BYTES => {
            c.push(
                path,
                format!("{q} is more than any node has (at most 16Ti)"),
            );
            None
        }
        Some(b) => Some(b),
    }
}
