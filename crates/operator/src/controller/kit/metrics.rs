//! Prometheus metrics of the controller, in the text format served on
//! `/metrics`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::described::Described;
use super::outcome_metrics::OutcomeMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Labels of error counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Kind of error.
    pub error: String,
}

/// Labels of category counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// Category phase.
    pub phase: String,
}

/// Labels of what schedules and triggers did.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TickLabels {
    /// `schedule` or `trigger`.
    pub owner: String,
    /// `started`, `skipped` or `missed`.
    pub action: String,
}

/// The controller's metrics.
pub struct Metrics {
    registry: Mutex<Described>,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles that failed, by kind.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile durations in seconds.
    pub reconcile_duration: Histogram,
    /// Categories by phase, over every run the controller watches.
    pub categories: Family<PhaseLabels, Gauge>,
    /// Seconds from the start of the reconcile that admitted a category to
    /// its Pod being created.
    pub pod_start_latency: Histogram,
    /// Pods created.
    pub pods_created: Counter,
    /// Categories that passed only on a retry, over every CategoryRun the
    /// controller watches.
    pub flaky_categories: Gauge,
    /// Tests that failed in one attempt and passed in a later one, over
    /// every CategoryRun the controller watches.
    pub flaky_tests: Gauge,
    /// Ticks of schedules and firings of triggers, by what they did.
    pub ticks: Family<TickLabels, Counter>,
    /// 1 while this replica leads (and reconciles), else 0.
    pub leader: Gauge,
    /// What runs came to.
    pub outcomes: OutcomeMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Mutex::new(Described::default()),
            reconciles: Counter::default(),
            errors: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            categories: Family::default(),
            pod_start_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            pods_created: Counter::default(),
            flaky_categories: Gauge::default(),
            flaky_tests: Gauge::default(),
            ticks: Family::default(),
            leader: Gauge::default(),
            outcomes: OutcomeMetrics::new(),
        };
        if let Ok(mut r) = m.registry.lock() {
            r.add(
                "reconciles",
                "Reconciles of TestLayerRuns",
                "counter",
                m.reconciles.clone(),
            );
            r.add(
                "reconcile_errors",
                "Failed reconciles by kind",
                "counter",
                m.errors.clone(),
            );
            r.add(
                "reconcile_duration_seconds",
                "Duration of reconciles",
                "histogram",
                m.reconcile_duration.clone(),
            );
            r.add(
                "categories",
                "Categories by phase",
                "gauge",
                m.categories.clone(),
            );
            r.add("pod_start_latency_seconds",
                "Time from the start of the reconcile that admitted a category to its Pod being created",
                "histogram", m.pod_start_latency.clone(),
            );
            r.add(
                "pods_created",
                "Pods created for attempts",
                "counter",
                m.pods_created.clone(),
            );
            r.add(
                "flaky_categories",
                "Categories that passed only on a retry",
                "gauge",
                m.flaky_categories.clone(),
            );
            r.add(
                "flaky_tests",
                "Tests that failed in one attempt and passed in a later one",
                "gauge",
                m.flaky_tests.clone(),
            );
            r.add(
                "ticks",
                "Ticks of TestLayerSchedules and firings of TestLayerTriggers, by what they did",
                "counter",
                m.ticks.clone(),
            );
            r.add(
                "leader",
                "1 while this replica holds the leadership and reconciles, else 0",
                "gauge",
                m.leader.clone(),
            );
            m.outcomes.register(&mut r);
        }
        m
    }
}

impl Metrics {
    /// Starts timing a reconcile; the duration is recorded when the guard drops.
    pub fn reconcile(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        self.registry.lock().map(|r| r.encode()).unwrap_or_default()
    }

    /// Sets the categories-by-phase gauge from every CategoryRun known.
    pub fn set_categories(&self, phases: impl IntoIterator<Item = &'static str>) {
        let mut counts: std::collections::BTreeMap<&'static str, i64> =
            std::collections::BTreeMap::new();
        for p in phases {
            *counts.entry(p).or_default() += 1;
        }
        for p in [
            "Pending",
            "Waiting",
            "Running",
            "Succeeded",
            "Failed",
            "TimedOut",
            "Cancelled",
            "Skipped",
        ] {
            self.categories
                .get_or_create(&PhaseLabels {
                    phase: p.to_string(),
                })
                .set(counts.get(p).copied().unwrap_or(0));
        }
    }

    /// Counts what a schedule's or trigger's event (its `reason`) says it
    /// did: a tick or firing started, skipped or missed; other events are
    /// not counted.
    pub fn tick(&self, owner: &str, reason: &str) {
        let action = match reason {
            "TickStarted" | "RevisionStarted" => "started",
            "TickSkipped" | "RevisionSkipped" => "skipped",
            "TickMissed" => "missed",
            _ => return,
        };
        self.ticks
            .get_or_create(&TickLabels {
                owner: owner.into(),
                action: action.into(),
            })
            .inc();
    }

    /// Records the time from admission to Pod creation.
    pub fn pod_started(&self, latency: Duration) {
        self.pods_created.inc();
        self.pod_start_latency.observe(latency.as_secs_f64());
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn ticks_are_counted_by_owner_and_action() {
        let m = Metrics::default();
        for reason in [
            "TickStarted",
            "TickStarted",
            "TickMissed",
            "InvalidSchedule",
        ] {
            m.tick("schedule", reason);
        }
        m.tick("trigger", "RevisionSkipped");
        let text = m.encode();
        for line in [
            "testlayer_ticks_total{owner=\"schedule\",action=\"started\"} 2",
            "testlayer_ticks_total{owner=\"schedule\",action=\"missed\"} 1",
            "testlayer_ticks_total{owner=\"trigger\",action=\"skipped\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("InvalidSchedule"), "{text}");
    }
}

#[cfg(test)]
mod described {
    use super::Metrics;

    /// Dashboards and alert rules name metrics before any run has ended:
    /// each family is described (`# TYPE`) from the start.
    #[test]
    fn every_family_is_described_before_it_has_a_sample() {
        let text = Metrics::default().encode();
        for (name, kind) in [
            ("testlayer_runs_finished", "counter"),
            ("testlayer_run_duration_seconds", "histogram"),
            ("testlayer_categories_finished", "counter"),
            ("testlayer_category_duration_seconds", "histogram"),
            ("testlayer_tests", "counter"),
            ("testlayer_flaky_tests_seen", "counter"),
            ("testlayer_queue_wait_seconds", "histogram"),
            ("testlayer_waiting_longest_seconds", "gauge"),
            ("testlayer_layer_failure_streak", "gauge"),
            ("testlayer_notifications", "counter"),
            ("testlayer_leader", "gauge"),
            ("testlayer_reconcile_errors", "counter"),
            ("testlayer_categories", "gauge"),
            ("testlayer_ticks", "counter"),
        ] {
            let line = format!("# TYPE {name} {kind}");
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }
}
