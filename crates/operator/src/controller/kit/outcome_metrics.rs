//! The metrics of what runs came to: outcomes and durations of runs and
//! categories by namespace and layer, tests by result, flaky tests, waits
//! in queues, notifications; and the gauges kept from the caches (failure
//! streaks, the longest current wait).
//!
//! Cardinality stays bounded: the labels are namespaces, layers, the
//! categories a layer config names and fixed words; never a run's name, a
//! Pod's or a test's id.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::described::Described;

/// A queue a category can wait in before its Pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    /// Shared resources other runs held (`uses`).
    Resource,
    /// A Kueue queue's admission (a Pod behind a scheduling gate).
    Kueue,
    /// A run this run depends on (`dependsOn`) that does not exist yet.
    Dependency,
    /// Services the layer requires, without a ready endpoint.
    Services,
}

impl Queue {
    /// The label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Resource => "resource",
            Queue::Kueue => "kueue",
            Queue::Dependency => "dependency",
            Queue::Services => "services",
        }
    }
}

/// Test counts of a category that ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tests {
    /// Passed.
    pub passed: u64,
    /// Failed or errored.
    pub failed: u64,
    /// Skipped.
    pub skipped: u64,
    /// Failures forgiven by the quarantine list.
    pub quarantined: u64,
    /// Failed in one attempt and passed in a later one.
    pub flaky: u64,
}

/// Something a step's writes made happen that the metrics count, once the
/// writes are applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Happened {
    /// A run ended.
    RunEnded {
        /// Its namespace.
        namespace: String,
        /// Its layer.
        layer: String,
        /// Succeeded, Failed, TimedOut or Cancelled.
        outcome: &'static str,
        /// From its start to its end, when both are known.
        seconds: Option<f64>,
    },
    /// A category ended.
    CategoryEnded {
        /// Its namespace.
        namespace: String,
        /// Its run's layer.
        layer: String,
        /// The category.
        category: String,
        /// Succeeded, Failed, TimedOut, Cancelled or Skipped.
        outcome: &'static str,
        /// From its start to its end, when it started.
        seconds: Option<f64>,
        /// Its tests.
        tests: Tests,
    },
    /// A wait in a queue ended.
    Waited {
        /// The run's namespace.
        namespace: String,
        /// The run's layer.
        layer: String,
        /// Which queue.
        queue: Queue,
        /// How long it lasted.
        seconds: f64,
    },
    /// A notification came to its end: `result` is sent, failed or skipped.
    Notified {
        /// `webhook`, `slack` or `githubStatus`.
        kind: String,
        /// sent, failed or skipped.
        result: &'static str,
    },
}

/// Labels of a layer's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct LayerLabels {
    /// The run's namespace.
    pub namespace: String,
    /// The run's layer.
    pub layer: String,
}

/// Labels of outcomes by layer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The run's namespace.
    pub namespace: String,
    /// The run's layer.
    pub layer: String,
    /// The phase it ended in.
    pub outcome: String,
}

/// Labels of a category's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    /// The run's namespace.
    pub namespace: String,
    /// The run's layer.
    pub layer: String,
    /// The category.
    pub category: String,
}

/// Labels of test counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The run's namespace.
    pub namespace: String,
    /// The run's layer.
    pub layer: String,
    /// passed, failed, skipped or quarantined.
    pub result: String,
}

/// Labels of waits in a queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct QueueLabels {
    /// The run's namespace.
    pub namespace: String,
    /// The run's layer.
    pub layer: String,
    /// resource or kueue.
    pub queue: String,
}

/// Labels of notifications.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabels {
    /// The target's kind.
    pub target: String,
    /// sent, failed or skipped.
    pub result: String,
}

/// Buckets of run and category durations: 1 s to about 9 hours.
fn duration_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// A family of histograms of durations.
type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics of outcomes.
pub struct OutcomeMetrics {
    /// Runs that ended, by outcome.
    pub runs: Family<OutcomeLabels, Counter>,
    /// Run durations by outcome.
    pub run_seconds: Durations<OutcomeLabels>,
    /// Categories that ended, by outcome.
    pub categories: Family<OutcomeLabels, Counter>,
    /// Category durations.
    pub category_seconds: Durations<CategoryLabels>,
    /// Tests of ended categories, by result.
    pub tests: Family<ResultLabels, Counter>,
    /// Flaky tests of ended categories.
    pub flaky_tests: Family<LayerLabels, Counter>,
    /// Waits in queues that ended.
    pub queue_wait: Durations<QueueLabels>,
    /// How long the longest wait going on has lasted.
    pub waiting_longest: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Failed or timed-out runs in a row ending each layer's kept runs.
    pub failure_streak: Family<LayerLabels, Gauge>,
    /// Notifications that came to an end, by target kind and result.
    pub notifications: Family<NotifyLabels, Counter>,
    /// The label sets of the kept gauges last set (those not set again are
    /// removed).
    kept: std::sync::Mutex<(BTreeSet<LayerLabels>, BTreeSet<QueueLabels>)>,
}

impl Default for OutcomeMetrics {
    fn default() -> Self {
        OutcomeMetrics::new()
    }
}

impl OutcomeMetrics {
    /// New metrics, their histograms with their buckets.
    pub fn new() -> Self {
        OutcomeMetrics {
            runs: Family::default(),
            run_seconds: Family::new_with_constructor(duration_buckets),
            categories: Family::default(),
            category_seconds: Family::new_with_constructor(duration_buckets),
            tests: Family::default(),
            flaky_tests: Family::default(),
            queue_wait: Family::new_with_constructor(duration_buckets),
            waiting_longest: Family::default(),
            failure_streak: Family::default(),
            notifications: Family::default(),
            kept: Default::default(),
        }
    }

    /// Registers every metric in `r`.
    pub fn register(&self, r: &mut Described) {
        r.add(
            "runs_finished",
            "TestLayerRuns that ended, by namespace, layer and outcome",
            "counter",
            self.runs.clone(),
        );
        r.add(
            "run_duration_seconds",
            "Durations of TestLayerRuns that ended, by namespace, layer and outcome",
            "histogram",
            self.run_seconds.clone(),
        );
        r.add(
            "categories_finished",
            "Categories that ended, by namespace, layer and outcome",
            "counter",
            self.categories.clone(),
        );
        r.add(
            "category_duration_seconds",
            "Durations of categories that ended, by namespace, layer and category",
            "histogram",
            self.category_seconds.clone(),
        );
        r.add(
            "tests",
            "Tests of categories that ended, by result (passed, failed, skipped, quarantined)",
            "counter",
            self.tests.clone(),
        );
        r.add(
            "flaky_tests_seen",
            "Tests that failed in one attempt and passed in a later one, in categories that ended",
            "counter",
            self.flaky_tests.clone(),
        );
        r.add("queue_wait_seconds",
            "Waits that ended, for shared resources (queue=resource) or a Kueue admission (queue=kueue)",
            "histogram", self.queue_wait.clone(),
        );
        r.add(
            "waiting_longest_seconds",
            "How long the longest wait going on in each queue has lasted",
            "gauge",
            self.waiting_longest.clone(),
        );
        r.add(
            "layer_failure_streak",
            "Failed or timed-out runs in a row at the end of each layer's kept runs",
            "gauge",
            self.failure_streak.clone(),
        );
        r.add(
            "notifications",
            "Notifications that came to an end, by target kind and result",
            "counter",
            self.notifications.clone(),
        );
    }

    /// Counts what happened.
    pub fn record(&self, h: &Happened) {
        match h {
            Happened::RunEnded {
                namespace,
                layer,
                outcome,
                seconds,
            } => {
                let l = OutcomeLabels {
                    namespace: namespace.clone(),
                    layer: layer.clone(),
                    outcome: (*outcome).into(),
                };
                self.runs.get_or_create(&l).inc();
                if let Some(s) = seconds {
                    self.run_seconds.get_or_create(&l).observe(*s);
                }
            }
            Happened::CategoryEnded {
                namespace,
                layer,
                category,
                outcome,
                seconds,
                tests,
            } => self.category_ended(namespace, layer, category, outcome, *seconds, tests),
            Happened::Waited {
                namespace,
                layer,
                queue,
                seconds,
            } => self
                .queue_wait
                .get_or_create(&QueueLabels {
                    namespace: namespace.clone(),
                    layer: layer.clone(),
                    queue: queue.as_str().into(),
                })
                .observe(*seconds),
            Happened::Notified { kind, result } => {
                self.notifications
                    .get_or_create(&NotifyLabels {
                        target: kind.clone(),
                        result: (*result).into(),
                    })
                    .inc();
            }
        }
    }

    fn category_ended(
        &self,
        namespace: &str,
        layer: &str,
        category: &str,
        outcome: &str,
        seconds: Option<f64>,
        tests: &Tests,
    ) {
        self.categories
            .get_or_create(&OutcomeLabels {
                namespace: namespace.into(),
                layer: layer.into(),
                outcome: outcome.into(),
            })
            .inc();
        if let Some(s) = seconds {
            self.category_seconds
                .get_or_create(&CategoryLabels {
                    namespace: namespace.into(),
                    layer: layer.into(),
                    category: category.into(),
                })
                .observe(s);
        }
        for (result, n) in [
            ("passed", tests.passed),
            ("failed", tests.failed),
            ("skipped", tests.skipped),
            ("quarantined", tests.quarantined),
        ] {
            if n > 0 {
                self.tests
                    .get_or_create(&ResultLabels {
                        namespace: namespace.into(),
                        layer: layer.into(),
                        result: result.into(),
                    })
                    .inc_by(n);
            }
        }
        if tests.flaky > 0 {
            self.flaky_tests
                .get_or_create(&LayerLabels {
                    namespace: namespace.into(),
                    layer: layer.into(),
                })
                .inc_by(tests.flaky);
        }
    }

    /// Sets the gauges kept from the caches: each layer's failure streak
    /// and each queue's longest current wait. Label sets no longer given
    /// are removed (a layer whose runs are gone is not shown at 0 for ever).
    pub fn set_kept(
        &self,
        streaks: &BTreeMap<LayerLabels, i64>,
        waits: &BTreeMap<QueueLabels, f64>,
    ) {
        for (l, n) in streaks {
            self.failure_streak.get_or_create(l).set(*n);
        }
        for (l, s) in waits {
            self.waiting_longest.get_or_create(l).set(*s);
        }
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        for gone in kept.0.iter().filter(|l| !streaks.contains_key(*l)) {
            self.failure_streak.remove(gone);
        }
        for gone in kept.1.iter().filter(|l| !waits.contains_key(*l)) {
            self.waiting_longest.remove(gone);
        }
        *kept = (
            streaks.keys().cloned().collect(),
            waits.keys().cloned().collect(),
        );
    }
}
