//! The bounds and defaults of resolved values.

/// Longest per-category timeout: one day.
pub(super) const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// Longest layer deadline: one week.
pub(super) const MAX_DEADLINE_MINUTES: f64 = 10_080.0;
/// Most CPU one category or layer may name: 1024 cores.
pub(super) const MAX_CPU_MILLIS: u64 = 1_024_000;
/// Most memory one category or layer may name: 16 TiB.
pub(super) const MAX_MEMORY_BYTES: u64 = 16 << 40;
/// Most retries of either kind.
pub(super) const MAX_RETRIES: i64 = 10;
/// Most categories running at once.
pub(super) const MAX_PARALLEL: i64 = 10_000;
/// Default bound on waiting for required services.
pub(super) const DEFAULT_SERVICE_WAIT_SECS: i64 = 300;
/// Default backoff before the first retry.
pub(super) const DEFAULT_BACKOFF_SECS: f64 = 2.0;
/// Default retries after infrastructure failures.
pub(super) const DEFAULT_INFRA_RETRIES: i64 = 2;
/// Most quarantine patterns of one category, its layer's included.
pub(super) const MAX_QUARANTINE: usize = 500;
